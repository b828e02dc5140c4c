"""The `dir` driver: a private full copy of the image per instance (the simple fallback).

Imports lxmgr.storage.base/copies/mount/shift and lxmgr.model. With idmapped mounts the copy stays
owned by host root on disk and the runtime binds it through an idmapped clone; without them,
the copy is shifted in place once (shift.shift_tree) and bound plainly.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lxmgr.model.idmap import IdMap
from lxmgr.storage.base import ImageLike, RootfsSpec, make_dir, remove_tree
from lxmgr.storage.copies import DirStateSnapshots
from lxmgr.storage.shift import copy_tree, shift_tree


class DirDriver(DirStateSnapshots):
    """Volumes are storage_dir()/dir/<name>/rootfs (bound onto itself at start); a snapshot
    is a full copy of rootfs/."""

    name = "dir"
    constant_time_create = False
    state_dir = "rootfs"

    def create_volume(self, name: str, image: ImageLike, idmap: IdMap | None) -> None:
        vol = self.new_volume_dir(name)
        with contextlib.ExitStack() as revert:
            revert.callback(remove_tree, vol)
            rootfs = vol / "rootfs"
            make_dir(rootfs, 0o755)
            copy_tree(Path(image.rootfs), rootfs)
            if idmap is not None and not self.idmapped:
                shift_tree(rootfs, idmap)
            revert.pop_all()

    def rootfs_spec(self, name: str, image_rootfs: str | os.PathLike[str],
                    idmap: IdMap | None) -> RootfsSpec:
        rootfs = str(self.volume_dir(name) / "rootfs")
        return RootfsSpec("bind", target=rootfs, source=rootfs,
                          idmap_lower=idmap is not None and self.idmapped)
