"""Instance backups (LXD's /1.0/instances/NAME/backups): each one is a tarball in LXD's
backup format (written by Manager.export_backup, lxmgr.instances.backup) with a JSON record
beside it: <root>/<stored instance name>/<backup>.tar[.gz|.xz] and <backup>.json.

Backups owns them: create (the export and its record, under the instance's lock), list,
show, rename, delete, the file a download streams, the instance hooks (an instance's
backups move with its rename and go with its delete, as in LXD's lxc driver Rename and
Delete, lxd/instance/drivers/driver_lxc.go) and the expiry of backups past their
expires_at (LXD's pruneExpiredContainerBackups, lxd/backup.go). Each change is announced as
LXD's instance-backup-* lifecycle event (lxd/lifecycle/instance_backup.go).

Crash safety: a backup is visible when its record names a tarball that exists, and each
change moves from one such state to the next: create writes the tarball, then the record
(atomically); delete removes the record, then the tarball; rename writes the new record,
renames the tarball, then removes the old record. sweep() (run with the expiry) repairs
what a crash left: a tarball no record names, a record whose tarball is gone, and the
temporaries of write_backup and write_atomic (names starting with '.'), which are leftovers
whenever the instance's lock is free since every writer holds it.

Imports nothing from the daemon; synchronous (the daemon calls it from worker threads).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from lxmgr.api.operation import format_time
from lxmgr.errors import Conflict, InvalidConfig, LxmgrError, NotFound
from lxmgr.instances.events import EventBus
from lxmgr.instances.locks import InstanceLocks
from lxmgr.instances.store import write_atomic
from lxmgr.model.project import display
from lxmgr.model.snapshot import parse_time, validate_snapshot_name

log = logging.getLogger(__name__)
# compression_algorithm (API extension backup_compression_algorithm) -> tarball suffix
COMPRESSION = {"gzip": ".tar.gz", "xz": ".tar.xz", "none": ".tar"}
NEVER = "0001-01-01T00:00:00Z"  # LXD's zero time: a backup that does not expire
RECORD = ".json"
# Manager.export_backup(name, out, *, instance_only, compression): writes the tarball
Export = Callable[..., object]


def validate_backup_name(backup: str) -> None:
    """A file name: the rules of snapshot names (no '/', no leading '.')."""
    try:
        validate_snapshot_name(backup)
    except InvalidConfig:
        raise InvalidConfig(f"Invalid backup name '{backup}': use 1-63 letters, digits, '.', "
                            "'_' or '-', starting with a letter or digit") from None


def public(record: dict[str, Any]) -> dict[str, Any]:
    """LXD's InstanceBackup object of a record (without the tarball's file name)."""
    return {k: v for k, v in record.items() if k != "file"}


class Backups:
    """The backups of every instance, under root (one directory per stored instance name).

    events announces each change; locks are the instances' locks (every change holds the
    instance's); export writes an instance's tarball; exists says whether an instance
    exists (a directory of none is an orphan the sweep removes)."""

    def __init__(self, root: Path, events: EventBus, locks: InstanceLocks, export: Export,
                 exists: Callable[[str], bool]) -> None:
        self.root = root
        self.events = events
        self.locks = locks
        self.export = export
        self.exists = exists

    # -- reads (lock-free: every state a change passes through is consistent) -------------

    def directory(self, name: str) -> Path:
        return self.root / name

    def names(self, name: str) -> list[str]:
        """The backups of instance name, sorted."""
        return [r["name"] for r in self.list(name)]

    def list(self, name: str) -> list[dict[str, Any]]:
        """The records of instance name's backups, sorted by name."""
        directory = self.directory(name)
        try:
            files = sorted(p.name for p in directory.iterdir())
        except FileNotFoundError:
            return []
        records = (self._read(directory, f.removesuffix(RECORD)) for f in files
                   if f.endswith(RECORD) and not f.startswith("."))
        return [r for r in records if r is not None]

    def views(self, name: str) -> list[dict[str, Any]]:
        """LXD's InstanceBackup objects of an instance (also InstanceFull's `backups`)."""
        return [public(r) for r in self.list(name)]

    def get(self, name: str, backup: str) -> dict[str, Any]:
        """The record of backup name/backup; NotFound when there is none."""
        validate_backup_name(backup)
        record = self._read(self.directory(name), backup)
        if record is None:
            raise NotFound(f"Backup '{display(name)}/{backup}' not found")
        return record

    def export_path(self, name: str, backup: str) -> Path:
        """The tarball of name/backup, for a download (LXD announces the retrieval)."""
        path = self.directory(name) / str(self.get(name, backup)["file"])
        self.events.lifecycle("instance-backup-retrieved", name, backup=backup)
        return path

    def _read(self, directory: Path, backup: str) -> dict[str, Any] | None:
        """A record whose tarball exists, else None (missing, damaged, or half a change)."""
        try:
            record = json.loads((directory / f"{backup}{RECORD}").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("Unreadable backup record %s/%s: %s", directory.name, backup, err)
            return None
        if not isinstance(record, dict) or record.get("name") != backup or record.get(
                "file") not in {f"{backup}{s}" for s in COMPRESSION.values()}:
            log.warning("Invalid backup record %s/%s", directory.name, backup)
            return None
        return record if (directory / record["file"]).is_file() else None

    # -- changes (each under the instance's lock) ------------------------------------------

    def check_create(self, name: str, backup: str, compression: str = "gzip",
                     expires_at: str | None = None) -> None:
        """Refuse a backup that create() would refuse, before any work."""
        validate_backup_name(backup)
        if compression not in COMPRESSION:
            raise InvalidConfig(f"Unsupported compression '{compression}' (use gzip, xz or "
                                "none)")
        parse_time(expires_at)
        if (self.directory(name) / f"{backup}{RECORD}").exists():
            raise Conflict(f"Backup '{display(name)}/{backup}' already exists")

    def create(self, name: str, backup: str, *, compression: str = "gzip",
               instance_only: bool = False, expires_at: str | None = None) -> dict[str, Any]:
        """Export instance name as backup `backup` (with its snapshots unless
        instance_only); expires_at is an RFC 3339 time (none: never). Returns the record."""
        with self.locks.hold(name):
            self.check_create(name, backup, compression, expires_at)
            expiry = parse_time(expires_at)
            directory = self._make_directory(name)
            target = directory / f"{backup}{COMPRESSION[compression]}"
            record = {"name": backup, "created_at": _now(),
                      "expires_at": format_time(expiry) if expiry else NEVER,
                      "instance_only": instance_only, "container_only": instance_only,
                      "optimized_storage": False, "file": target.name}
            try:
                self.export(name, target, instance_only=instance_only,
                            compression=compression)
                with _failing(f"Failed to record backup '{display(name)}/{backup}'"):
                    write_atomic(directory / f"{backup}{RECORD}", json.dumps(record))
            except BaseException:
                target.unlink(missing_ok=True)
                _remove_if_empty(directory)
                raise
        log.info("Created backup %s/%s", name, backup)
        self.events.lifecycle("instance-backup-created", name, backup=backup)
        return record

    def rename(self, name: str, backup: str, new: str) -> dict[str, Any]:
        """Rename name/backup to name/new (its record and its tarball)."""
        validate_backup_name(new)
        with self.locks.hold(name):
            record = self.get(name, backup)
            directory = self.directory(name)
            if (directory / f"{new}{RECORD}").exists():
                raise Conflict(f"Backup '{display(name)}/{new}' already exists")
            renamed = {**record, "name": new,
                       "file": f"{new}{str(record['file']).removeprefix(backup)}"}
            old_file, new_file = directory / record["file"], directory / renamed["file"]
            with _failing(f"Failed to rename backup '{display(name)}/{backup}'"), \
                    contextlib.ExitStack() as revert:
                write_atomic(directory / f"{new}{RECORD}", json.dumps(renamed))
                revert.callback((directory / f"{new}{RECORD}").unlink, missing_ok=True)
                os.rename(old_file, new_file)
                revert.callback(os.rename, new_file, old_file)
                (directory / f"{backup}{RECORD}").unlink()
                revert.pop_all()
        log.info("Renamed backup %s/%s to %s", name, backup, new)
        self.events.lifecycle("instance-backup-renamed", name, backup=new,
                              old_name=f"{display(name)}/{backup}")
        return renamed

    def delete(self, name: str, backup: str) -> None:
        """Delete name/backup: its record, then its tarball."""
        with self.locks.hold(name):
            self._delete(name, self.get(name, backup))
        self.events.lifecycle("instance-backup-deleted", name, backup=backup)

    def _delete(self, name: str, record: dict[str, Any]) -> None:
        directory = self.directory(name)
        with _failing(f"Failed to delete backup '{display(name)}/{record['name']}'"):
            (directory / f"{record['name']}{RECORD}").unlink(missing_ok=True)
            (directory / str(record["file"])).unlink(missing_ok=True)
        _remove_if_empty(directory)
        log.info("Deleted backup %s/%s", name, record["name"])

    # -- instance hooks (Manager calls them holding the instance's lock) --------------------

    def on_instance_deleted(self, name: str) -> None:
        """An instance's backups go with it (LXD's Delete removes each one). The instance
        is gone already: a failure is logged, not raised, and the minute duty's sweep
        removes the directory of an instance that no longer exists."""
        with self.locks.hold(name):
            gone = self.names(name)
            directory = self.directory(name)
            try:
                shutil.rmtree(directory)
            except FileNotFoundError:
                return
            except OSError as err:
                log.warning("Failed to delete the backups of instance '%s': %s (the sweep "
                            "retries)", name, err.strerror or err)
                return
        for backup in gone:
            self.events.lifecycle("instance-backup-deleted", name, backup=backup)

    def on_instance_renamed(self, old: str, new: str) -> None:
        """An instance's backups move with it (LXD's Rename renames each one, announcing
        instance-backup-renamed with the old "instance/backup" name)."""
        with self.locks.hold(old, new):
            moved = self.names(old)
            source, target = self.directory(old), self.directory(new)
            with _failing(f"Failed to move the backups of instance '{display(old)}'"):
                if target.exists():  # no instance had the name: backups it left behind
                    log.warning("Removing orphaned backups of %s", new)
                    shutil.rmtree(target)
                if source.exists():
                    os.rename(source, target)
        for backup in moved:
            self.events.lifecycle("instance-backup-renamed", new, backup=backup,
                                  old_name=f"{display(old)}/{backup}")

    # -- duties (the daemon's lifecycle loop, once a minute) --------------------------------

    def expire(self, now: datetime) -> list[tuple[str, str]]:
        """Sweep leftovers, then delete every backup whose expires_at is past; returns
        (instance, backup) of each deleted. A failure is logged and skips one instance."""
        gone = []
        for name in self._instance_dirs():
            try:
                self.sweep(name)
                gone += [(name, r["name"]) for r in self.list(name)
                         if _expired(r, now) and self._expire(name, r["name"], now)]
            except LxmgrError as err:
                log.warning("Backups of %s: %s", name, err)
        return gone

    def _expire(self, name: str, backup: str, now: datetime) -> bool:
        """Delete name/backup if it is still there and past its time (checked again under
        the lock: a rename or a delete may have come first)."""
        with self.locks.hold(name):
            record = self._read(self.directory(name), backup)
            if record is None or not _expired(record, now):
                return False
            self._delete(name, record)
        self.events.lifecycle("instance-backup-deleted", name, backup=backup)
        return True

    def sweep(self, name: str) -> list[str]:
        """Remove what a crash or an older lxmgr left in instance name's directory:
        temporaries, tarballs without a record, records without a tarball, and the whole
        directory when no instance has that name. Takes the instance's lock only when
        something is to be removed. Returns the paths removed."""
        if not self._leftovers(name):
            return []
        with self.locks.hold(name):
            leftovers = self._leftovers(name)
            for path in leftovers:
                log.warning("Removing leftover backup file %s", path)
                with _failing(f"Failed to remove leftover backup file '{path}'"):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)
            _remove_if_empty(self.directory(name))
            return [str(p) for p in leftovers]

    def _leftovers(self, name: str) -> list[Path]:
        directory = self.directory(name)
        if not directory.is_dir():
            return []
        if not self.exists(name):
            return [directory]
        files = sorted(directory.iterdir())
        kept: set[str] = set()
        for path in files:
            if path.name.endswith(RECORD) and not path.name.startswith("."):
                record = self._read(directory, path.name.removesuffix(RECORD))
                if record is not None:
                    kept |= {path.name, str(record["file"])}
        return [p for p in files if p.name not in kept]

    def _instance_dirs(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def _make_directory(self, name: str) -> Path:
        """The instance's directory, made 0700 with its parents (tarballs hold whole
        root filesystems)."""
        directory = self.directory(name)
        for path in (self.root.parent, self.root, directory):
            path.mkdir(mode=0o700, exist_ok=True)
        return directory


def _expired(record: dict[str, Any], now: datetime) -> bool:
    try:
        expiry = parse_time(record.get("expires_at"))
    except InvalidConfig:
        return False
    return expiry is not None and expiry <= now


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _remove_if_empty(directory: Path) -> None:
    """Remove an instance's backup directory once its last backup is gone (as LXD)."""
    with contextlib.suppress(OSError):
        directory.rmdir()


@contextlib.contextmanager
def _failing(message: str) -> Iterator[None]:
    """Translate an OSError of the block into one line naming what failed."""
    try:
        yield
    except OSError as err:
        raise LxmgrError(f"{message}: {err.strerror or err}") from err
