"""Snapshots, restores, copies and renames for drivers whose writable state is one directory
of the volume (overlay: upper/, dir: rootfs/), made with `cp -a --reflink=auto`.

Imports lxmgr.storage.base/shift and lxmgr.errors. A copy keeps owners (shifted ids stay
shifted: source and copy share the idmap), modes, xattrs (overlay's trusted.overlay.* and
whiteouts included) and hard links; on filesystems with reflinks (btrfs, xfs) it shares
blocks, elsewhere it costs the size of the state. Each step builds in a dot-named temp
directory and renames it into place, so a failure leaves the volume and snapshots as they
were.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import ClassVar

from lxmgr.errors import Conflict, NotFound
from lxmgr.storage.base import StorageDriver, make_dir, remove_tree
from lxmgr.storage.shift import copy_tree


def copy_dir(src: Path, dest: Path) -> None:
    """dest (which must not exist) becomes a copy of src, top directory attributes too."""
    st = os.lstat(src)
    make_dir(dest, st.st_mode & 0o7777)
    os.chown(dest, st.st_uid, st.st_gid)
    copy_tree(src, dest)


class DirStateSnapshots(StorageDriver):
    """The snapshot interface for a volume whose state is volume_dir(name)/<state_dir>."""

    state_dir: ClassVar[str]
    can_snapshot = True

    def _state(self, name: str, snapshot: str | None = None) -> Path:
        base = self.snapshot_dir(name, snapshot) if snapshot else self.volume_dir(name)
        path = base / self.state_dir
        if not path.is_dir():
            what = f"Snapshot '{name}/{snapshot}'" if snapshot else f"Volume '{name}'"
            raise NotFound(f"{what} has no {self.state_dir} directory")
        return path

    def state_path(self, name: str, snapshot: str | None = None) -> Path:
        return self._state(name, snapshot)

    def _complete_volume(self, vol: Path, state: Path) -> None:
        """Hook: what a new volume needs besides its state (overlay: work/, rootfs/)."""

    def snapshot_volume(self, name: str, snapshot: str) -> None:
        self._keep(self._state(name), name, snapshot)

    def _keep(self, state: Path, name: str, snapshot: str) -> None:
        """Copy state into snapshot_dir(name, snapshot) atomically; Conflict if taken."""
        dest = self.snapshot_dir(name, snapshot)
        if dest.exists():
            raise Conflict(f"Snapshot '{name}/{snapshot}' already exists")
        self.snapshots_dir(name).mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = dest.with_name(f".{snapshot}.tmp-{os.getpid()}")
        with contextlib.ExitStack() as revert:
            revert.callback(_remove_if_empty, self.snapshots_dir(name))  # made for the first
            make_dir(tmp, 0o700)
            revert.callback(remove_tree, tmp)
            copy_dir(state, tmp / self.state_dir)
            os.rename(tmp, dest)
            revert.pop_all()

    def restore_volume(self, name: str, snapshot: str) -> None:
        source = self._state(name, snapshot)
        current = self._state(name)
        vol = current.parent
        fresh, old = vol / f".{self.state_dir}.restore", vol / f".{self.state_dir}.old"
        for leftover in (fresh, old):  # an earlier restore that died half-way
            if leftover.exists():
                remove_tree(leftover)
        with contextlib.ExitStack() as revert:
            revert.callback(remove_tree, fresh)
            copy_dir(source, fresh)
            os.rename(current, old)
            os.rename(fresh, current)
            revert.pop_all()
        remove_tree(old)
        self._after_restore(vol)

    def _after_restore(self, vol: Path) -> None:
        """Hook: reset what belonged to the old state (overlay: the work dir)."""

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        path = self.snapshot_dir(name, snapshot)
        if path.exists():
            remove_tree(path)
        with contextlib.suppress(OSError):  # the last one: drop the instance's directory
            os.rmdir(self.snapshots_dir(name))

    def copy_volume(self, source: str, target: str, *, snapshot: str | None = None) -> None:
        state = self._state(source, snapshot)
        if self.snapshots_dir(target).exists():
            raise Conflict(f"Snapshots of '{target}' already exist")
        vol = self.new_volume_dir(target)
        with contextlib.ExitStack() as revert:
            revert.callback(remove_tree, vol)
            copy_dir(state, vol / self.state_dir)
            self._complete_volume(vol, vol / self.state_dir)
            revert.pop_all()

    def copy_snapshot(self, source: str, snapshot: str, target: str) -> None:
        self._keep(self._state(source, snapshot), target, snapshot)

    def rename_volume(self, name: str, new_name: str) -> None:
        old_vol, new_vol = self.volume_dir(name), self.volume_dir(new_name)
        old_snaps, new_snaps = self.snapshots_dir(name), self.snapshots_dir(new_name)
        if new_vol.exists() or new_snaps.exists():
            raise Conflict(f"Volume '{new_name}' already exists")
        if not old_vol.is_dir():
            raise NotFound(f"Volume '{name}' not found")
        os.rename(old_vol, new_vol)
        if old_snaps.exists():
            try:
                os.rename(old_snaps, new_snaps)
            except OSError:
                os.rename(new_vol, old_vol)
                raise


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)
