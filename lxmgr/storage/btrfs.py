"""The `btrfs` driver: instances are writable snapshots of a per-pool image subvolume.

Imports lxmgr.storage.base/btrfs_utils/shift, lxmgr.linux.btrfs, lxmgr.model, lxmgr.errors;
never lxmgr.instances. Layout of the pool (a mounted btrfs, see btrfs_pool.py), as LXD's:

    images/<fingerprint>/rootfs       read-only subvolume, the image copied in once
    containers/<name>/rootfs          writable snapshot of the image subvolume
    .snapshots/<name>/<snapshot>      read-only snapshots of containers/<name>

Creating, snapshotting, restoring and copying a volume are each one snapshot ioctl: constant
time whatever the size. With idmapped mounts the subvolumes stay owned by host root and
the runtime binds rootfs/ through an idmapped clone; without them, create_volume shifts the
new volume's rootfs once (O(files), as dir does). Sizes are qgroup limits on referenced
bytes (btrfs_utils explains what quotas cost). Nested subvolumes made inside a container
are deleted with it but are not part of its snapshots or copies (btrfs snapshots are not
recursive).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from lxmgr.errors import Conflict, InvalidConfig, KernelError, NotFound, NotSupported
from lxmgr.linux import btrfs
from lxmgr.model.idmap import IdMap
from lxmgr.model.rootfs import RootfsSpec
from lxmgr.storage import btrfs_utils as utils
from lxmgr.storage.base import (
    ImageLike,
    StorageDriver,
    check_volume_name,
    make_dir,
    mounts_below,
)
from lxmgr.storage.shift import copy_tree, shift_tree

log = logging.getLogger(__name__)
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """OSError -> our errors, the message starting with what ("Failed to snapshot 'c1'")."""
    try:
        yield
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        cls = {errno.EEXIST: Conflict, errno.ENOTEMPTY: Conflict,
               errno.ENOENT: NotFound}.get(err.errno or 0, KernelError)
        raise cls(f"{what}: {reason}") from err


class BtrfsDriver(StorageDriver):
    """Volumes are subvolumes of the btrfs mounted at pool_dir (default storage_dir()/btrfs)."""

    name = "btrfs"
    constant_time_create = True
    can_snapshot = True
    constant_time_snapshot = True
    can_limit_size = True

    def __init__(self, pool_dir: Path | None = None, idmapped: bool | None = None) -> None:
        super().__init__(idmapped, pool_dir=pool_dir)

    def volume_dir(self, name: str) -> Path:
        return self.pool_dir() / "containers" / check_volume_name(name)

    def image_dir(self, fingerprint: str) -> Path:
        """The pool's read-only image subvolume for fingerprint."""
        if not _IMAGE_RE.match(fingerprint):
            raise InvalidConfig(f"Invalid image fingerprint '{fingerprint}'")
        return self.pool_dir() / "images" / fingerprint

    # -- volumes --------------------------------------------------------------------------------

    def create_volume(self, name: str, image: ImageLike, idmap: IdMap | None) -> None:
        vol = self.volume_dir(name)
        if vol.exists():
            raise Conflict(f"Volume '{name}' already exists")
        source = self.ensure_image(image)
        with translated(f"Failed to create volume '{name}'"), contextlib.ExitStack() as revert:
            btrfs.snap_create(source, vol)
            revert.callback(utils.delete_subvolume_tree, vol)
            if idmap is not None and not self.idmapped:
                shift_tree(vol / "rootfs", idmap)
            revert.pop_all()

    def delete_volume(self, name: str) -> None:
        """Remove the volume, its nested subvolumes and its snapshots; missing is fine."""
        vol = self.volume_dir(name)
        self._refuse_mounted(vol)
        for snapshot in self.list_snapshots(name):
            self.delete_snapshot(name, snapshot)
        with translated(f"Failed to delete volume '{name}'"):
            self._delete_subvolume(vol)

    def rootfs_spec(self, name: str, image_rootfs: str | os.PathLike[str],
                    idmap: IdMap | None) -> RootfsSpec:
        rootfs = str(self.volume_dir(name) / "rootfs")
        return RootfsSpec("bind", target=rootfs, source=rootfs,
                          idmap_lower=idmap is not None and self.idmapped)

    # -- images ---------------------------------------------------------------------------------

    def ensure_image(self, image: ImageLike) -> Path:
        """The image's read-only subvolume, copied from image.rootfs on first use.

        Built under a temporary name and renamed into place once read-only, so a crash or a
        concurrent build never leaves a half-copied image that later volumes would snapshot.
        """
        pool = self._require_pool()
        dest = self.image_dir(Path(image.rootfs).parent.name)
        if btrfs.is_subvolume(dest):
            return dest
        tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")
        with translated(f"Failed to import image '{dest.name}' into pool '{pool}'"), \
                contextlib.ExitStack() as revert:
            btrfs.subvol_create(tmp)
            revert.callback(utils.delete_subvolume_tree, tmp)
            os.chmod(tmp, 0o711)
            make_dir(tmp / "rootfs", os.stat(image.rootfs).st_mode & 0o7777)
            copy_tree(Path(image.rootfs), tmp / "rootfs")
            utils.set_readonly(tmp, True)
            if not _rename_unless_taken(tmp, dest):
                return dest  # another creator won the race; the revert drops our copy
            revert.pop_all()
        return dest

    def delete_image(self, fingerprint: str) -> None:
        """Drop the pool's copy of an image (volumes made from it do not depend on it)."""
        with translated(f"Failed to delete image '{fingerprint}' from pool"):
            self._delete_subvolume(self.image_dir(fingerprint))

    # -- snapshots, copies, renames -------------------------------------------------------------

    def list_snapshots(self, name: str) -> list[str]:
        """The volume's snapshot names, sorted."""
        snaps = self.snapshots_dir(name)
        return sorted(p.name for p in snaps.iterdir()) if snaps.is_dir() else []

    def state_path(self, name: str, snapshot: str | None = None) -> Path:
        base = self._existing_snapshot(name, snapshot) if snapshot else \
            self._existing_volume(name)
        return base / "rootfs"

    def snapshot_volume(self, name: str, snapshot: str) -> None:
        vol = self._existing_volume(name)
        dest = self.snapshot_dir(name, snapshot)
        if dest.exists():
            raise Conflict(f"Snapshot '{name}/{snapshot}' already exists")
        with translated(f"Failed to snapshot volume '{name}' as '{snapshot}'"):
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            btrfs.snap_create(vol, dest, readonly=True)

    def restore_volume(self, name: str, snapshot: str) -> None:
        """Swap in a writable snapshot of the snapshot; the old volume is deleted after the
        swap, and its qgroup limit carried over."""
        vol = self._existing_volume(name)
        snap = self._existing_snapshot(name, snapshot)
        tag = secrets.token_hex(4)
        fresh, old = vol.with_name(f".{name}.restore-{tag}"), vol.with_name(f".{name}.old-{tag}")
        with translated(f"Failed to restore volume '{name}' from '{snapshot}'"):
            utils.swap_in_snapshot(vol, snap, fresh, old, self._limit_of(vol))
        with translated(f"Failed to delete the replaced volume of '{name}'"):
            self._delete_subvolume(old)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        snap = self.snapshot_dir(name, snapshot)
        with translated(f"Failed to delete snapshot '{name}/{snapshot}'"):
            self._delete_subvolume(snap)
        with contextlib.suppress(OSError):  # still holds other snapshots, or gone
            snap.parent.rmdir()

    def copy_volume(self, source: str, target: str, *, snapshot: str | None = None) -> None:
        src = self._existing_snapshot(source, snapshot) if snapshot else \
            self._existing_volume(source)
        dest = self.volume_dir(target)
        if dest.exists():
            raise Conflict(f"Volume '{target}' already exists")
        origin = f"'{source}/{snapshot}'" if snapshot else f"'{source}'"
        with translated(f"Failed to copy volume {origin} to '{target}'"):
            btrfs.snap_create(src, dest)

    def rename_volume(self, name: str, new_name: str) -> None:
        vol = self._existing_volume(name)
        dest, snaps, new_snaps = (self.volume_dir(new_name), self.snapshots_dir(name),
                                  self.snapshots_dir(new_name))
        if dest.exists() or new_snaps.exists():
            raise Conflict(f"Volume '{new_name}' already exists")
        with translated(f"Failed to rename volume '{name}' to '{new_name}'"), \
                contextlib.ExitStack() as revert:
            os.rename(vol, dest)
            revert.callback(os.rename, dest, vol)
            if snaps.exists():
                os.rename(snaps, new_snaps)
            revert.pop_all()

    # -- sizes and usage ------------------------------------------------------------------------

    def set_size(self, name: str, size_bytes: int | None) -> None:
        """Limit the volume's referenced bytes (None: unlimited); writes past it fail with
        EDQUOT. Enables quotas on the pool on first use (costly, see btrfs_utils)."""
        vol = self._existing_volume(name)
        if size_bytes is not None and size_bytes <= 0:
            raise InvalidConfig(f"Invalid size {size_bytes} for volume '{name}'")
        with translated(f"Failed to set the size of volume '{name}'"):
            utils.limit_subvolume(self.pool_dir(), vol, size_bytes)

    def volume_usage(self, name: str) -> int | None:
        """Bytes the volume references (shared image data included); None without quotas."""
        vol = self._existing_volume(name)
        with translated(f"Failed to read the usage of volume '{name}'"):
            group = utils.qgroup_of(vol) if utils.quota_enabled(self.pool_dir()) else None
        return group.referenced if group else None

    def usage(self) -> dict[str, int]:
        """The pool's total, used and free bytes."""
        pool = self._require_pool()
        with translated(f"Failed to read the usage of pool '{pool}'"):
            return utils.pool_usage(pool)

    # -- private --------------------------------------------------------------------------------

    def _require_pool(self) -> Path:
        """The pool dir, checked to be btrfs, with images/ and containers/ made."""
        pool = self.pool_dir()
        try:
            btrfs.fs_uuid(pool)
        except OSError as err:
            raise NotSupported(f"Storage pool '{pool}' is not a mounted btrfs filesystem: "
                               f"{os.strerror(err.errno)}") from err
        for sub in ("images", "containers"):
            (pool / sub).mkdir(mode=0o711, exist_ok=True)
        return pool

    def _existing_volume(self, name: str) -> Path:
        vol = self.volume_dir(name)
        if not btrfs.is_subvolume(vol):
            raise NotFound(f"Volume '{name}' does not exist")
        return vol

    def _existing_snapshot(self, name: str, snapshot: str) -> Path:
        snap = self.snapshot_dir(name, snapshot)
        if not btrfs.is_subvolume(snap):
            raise NotFound(f"Snapshot '{name}/{snapshot}' does not exist")
        return snap

    def _limit_of(self, vol: Path) -> int | None:
        return utils.limit_of(self.pool_dir(), vol)

    def _delete_subvolume(self, path: Path) -> None:
        """Delete a subvolume tree and (with quotas on) its qgroup; missing is fine."""
        utils.delete_subvolume_and_qgroup(self.pool_dir(), path)

    @staticmethod
    def _refuse_mounted(path: Path) -> None:
        if path.exists() and (mounted := mounts_below(path)):
            raise Conflict(f"Refusing to delete '{path}': '{mounted[0]}' is mounted there")


def _rename_unless_taken(src: Path, dest: Path) -> bool:
    """rename(2) src to dest; False when dest exists already (non-empty: ENOTEMPTY/EEXIST)."""
    try:
        os.rename(src, dest)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True
