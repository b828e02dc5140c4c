"""Custom volumes on a btrfs pool: each volume a subvolume (custom/<name>), each snapshot a
read-only subvolume snapshot (custom-snapshots/<name>/<snapshot>), as LXD lays them out.

Imports lxmgr.storage.custom/btrfs/btrfs_utils/shift, lxmgr.linux.btrfs, lxmgr.errors.
Snapshots, restores and copies within the pool are one snapshot ioctl each (constant time);
copies from another pool are a new subvolume filled with `cp -a`. `size` is a qgroup limit
on the volume's referenced bytes (writes past it fail with EDQUOT), carried over by a
restore; quotas are switched on by the first limit (btrfs_utils says what they cost).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lxmgr.errors import Conflict, InvalidConfig, NotSupported
from lxmgr.linux import btrfs
from lxmgr.storage import btrfs_utils as utils
from lxmgr.storage.base import mounts_below
from lxmgr.storage.btrfs import translated
from lxmgr.storage.custom import ROOT_MODE, CustomVolumes
from lxmgr.storage.shift import copy_tree


class BtrfsCustomVolumes(CustomVolumes):
    volumes_dir = "custom"
    snapshots_dir = "custom-snapshots"
    can_limit_size = True

    def create(self, name: str) -> None:
        vol = self._new_subvolume_path(self.volume_path(name))
        with translated(f"Failed to create storage volume '{name}'"):
            btrfs.subvol_create(vol)
            os.chmod(vol, ROOT_MODE)

    def delete(self, name: str) -> None:
        vol = self.volume_path(name)
        if vol.exists() and (mounted := mounts_below(vol)):
            raise Conflict(f"Refusing to delete '{vol}': '{mounted[0]}' is mounted there")
        for snapshot in self.list_snapshots(name):
            self.delete_snapshot(name, snapshot)
        with translated(f"Failed to delete storage volume '{name}'"):
            utils.delete_subvolume_and_qgroup(self.pool_dir, vol)
        with contextlib.suppress(OSError):
            self.snapshots_path(name).rmdir()

    def import_volume(self, source: Path, name: str) -> None:
        dest = self._new_subvolume_path(self.volume_path(name))
        with translated(f"Failed to copy into storage volume '{name}'"):
            self._fill(source, dest, readonly=False)

    def import_snapshot(self, source: Path, name: str, snapshot: str) -> None:
        dest = self.snapshot_path(name, snapshot)
        if os.path.lexists(dest):
            raise Conflict(f"Snapshot '{name}/{snapshot}' already exists")
        self._require_pool()
        with translated(f"Failed to snapshot storage volume '{name}' as '{snapshot}'"):
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fill(source, dest, readonly=True)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        snap = self.snapshot_path(name, snapshot)
        with translated(f"Failed to delete snapshot '{name}/{snapshot}'"):
            utils.delete_subvolume_and_qgroup(self.pool_dir, snap)
        with contextlib.suppress(OSError):  # still holds other snapshots, or gone
            snap.parent.rmdir()

    def restore(self, name: str, snapshot: str) -> None:
        """Swap in a writable snapshot of the snapshot (its qgroup limit carried over);
        the replaced subvolume is deleted after the swap."""
        vol, snap = self.existing(name), self.existing(name, snapshot)
        fresh, old = self._temp(vol), self._temp(vol)
        with translated(f"Failed to restore storage volume '{name}' from '{snapshot}'"):
            utils.swap_in_snapshot(vol, snap, fresh, old, utils.limit_of(self.pool_dir, vol))
        with translated(f"Failed to delete the replaced subvolume of '{name}'"):
            utils.delete_subvolume_and_qgroup(self.pool_dir, old)

    def set_size(self, name: str, size_bytes: int | None) -> None:
        vol = self.existing(name)
        if size_bytes is not None and size_bytes <= 0:
            raise InvalidConfig(f"Invalid size {size_bytes} for storage volume '{name}'")
        with translated(f"Failed to set the size of storage volume '{name}'"):
            utils.limit_subvolume(self.pool_dir, vol, size_bytes)

    # -- private ------------------------------------------------------------------------------

    def _require_pool(self) -> None:
        try:
            btrfs.fs_uuid(self.pool_dir)
        except OSError as err:
            raise NotSupported(f"Storage pool '{self.pool}' is not a mounted btrfs "
                               f"filesystem: {os.strerror(err.errno or 0)}") from err

    def _new_subvolume_path(self, path: Path) -> Path:
        self._require_pool()
        return self._new_path(path)

    def _fill(self, source: Path, dest: Path, *, readonly: bool) -> None:
        """dest (missing) becomes a subvolume holding source's content: a snapshot when
        source is a subvolume of this filesystem, else a copy built under a temporary name."""
        if btrfs.is_subvolume(source) and btrfs.fs_uuid(source) == btrfs.fs_uuid(self.pool_dir):
            btrfs.snap_create(source, dest, readonly=readonly)
            return
        tmp = self._temp(dest)
        with contextlib.ExitStack() as revert:
            btrfs.subvol_create(tmp)
            revert.callback(utils.delete_subvolume_tree, tmp)
            st = os.lstat(source)
            os.chmod(tmp, st.st_mode & 0o7777)
            os.chown(tmp, st.st_uid, st.st_gid)
            copy_tree(source, tmp)
            if readonly:
                utils.set_readonly(tmp, True)
            os.rename(tmp, dest)
            revert.pop_all()
