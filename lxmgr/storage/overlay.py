"""The `overlay` driver: a shared read-only image lower plus a per-instance upper layer.

Imports lxmgr.storage.base/copies/mount/shift, lxmgr.model, lxmgr.paths. create_volume is constant
time: it makes upper/, work/ and the rootfs/ mount point and chowns only the upper and work
top directories to the container's root (kernel-facts recipe A2); nothing is copied. Without
idmapped mounts the lower is a shifted copy of the image made once per (image, idmap) under
storage_dir()/shifted/ and shared by every instance with that idmap.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from lxmgr import paths
from lxmgr.model.idmap import IdMap
from lxmgr.storage.base import ImageLike, RootfsSpec, make_dir, remove_tree
from lxmgr.storage.copies import DirStateSnapshots
from lxmgr.storage.shift import shifted_copy


def shifted_dir(image_rootfs: str | os.PathLike[str], idmap: IdMap) -> Path:
    """storage_dir()/shifted/<fingerprint>-<uid_base>[-<gid_base>][-r<hash>] for an image
    rootfs; the hash names the raw.idmap entries, which move some owners elsewhere."""
    fingerprint = Path(image_rootfs).parent.name
    suffix = f"{idmap.uid_base}" if idmap.uid_base == idmap.gid_base else \
        f"{idmap.uid_base}-{idmap.gid_base}"
    if idmap.raw:
        text = idmap.uid_map_text() + "/" + idmap.gid_map_text()
        suffix += "-r" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return paths.storage_dir() / "shifted" / f"{fingerprint}-{suffix}"


def ensure_shifted(image_rootfs: Path, idmap: IdMap) -> Path:
    """The shifted copy of image_rootfs for idmap, made on first use."""
    dest = shifted_dir(image_rootfs, idmap)
    if not dest.is_dir():
        dest.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
        shifted_copy(image_rootfs, dest, idmap)
    return dest


class OverlayDriver(DirStateSnapshots):
    """Volumes are storage_dir()/overlay/<name>/{upper,work,rootfs}; a snapshot is a copy
    of upper/ (the image stays shared)."""

    name = "overlay"
    constant_time_create = True
    shares_image = True
    state_dir = "upper"

    def create_volume(self, name: str, image: ImageLike, idmap: IdMap | None) -> None:
        vol = self.new_volume_dir(name)
        with contextlib.ExitStack() as revert:
            revert.callback(remove_tree, vol)
            root_mode = os.stat(image.rootfs).st_mode & 0o7777
            make_dir(vol / "upper", root_mode)  # the merged "/" takes its attributes
            make_dir(vol / "work", 0o700)
            make_dir(vol / "rootfs", 0o755)
            if idmap is not None:
                for sub in ("upper", "work"):
                    os.chown(vol / sub, idmap.host_uid(0), idmap.host_gid(0))
                if not self.idmapped:
                    ensure_shifted(Path(image.rootfs), idmap)
            revert.pop_all()

    def _complete_volume(self, vol: Path, state: Path) -> None:
        st = os.lstat(state)
        make_dir(vol / "work", 0o700)
        os.chown(vol / "work", st.st_uid, st.st_gid)
        make_dir(vol / "rootfs", 0o755)

    def _after_restore(self, vol: Path) -> None:
        """overlayfs' work dir belongs to the upper it was used with: start it afresh."""
        work = vol / "work"
        st = os.lstat(vol / "upper")
        if work.exists():
            remove_tree(work)
        make_dir(work, 0o700)
        os.chown(work, st.st_uid, st.st_gid)

    def rootfs_spec(self, name: str, image_rootfs: str | os.PathLike[str],
                    idmap: IdMap | None) -> RootfsSpec:
        vol = self.volume_dir(name)
        lower = str(image_rootfs)
        if idmap is not None and not self.idmapped:
            lower = str(shifted_dir(image_rootfs, idmap))
        return RootfsSpec("overlay", target=str(vol / "rootfs"), lower=lower,
                          upper=str(vol / "upper"), work=str(vol / "work"),
                          idmap_lower=idmap is not None and self.idmapped)
