"""Instance records: definitions in the state database, runtime files (supervisor config,
socket, console log) in instances/<name>/ on disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lxmgr import paths
from lxmgr.errors import Conflict
from lxmgr.instances.db import Database
from lxmgr.model.instance import InstanceSpec, validate_stored_name


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write text to path through a temp file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no empty temp file behind
        raise


class InstanceStore:
    """CRUD of InstanceSpec (database) plus each instance's runtime directory."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def exists(self, name: str) -> bool:
        return name in self.db.instance_names()

    def get(self, name: str) -> InstanceSpec:
        validate_stored_name(name)
        return self.db.instance_get(name)

    def names(self) -> list[str]:
        return self.db.instance_names()

    def add(self, spec: InstanceSpec) -> None:
        directory = paths.instance_dir(spec.name)
        directory.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
        if directory.exists() and any(directory.iterdir()):
            raise Conflict(f"Instance '{spec.name}' already exists (stale directory "
                           f"'{directory}')")
        self.db.instance_add(spec)
        directory.mkdir(mode=0o700, exist_ok=True)

    def save(self, spec: InstanceSpec) -> None:
        self.db.instance_save(spec)

    def remove(self, name: str) -> None:
        self.db.instance_remove(name)
        directory = paths.instance_dir(name)
        if directory.is_dir() and not directory.is_symlink():
            shutil.rmtree(directory)
