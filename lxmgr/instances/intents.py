"""The intent journal: an operation with several side effects on disk records what it is
about to do before the first one, and drops the record once it is done or undone. A daemon
killed in between (kill -9, power loss) leaves the record, and the next daemon start
finishes or undoes the work (Manager.recover), so that every instance either fully exists
or does not exist at all. LXD keeps the equivalent in its database and operation locks;
ours are small files, written and fsynced before the work starts.

Part of `instances`: never imports the daemon or front ends.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lxmgr import paths
from lxmgr.errors import LxmgrError
from lxmgr.instances.store import write_atomic

log = logging.getLogger(__name__)


def journal_dir() -> Path:
    return paths.root() / "intents"


@contextmanager
def intent(action: str, **details: Any) -> Iterator[None]:
    """Record `action` (create, delete, snapshot, rename, restore) with its details for the
    block; the record stays if the process dies inside it."""
    directory = journal_dir()
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.json"
    try:
        write_atomic(path, json.dumps({"action": action, **details}))
    except OSError as err:  # before any side effect: nothing to undo
        raise LxmgrError(f"Failed to record the {action} in {directory}: {err.strerror}"
                         ) from err
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def pending() -> Iterator[tuple[Path, dict[str, Any]]]:
    """The records a dead daemon left (unreadable ones are dropped with a warning)."""
    directory = journal_dir()
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or "action" not in record:
                raise ValueError("not an intent")
        except (OSError, ValueError) as err:
            log.warning("Dropping unreadable intent %s: %s", path.name, err)
            path.unlink(missing_ok=True)
            continue
        yield path, record
    for stale in directory.glob(".*.tmp"):  # a record being written when the daemon died
        os.unlink(stale)
