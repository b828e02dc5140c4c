"""Storage drivers: the StorageDriver ABC and the DRIVERS registry (RootfsSpec is in model).

Imports lxmgr.model, lxmgr.errors and lxmgr.paths. A driver owns the per-instance volume
under paths.storage_dir()/<driver>/<instance>/ and describes, as a RootfsSpec, how the
runtime mounts the instance's root filesystem; runtime.rootfs.mount_rootfs() applies it.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Protocol

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotSupported, UnknownDriver
from lxmgr.model.idmap import IdMap
from lxmgr.model.project import check_key_project, storage_parts
from lxmgr.model.rootfs import RootfsSpec
from lxmgr.model.snapshot import validate_snapshot_name
from lxmgr.storage.mount import supports_idmapped_overlay

BUILTIN = ("dir", "overlay", "btrfs")  # modules under lxmgr.storage that register a driver
DRIVERS: dict[str, type[StorageDriver]] = {}
_VOLUME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


class ImageLike(Protocol):
    """What a driver needs from an image (images.store.ImageInfo satisfies it)."""

    @property
    def rootfs(self) -> Path: ...


def check_volume_name(name: str) -> str:
    """Instance names become path components: no slashes, dots or leading dashes; an
    instance of another project than default is PROJECT_NAME (lxmgr.model.project)."""
    project, instance = storage_parts(name)
    if not _VOLUME_RE.match(instance):
        raise InvalidConfig(f"Invalid volume name '{name}'")
    check_key_project(project, name, "volume")
    return name


class StorageDriver(ABC):
    """One backend per config value; subclasses register themselves by `name`."""

    name: ClassVar[str]
    constant_time_create: ClassVar[bool] = False  # create_volume does not copy the image
    shares_image: ClassVar[bool] = False  # volumes keep using the image rootfs (don't delete)
    can_snapshot: ClassVar[bool] = False  # snapshot/restore/copy/rename are implemented
    constant_time_snapshot: ClassVar[bool] = False  # a snapshot copies nothing (btrfs)
    can_limit_size: ClassVar[bool] = False  # set_size (the root disk's `size`) works

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            DRIVERS[cls.name] = cls

    def __init__(self, idmapped: bool | None = None, *, pool_dir: Path | None = None) -> None:
        self._idmapped = idmapped  # None: probe the kernel on first use
        self._pool_dir = pool_dir  # None: the driver's own default pool, storage_dir()/<name>

    @property
    def idmapped(self) -> bool:
        """True when the kernel mounts overlayfs over idmapped lowers (probed once)."""
        if self._idmapped is None:
            self._idmapped = supports_idmapped_overlay()
        return self._idmapped

    def new_volume_dir(self, name: str) -> Path:
        """Make the (empty, 0711) volume directory; Conflict if it exists."""
        vol = self.volume_dir(name)
        self.pool_dir().mkdir(mode=0o711, parents=True, exist_ok=True)
        make_dir(vol, 0o711)
        return vol

    def pool_dir(self) -> Path:
        return self._pool_dir or paths.storage_dir() / self.name

    def usage(self) -> dict[str, int]:
        """The pool's space: total, used and free bytes of the filesystem it lives on."""
        directory = self.pool_dir()
        while not directory.exists():
            directory = directory.parent
        st = os.statvfs(directory)
        total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        return {"total": total, "used": total - st.f_bfree * st.f_frsize, "free": free}

    def volume_dir(self, name: str) -> Path:
        return self.pool_dir() / check_volume_name(name)

    def volume_exists(self, name: str) -> bool:
        return self.volume_dir(name).is_dir()

    @abstractmethod
    def create_volume(self, name: str, image: ImageLike, idmap: IdMap | None) -> None:
        """Make the instance's volume from image; Conflict if it exists."""

    def delete_volume(self, name: str) -> None:
        """Remove the instance's volume and its snapshots (never the image); missing is
        fine."""
        for path in (self.volume_dir(name), self.snapshots_dir(name)):
            if path.exists():
                remove_tree(path)

    @abstractmethod
    def rootfs_spec(self, name: str, image_rootfs: str | os.PathLike[str],
                    idmap: IdMap | None) -> RootfsSpec:
        """The PURE mount plan for the instance's rootfs (no I/O)."""

    # -- snapshots, copies, renames (can_snapshot) ---------------------------------------------
    # Snapshots live in pool_dir()/.snapshots/<volume>/<snapshot>/ (a leading dot: no volume
    # can be named so). The volume's writable state is what a snapshot keeps (overlay: the
    # upper layer; dir: the rootfs; btrfs: a read-only subvolume snapshot). Callers stop or
    # freeze the instance first when they need a consistent copy.

    def snapshots_dir(self, name: str) -> Path:
        return self.pool_dir() / ".snapshots" / check_volume_name(name)

    def snapshot_dir(self, name: str, snapshot: str) -> Path:
        validate_snapshot_name(snapshot)
        return self.snapshots_dir(name) / snapshot

    def snapshot_exists(self, name: str, snapshot: str) -> bool:
        return self.snapshot_dir(name, snapshot).is_dir()

    def state_path(self, name: str, snapshot: str | None = None) -> Path:
        """The directory holding the volume's (or its snapshot's) writable state: overlay's
        upper layer (the image is the rest of the view), else the whole rootfs."""
        raise NotSupported(f"Storage driver '{self.name}' cannot show a volume's state")

    def snapshot_volume(self, name: str, snapshot: str) -> None:
        """Keep the volume's current state as snapshot; Conflict if it exists."""
        raise NotSupported(f"Storage driver '{self.name}' cannot snapshot")

    def restore_volume(self, name: str, snapshot: str) -> None:
        """Make the volume's state the snapshot's again (the instance is stopped)."""
        raise NotSupported(f"Storage driver '{self.name}' cannot restore snapshots")

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        """Remove one snapshot; a missing one is fine."""
        raise NotSupported(f"Storage driver '{self.name}' cannot snapshot")

    def copy_volume(self, source: str, target: str, *, snapshot: str | None = None) -> None:
        """A new volume target holding source's state (or its snapshot's); no snapshots are
        copied. Conflict if target exists; nothing is left behind on failure."""
        raise NotSupported(f"Storage driver '{self.name}' cannot copy volumes")

    def set_size(self, name: str, size_bytes: int | None) -> None:
        """Limit the volume to size_bytes (None: no limit); can_limit_size drivers only."""
        raise NotSupported(f"Storage driver '{self.name}' cannot limit a volume's size")

    def copy_snapshot(self, source: str, snapshot: str, target: str) -> None:
        """Copy one snapshot of source into target's snapshots (a copy with snapshots)."""
        raise NotSupported(f"Storage driver '{self.name}' cannot copy snapshots")

    def rename_volume(self, name: str, new_name: str) -> None:
        """Rename a (stopped) volume together with its snapshots; Conflict if taken."""
        raise NotSupported(f"Storage driver '{self.name}' cannot rename volumes")


def load(name: str, pool_dir: Path | None = None) -> StorageDriver:
    """An instance of the driver registered as name (on the pool at pool_dir, default: the
    driver's own under storage_dir()); UnknownDriver otherwise."""
    for module in BUILTIN:
        importlib.import_module(f"lxmgr.storage.{module}")
    try:
        cls = DRIVERS[name]
    except KeyError:
        raise UnknownDriver(f"Unknown storage driver '{name}' (available: "
                            f"{', '.join(sorted(DRIVERS))})") from None
    return cls(pool_dir=pool_dir)


def mounts_below(path: Path) -> list[str]:
    """Mount points strictly below path in our mount namespace (from /proc/self/mountinfo)."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(prefix) or p == prefix[:-1]]


def remove_tree(path: Path) -> None:
    """rm -rf path, refusing when something is mounted on or below it."""
    mounted = mounts_below(path)
    if mounted:
        raise Conflict(f"Refusing to remove '{path}': '{mounted[0]}' is mounted there")
    shutil.rmtree(path)


def make_dir(path: Path, mode: int) -> None:
    """mkdir with an exact mode (umask ignored); Conflict if it exists."""
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        raise Conflict(f"Volume path '{path}' already exists") from None
    os.chmod(path, mode)
