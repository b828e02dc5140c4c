"""Thin btrfs ioctls: one function per ioctl, C semantics, failure -> OSError naming the path.

Imports nothing from lxmgr. Structures and numbers mirror <linux/btrfs.h>; no policy lives
here (storage/btrfs*.py owns layout, recursion and error translation). Every call takes
paths, opens what the ioctl needs (O_RDONLY|O_DIRECTORY, the kernel only wants a handle on
the filesystem object) and closes it again.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import uuid
from pathlib import Path

# <asm-generic/ioctl.h>
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr


# <linux/btrfs.h>
BTRFS_IOCTL_MAGIC = 0x94
BTRFS_PATH_NAME_MAX = 4087
BTRFS_SUBVOL_NAME_MAX = 4039
BTRFS_INO_LOOKUP_PATH_MAX = 4080
BTRFS_SUBVOL_RDONLY = 1 << 1
BTRFS_FIRST_FREE_OBJECTID = 256  # <linux/btrfs_tree.h>: the inode of every subvolume root
BTRFS_SUPER_MAGIC = 0x9123683E  # <linux/magic.h>


class btrfs_ioctl_vol_args(ctypes.Structure):  # noqa: N801 - kernel spelling
    _fields_ = [("fd", ctypes.c_int64), ("name", ctypes.c_char * (BTRFS_PATH_NAME_MAX + 1))]


class btrfs_ioctl_vol_args_v2(ctypes.Structure):  # noqa: N801 - kernel spelling
    _fields_ = [("fd", ctypes.c_int64), ("transid", ctypes.c_uint64),
                ("flags", ctypes.c_uint64), ("unused", ctypes.c_uint64 * 4),
                ("name", ctypes.c_char * (BTRFS_SUBVOL_NAME_MAX + 1))]


class btrfs_ioctl_ino_lookup_args(ctypes.Structure):  # noqa: N801 - kernel spelling
    _fields_ = [("treeid", ctypes.c_uint64), ("objectid", ctypes.c_uint64),
                ("name", ctypes.c_char * BTRFS_INO_LOOKUP_PATH_MAX)]


class btrfs_ioctl_fs_info_args(ctypes.Structure):  # noqa: N801 - kernel spelling
    _fields_ = [("max_id", ctypes.c_uint64), ("num_devices", ctypes.c_uint64),
                ("fsid", ctypes.c_uint8 * 16), ("nodesize", ctypes.c_uint32),
                ("sectorsize", ctypes.c_uint32), ("clone_alignment", ctypes.c_uint32),
                ("csum_type", ctypes.c_uint16), ("csum_size", ctypes.c_uint16),
                ("flags", ctypes.c_uint64), ("generation", ctypes.c_uint64),
                ("metadata_uuid", ctypes.c_uint8 * 16), ("reserved", ctypes.c_uint8 * 944)]


BTRFS_IOC_SUBVOL_CREATE = _ioc(_IOC_WRITE, 14, ctypes.sizeof(btrfs_ioctl_vol_args))
BTRFS_IOC_SNAP_DESTROY = _ioc(_IOC_WRITE, 15, ctypes.sizeof(btrfs_ioctl_vol_args))
BTRFS_IOC_INO_LOOKUP = _ioc(_IOC_READ | _IOC_WRITE, 18,
                            ctypes.sizeof(btrfs_ioctl_ino_lookup_args))
BTRFS_IOC_SNAP_CREATE_V2 = _ioc(_IOC_WRITE, 23, ctypes.sizeof(btrfs_ioctl_vol_args_v2))
BTRFS_IOC_SUBVOL_GETFLAGS = _ioc(_IOC_READ, 25, ctypes.sizeof(ctypes.c_uint64))
BTRFS_IOC_SUBVOL_SETFLAGS = _ioc(_IOC_WRITE, 26, ctypes.sizeof(ctypes.c_uint64))
BTRFS_IOC_FS_INFO = _ioc(_IOC_READ, 31, ctypes.sizeof(btrfs_ioctl_fs_info_args))


def _open_dir(path: str | os.PathLike[str]) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _ioctl(path: str | os.PathLike[str], request: int, arg: ctypes.Structure | ctypes.c_uint64,
           what: str, subject: str | os.PathLike[str] | None = None) -> None:
    """ioctl(2) on a directory handle of path; OSError(errno, 'what: strerror', subject)
    where subject (default path) is the object the call is about."""
    fd = _open_dir(path)
    try:
        fcntl.ioctl(fd, request, arg, True)
    except OSError as err:
        raise OSError(err.errno, f"{what}: {os.strerror(err.errno)}",
                      str(subject or path)) from None
    finally:
        os.close(fd)


def _name(path: Path, limit: int) -> bytes:
    raw = os.fsencode(path.name)
    if not raw or len(raw) > limit or raw in (b".", b".."):
        raise OSError(22, f"Invalid subvolume name: {os.strerror(22)}", str(path))
    return raw


def subvol_create(path: Path) -> None:
    """BTRFS_IOC_SUBVOL_CREATE: a new empty subvolume at path (its parent must exist)."""
    args = btrfs_ioctl_vol_args(0, _name(path, BTRFS_PATH_NAME_MAX))
    _ioctl(path.parent, BTRFS_IOC_SUBVOL_CREATE, args, "BTRFS_IOC_SUBVOL_CREATE", path)


def snap_create(source: Path, dest: Path, readonly: bool = False) -> None:
    """BTRFS_IOC_SNAP_CREATE_V2: snapshot the subvolume source at dest (BTRFS_SUBVOL_RDONLY
    when readonly). Not recursive: nested subvolumes appear as empty directories."""
    src_fd = _open_dir(source)
    try:
        args = btrfs_ioctl_vol_args_v2(fd=src_fd, flags=BTRFS_SUBVOL_RDONLY if readonly else 0,
                                       name=_name(dest, BTRFS_SUBVOL_NAME_MAX))
        _ioctl(dest.parent, BTRFS_IOC_SNAP_CREATE_V2, args, "BTRFS_IOC_SNAP_CREATE_V2", dest)
    finally:
        os.close(src_fd)


def snap_destroy(path: Path) -> None:
    """BTRFS_IOC_SNAP_DESTROY: delete the subvolume at path (ENOTEMPTY if it holds others).
    The name goes at once; the space comes back when the cleaner thread gets to it."""
    args = btrfs_ioctl_vol_args(0, _name(path, BTRFS_PATH_NAME_MAX))
    _ioctl(path.parent, BTRFS_IOC_SNAP_DESTROY, args, "BTRFS_IOC_SNAP_DESTROY", path)


def subvol_getflags(path: Path) -> int:
    """BTRFS_IOC_SUBVOL_GETFLAGS: the subvolume's flags (BTRFS_SUBVOL_RDONLY)."""
    flags = ctypes.c_uint64(0)
    _ioctl(path, BTRFS_IOC_SUBVOL_GETFLAGS, flags, "BTRFS_IOC_SUBVOL_GETFLAGS")
    return flags.value


def subvol_setflags(path: Path, flags: int) -> None:
    """BTRFS_IOC_SUBVOL_SETFLAGS: set the subvolume's flags (BTRFS_SUBVOL_RDONLY)."""
    _ioctl(path, BTRFS_IOC_SUBVOL_SETFLAGS, ctypes.c_uint64(flags),
           "BTRFS_IOC_SUBVOL_SETFLAGS")


def subvol_id(path: Path) -> int:
    """BTRFS_IOC_INO_LOOKUP (treeid 0): the id of the subvolume holding path (qgroup 0/<id>)."""
    args = btrfs_ioctl_ino_lookup_args(0, BTRFS_FIRST_FREE_OBJECTID)
    _ioctl(path, BTRFS_IOC_INO_LOOKUP, args, "BTRFS_IOC_INO_LOOKUP")
    return int(args.treeid)


def fs_uuid(path: Path) -> str:
    """BTRFS_IOC_FS_INFO: the filesystem's fsid (the /sys/fs/btrfs/<fsid> name); ENOTTY
    when path is not on btrfs."""
    args = btrfs_ioctl_fs_info_args()
    _ioctl(path, BTRFS_IOC_FS_INFO, args, "BTRFS_IOC_FS_INFO")
    return str(uuid.UUID(bytes=bytes(args.fsid)))


def is_subvolume(path: Path) -> bool:
    """A subvolume root is a directory with inode BTRFS_FIRST_FREE_OBJECTID (no ioctl)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return st.st_ino == BTRFS_FIRST_FREE_OBJECTID and os.path.isdir(path)
