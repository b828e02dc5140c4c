"""Thin loop-device ioctls (<linux/loop.h>): find a free device, bind a file, detach, and
list the devices backing a given file.

Imports nothing from lxmgr. Attaching uses LOOP_CTL_GET_FREE + LOOP_CONFIGURE (Linux 5.8)
instead of `losetup --find --show`: one ioctl binds the file and sets LO_FLAGS_AUTOCLEAR
atomically, we know the device we got without parsing output, and the caller holds the
device fd, so a failure before the mount detaches by closing it (autoclear on last close).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import os
from pathlib import Path

# <linux/loop.h>
LOOP_CLR_FD = 0x4C01
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_PARTSCAN = 8
LO_FLAGS_DIRECT_IO = 16
LO_NAME_SIZE = 64
LO_KEY_SIZE = 32
LOOP_CONTROL = "/dev/loop-control"


class loop_info64(ctypes.Structure):  # noqa: N801 - kernel spelling
    _fields_ = [("lo_device", ctypes.c_uint64), ("lo_inode", ctypes.c_uint64),
                ("lo_rdevice", ctypes.c_uint64), ("lo_offset", ctypes.c_uint64),
                ("lo_sizelimit", ctypes.c_uint64), ("lo_number", ctypes.c_uint32),
                ("lo_encrypt_type", ctypes.c_uint32), ("lo_encrypt_key_size", ctypes.c_uint32),
                ("lo_flags", ctypes.c_uint32), ("lo_file_name", ctypes.c_uint8 * LO_NAME_SIZE),
                ("lo_crypt_name", ctypes.c_uint8 * LO_NAME_SIZE),
                ("lo_encrypt_key", ctypes.c_uint8 * LO_KEY_SIZE),
                ("lo_init", ctypes.c_uint64 * 2)]


class loop_config(ctypes.Structure):  # noqa: N801 - kernel spelling
    _fields_ = [("fd", ctypes.c_uint32), ("block_size", ctypes.c_uint32),
                ("info", loop_info64), ("__reserved", ctypes.c_uint64 * 8)]


def ctl_get_free() -> int:
    """LOOP_CTL_GET_FREE: the number of a free loop device (created when needed)."""
    fd = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, LOOP_CTL_GET_FREE)
    except OSError as err:
        raise OSError(err.errno, f"LOOP_CTL_GET_FREE: {os.strerror(err.errno)}",
                      LOOP_CONTROL) from None
    finally:
        os.close(fd)


def configure(loop_fd: int, backing_fd: int, flags: int, file_name: str = "") -> None:
    """LOOP_CONFIGURE: bind backing_fd to the open loop device with lo_flags = flags."""
    cfg = loop_config(fd=backing_fd)
    cfg.info.lo_flags = flags
    raw = os.fsencode(file_name)[: LO_NAME_SIZE - 1]
    ctypes.memmove(cfg.info.lo_file_name, raw, len(raw))
    try:
        fcntl.ioctl(loop_fd, LOOP_CONFIGURE, cfg)
    except OSError as err:
        raise OSError(err.errno, f"LOOP_CONFIGURE: {os.strerror(err.errno)}", file_name) from None


def clr_fd(loop_fd: int) -> None:
    """LOOP_CLR_FD: unbind the open loop device (deferred to its last close when busy)."""
    try:
        fcntl.ioctl(loop_fd, LOOP_CLR_FD)
    except OSError as err:
        raise OSError(err.errno, f"LOOP_CLR_FD: {os.strerror(err.errno)}") from None


def attach(backing_file: Path, flags: int = LO_FLAGS_AUTOCLEAR, tries: int = 8) -> tuple[str, int]:
    """Bind backing_file to a free loop device: (device path, open O_RDWR device fd).

    The caller owns the fd: with LO_FLAGS_AUTOCLEAR, closing it detaches the device unless
    something (a mount) still holds it. Another process may take the free device between
    LOOP_CTL_GET_FREE and LOOP_CONFIGURE (EBUSY): we retry with the next free one.
    """
    backing = os.open(backing_file, os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(tries):
            device = f"/dev/loop{ctl_get_free()}"
            loop_fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            try:
                configure(loop_fd, backing, flags, str(backing_file))
                return device, loop_fd
            except OSError as err:
                os.close(loop_fd)
                if err.errno != errno.EBUSY:
                    raise
        raise OSError(errno.EBUSY, f"No free loop device after {tries} tries",
                      str(backing_file))
    finally:
        os.close(backing)


def devices_backed_by(backing_file: Path, sys_block: str = "/sys/block") -> list[str]:
    """The /dev/loopN devices whose backing file is backing_file (from sysfs)."""
    target = os.path.realpath(backing_file)
    found = []
    for entry in sorted(glob.glob(f"{sys_block}/loop*/loop/backing_file")):
        try:
            with open(entry) as f:
                backing = f.read().strip()
        except OSError:  # detached between the glob and the read
            continue
        if backing.removesuffix(" (deleted)") == target:
            found.append("/dev/" + entry.split("/")[-3])
    return found
