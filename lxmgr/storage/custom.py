"""Custom volumes in a pool: filesystems that disk devices mount into instances (LXD's custom
storage volumes), with read-only snapshots, restores, copies and renames.

Imports lxmgr.storage.base/copies, lxmgr.model and lxmgr.errors; never lxmgr.instances. A
volume is one directory that disk devices bind (idmapped) into containers; its root is made
owned by host root with mode 0711, as LXD's EnsureMountPath makes custom volumes, so through
an idmapped mount it belongs to each container's root. Layout per pool driver:

    dir, overlay  <pool>/.custom/<name>, <pool>/.custom-snapshots/<name>/<snapshot>
                  (dot-named: instance volumes live in the same directory as
                  <pool>/<instance>, and no instance can be named so)
    btrfs         <pool>/custom/<name>, <pool>/custom-snapshots/<name>/<snapshot>
                  (LXD's layout; subvolumes, see btrfs_custom.py)

Every step that fills a new directory builds it under a dot-named temporary name and
renames it into place, so a failure leaves no half-made volume or snapshot.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from lxmgr.errors import Conflict, NotFound, NotSupported
from lxmgr.model.snapshot import validate_snapshot_name
from lxmgr.model.volume import validate_stored_volume_name
from lxmgr.storage.base import make_dir, remove_tree
from lxmgr.storage.copies import copy_dir

ROOT_MODE = 0o711  # a new volume's root directory (LXD: custom volumes are 0711)


class CustomVolumes(ABC):
    """The custom volumes of one pool (pool_dir: where the pool lives on the host)."""

    volumes_dir: ClassVar[str]
    snapshots_dir: ClassVar[str]
    can_limit_size: ClassVar[bool] = False  # set_size works (btrfs qgroups)

    def __init__(self, pool: str, pool_dir: Path) -> None:
        self.pool = pool  # the pool's name, for messages
        self.pool_dir = pool_dir

    def volume_path(self, name: str) -> Path:
        """The volume's directory on the host (what a disk device mounts)."""
        return self.pool_dir / self.volumes_dir / validate_stored_volume_name(name)

    def snapshots_path(self, name: str) -> Path:
        return self.pool_dir / self.snapshots_dir / validate_stored_volume_name(name)

    def snapshot_path(self, name: str, snapshot: str) -> Path:
        validate_snapshot_name(snapshot)
        return self.snapshots_path(name) / snapshot

    def exists(self, name: str) -> bool:
        return self.volume_path(name).is_dir()

    def existing(self, name: str, snapshot: str | None = None) -> Path:
        """The volume's (or its snapshot's) directory; NotFound when missing on disk."""
        path = self.snapshot_path(name, snapshot) if snapshot else self.volume_path(name)
        if not path.is_dir():
            what = f"snapshot '{name}/{snapshot}'" if snapshot else f"'{name}'"
            raise NotFound(f"Storage volume {what} is missing from pool '{self.pool}'")
        return path

    def check_free(self, name: str) -> None:
        """Conflict when anything of a volume name is on disk (a leftover without a record
        is never overwritten nor removed)."""
        for path in (self.volume_path(name), self.snapshots_path(name)):
            if os.path.lexists(path):
                raise Conflict(f"Volume path '{path}' already exists")

    def _new_path(self, path: Path) -> Path:
        """path's parent made (0711); Conflict if path is taken."""
        if os.path.lexists(path):
            raise Conflict(f"Volume path '{path}' already exists")
        path.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
        return path

    @staticmethod
    def _temp(path: Path) -> Path:
        return path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")

    # -- the interface ----------------------------------------------------------------------

    @abstractmethod
    def create(self, name: str) -> None:
        """A new empty volume; Conflict if it exists."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the volume and its snapshots; missing is fine."""

    @abstractmethod
    def import_volume(self, source: Path, name: str) -> None:
        """A new volume holding a copy of the directory source (a volume or a snapshot, in
        this pool or another); Conflict if name exists."""

    @abstractmethod
    def import_snapshot(self, source: Path, name: str, snapshot: str) -> None:
        """A new read-only snapshot of name holding a copy of the directory source."""

    def snapshot(self, name: str, snapshot: str) -> None:
        """Keep the volume's current content as a read-only snapshot; Conflict if taken."""
        self.import_snapshot(self.existing(name), name, snapshot)

    @abstractmethod
    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Remove one snapshot; missing is fine."""

    @abstractmethod
    def restore(self, name: str, snapshot: str) -> None:
        """Make the volume's content the snapshot's again (no instance may have it
        mounted: the volume's directory is replaced)."""

    def rename(self, name: str, new: str) -> None:
        """Rename the volume and its snapshots (not while mounted); Conflict if taken."""
        vol, dest = self.existing(name), self.volume_path(new)
        snaps, new_snaps = self.snapshots_path(name), self.snapshots_path(new)
        if os.path.lexists(dest) or os.path.lexists(new_snaps):
            raise Conflict(f"Storage volume '{new}' already exists in pool '{self.pool}'")
        with contextlib.ExitStack() as revert:
            os.rename(vol, dest)
            revert.callback(os.rename, dest, vol)
            if snaps.exists():
                os.rename(snaps, new_snaps)
            revert.pop_all()

    def rename_snapshot(self, name: str, snapshot: str, new: str) -> None:
        src, dest = self.existing(name, snapshot), self.snapshot_path(name, new)
        if os.path.lexists(dest):
            raise Conflict(f"Snapshot '{name}/{new}' already exists")
        os.rename(src, dest)

    def list_snapshots(self, name: str) -> list[str]:
        """The snapshot directories on disk, sorted (temporary dot-names left out)."""
        snaps = self.snapshots_path(name)
        if not snaps.is_dir():
            return []
        return sorted(p.name for p in snaps.iterdir() if not p.name.startswith("."))

    def set_size(self, name: str, size_bytes: int | None) -> None:
        """Limit the volume to size_bytes (None: no limit); can_limit_size drivers only."""
        raise NotSupported(f"Storage pool '{self.pool}' can't limit a volume's size (only "
                           "btrfs pools have quotas)")


class DirCustomVolumes(CustomVolumes):
    """dir and overlay pools: a volume is a plain directory, a snapshot a full copy
    (`cp -a --reflink=auto`: shared blocks where the filesystem has reflinks)."""

    volumes_dir = ".custom"
    snapshots_dir = ".custom-snapshots"

    def create(self, name: str) -> None:
        vol = self._new_path(self.volume_path(name))
        make_dir(vol, ROOT_MODE)
        os.chown(vol, 0, 0)

    def delete(self, name: str) -> None:
        for path in (self.snapshots_path(name), self.volume_path(name)):
            if path.exists():
                remove_tree(path)

    def import_volume(self, source: Path, name: str) -> None:
        self._copy_in(source, self._new_path(self.volume_path(name)))

    def import_snapshot(self, source: Path, name: str, snapshot: str) -> None:
        dest = self.snapshot_path(name, snapshot)
        if os.path.lexists(dest):
            raise Conflict(f"Snapshot '{name}/{snapshot}' already exists")
        self.snapshots_path(name).mkdir(mode=0o700, parents=True, exist_ok=True)
        self._copy_in(source, dest)

    def _copy_in(self, source: Path, dest: Path) -> None:
        """dest (missing) becomes a copy of source, through a temporary sibling."""
        tmp = self._temp(dest)
        with contextlib.ExitStack() as revert:
            revert.callback(_remove_if_exists, tmp)
            copy_dir(source, tmp)
            os.rename(tmp, dest)
            revert.pop_all()

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        path = self.snapshot_path(name, snapshot)
        if path.exists():
            remove_tree(path)
        with contextlib.suppress(OSError):  # the last one: drop the volume's directory
            os.rmdir(self.snapshots_path(name))

    def restore(self, name: str, snapshot: str) -> None:
        vol, snap = self.existing(name), self.existing(name, snapshot)
        fresh, old = self._temp(vol), vol.with_name(f".{name}.old-{secrets.token_hex(4)}")
        with contextlib.ExitStack() as revert:
            revert.callback(_remove_if_exists, fresh)
            copy_dir(snap, fresh)
            os.rename(vol, old)
            revert.callback(os.rename, old, vol)
            os.rename(fresh, vol)
            revert.pop_all()
        remove_tree(old)


def _remove_if_exists(path: Path) -> None:
    if os.path.lexists(path):
        remove_tree(path)


def load(driver: str, pool: str, pool_dir: Path) -> CustomVolumes:
    """The custom volumes of a pool of driver (dir, overlay or btrfs) at pool_dir."""
    if driver == "btrfs":
        from lxmgr.storage.btrfs_custom import BtrfsCustomVolumes

        return BtrfsCustomVolumes(pool, pool_dir)
    if driver in ("dir", "overlay"):
        return DirCustomVolumes(pool, pool_dir)
    raise NotSupported(f"Storage pool '{pool}' (driver '{driver}') has no custom volumes")
