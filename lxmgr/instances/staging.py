"""Staging directories of long work (publish, backup export and import): named after the
process that made them, so that a later daemon removes those whose process is gone (killed
mid-way) and never another live process's (tests share an image store between daemons).

Part of `instances`: never imports the daemon or front ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)
KINDS = (".publish-", ".export-", ".import-")


def make(kind: str, parent: Path) -> Path:
    """A new private directory `<kind><pid>-<random>` in parent (kind: one of KINDS)."""
    return Path(tempfile.mkdtemp(prefix=f"{kind}{os.getpid()}-", dir=parent))


def sweep(parents: Iterable[Path]) -> list[Path]:
    """Remove the staging directories in parents whose process is gone; those removed."""
    removed = []
    for parent in parents:
        try:
            entries = list(os.scandir(parent))
        except OSError:
            continue
        for entry in entries:
            kind = next((k for k in KINDS if entry.name.startswith(k)), None)
            if kind is None or not entry.is_dir(follow_symlinks=False):
                continue
            pid = entry.name[len(kind):].partition("-")[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            log.warning("Removed %s, left by a process that died during its work", entry.path)
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
