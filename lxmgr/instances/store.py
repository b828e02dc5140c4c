"""Instance definitions on disk: instances/<name>/instance.json, written atomically.

(The daemon's SQLite state replaces this file store in a later step; the interface stays.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lxmgr import paths
from lxmgr.errors import Conflict, NotFound
from lxmgr.model.instance import InstanceSpec, validate_instance_name


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write text to path through a temp file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class InstanceStore:
    """CRUD of InstanceSpec under paths.instances_dir()."""

    def spec_path(self, name: str) -> Path:
        return paths.instance_dir(name) / "instance.json"

    def exists(self, name: str) -> bool:
        return self.spec_path(name).exists()

    def get(self, name: str) -> InstanceSpec:
        validate_instance_name(name)
        try:
            text = self.spec_path(name).read_text()
        except FileNotFoundError:
            raise NotFound(f"Instance '{name}' not found") from None
        return InstanceSpec.from_dict(json.loads(text))

    def names(self) -> list[str]:
        root = paths.instances_dir()
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "instance.json").exists())

    def add(self, spec: InstanceSpec) -> None:
        directory = paths.instance_dir(spec.name)
        directory.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise Conflict(f"Instance '{spec.name}' already exists") from None
        self.save(spec)

    def save(self, spec: InstanceSpec) -> None:
        write_atomic(self.spec_path(spec.name), json.dumps(spec.to_dict(), indent=1))

    def remove(self, name: str) -> None:
        directory = paths.instance_dir(name)
        if not directory.is_dir():
            return
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                raise Conflict(f"Refusing to remove '{directory}': it holds a directory")
            entry.unlink()
        directory.rmdir()
