"""Thin ctypes wrappers: one function per system call, C semantics, errno -> OSError.

Imports only lxmgr.linux.consts. No policy lives here (that is runtime/'s job).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

from lxmgr.linux import consts as c

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def _b(path: str | bytes | None) -> bytes | None:
    if path is None:
        return None
    return os.fsencode(path)


_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2)."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2); fd may be a namespace fd or a pidfd (then nstype is a set of CLONE_NEW*)."""
    _check(_libc.setns(fd, nstype), "setns")


def sethostname(name: str) -> None:
    """sethostname(2)."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    _check(_syscall(c.SYS_pivot_root, _b(new_root), _b(put_old)), "pivot_root", new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl")


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """open_tree(2): returns a mount fd (detached when OPEN_TREE_CLONE)."""
    return _check(_syscall(c.SYS_open_tree, ctypes.c_int(dirfd), _b(path),
                           ctypes.c_uint(flags)), "open_tree", path)


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str,
               flags: int) -> None:
    """move_mount(2)."""
    _check(_syscall(c.SYS_move_mount, ctypes.c_int(from_dirfd), _b(from_path),
                    ctypes.c_int(to_dirfd), _b(to_path), ctypes.c_uint(flags)),
           "move_mount", to_path)


class mount_attr(ctypes.Structure):  # noqa: N801 - kernel spelling
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                  userns_fd: int = 0, propagation: int = 0) -> None:
    """mount_setattr(2)."""
    attr = mount_attr(attr_set, attr_clr, propagation, userns_fd)
    _check(_syscall(c.SYS_mount_setattr, ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags),
                    ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
           "mount_setattr", path)


def pidfd_open(pid: int, flags: int = 0) -> int:
    """pidfd_open(2)."""
    return _check(_syscall(c.SYS_pidfd_open, ctypes.c_int(pid), ctypes.c_uint(flags)),
                  "pidfd_open")


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """pidfd_send_signal(2)."""
    _check(_syscall(c.SYS_pidfd_send_signal, ctypes.c_int(pidfd), ctypes.c_int(sig), None,
                    ctypes.c_uint(0)), "pidfd_send_signal")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """close_range(2)."""
    _check(_syscall(c.SYS_close_range, ctypes.c_uint(first), ctypes.c_uint(last),
                    ctypes.c_uint(flags)), "close_range")


class open_how(ctypes.Structure):  # noqa: N801 - kernel spelling
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2)."""
    how = open_how(flags, mode, resolve)
    return _check(_syscall(c.SYS_openat2, ctypes.c_int(dirfd), _b(path), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how))), "openat2", path)


def statx_attributes(fd: int) -> tuple[int, int]:
    """statx(2) of an fd (AT_EMPTY_PATH): (stx_attributes, stx_attributes_mask)."""
    buf = ctypes.create_string_buffer(256)  # struct statx
    _check(_syscall(c.SYS_statx, ctypes.c_int(fd), b"", ctypes.c_int(c.AT_EMPTY_PATH),
                    ctypes.c_uint(0), buf), "statx")
    attributes = int.from_bytes(buf.raw[8:16], "little")  # __u64 stx_attributes
    mask = int.from_bytes(buf.raw[56:64], "little")  # __u64 stx_attributes_mask
    return attributes, mask


class _cap_header(ctypes.Structure):  # noqa: N801
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _cap_data(ctypes.Structure):  # noqa: N801
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget() -> tuple[int, int, int]:
    """capget(2) for the calling thread: (effective, permitted, inheritable) 64-bit masks."""
    hdr = _cap_header(c._LINUX_CAPABILITY_VERSION_3, 0)
    data = (_cap_data * 2)()
    _check(_syscall(c.SYS_capget, ctypes.byref(hdr), data), "capget")
    return tuple(data[0].__getattribute__(f) | (data[1].__getattribute__(f) << 32)
                 for f in ("effective", "permitted", "inheritable"))  # type: ignore[return-value]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread, 64-bit masks."""
    hdr = _cap_header(c._LINUX_CAPABILITY_VERSION_3, 0)
    data = (_cap_data * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(c.SYS_capset, ctypes.byref(hdr), data), "capset")


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """ioctl(TIOCSWINSZ) on a terminal fd."""
    import fcntl

    fcntl.ioctl(fd, c.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def set_process_name(name: str) -> None:
    """prctl(PR_SET_NAME): the comm shown by ps (15 bytes at most)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _check(_libc.prctl(c.PR_SET_NAME, ctypes.cast(buf, ctypes.c_void_p).value or 0, 0, 0, 0),
           "prctl")


def gettid() -> int:
    """gettid(2): the calling thread's id (per-thread /proc/self/task/<tid> entries)."""
    return int(_libc.gettid())


def setfsids(uid: int, gid: int) -> tuple[int, int]:
    """setfsuid(2) and setfsgid(2): the ids file creation and access checks use; returns
    the previous (uid, gid). Leaving fsuid 0 drops the effective filesystem capabilities
    (CAP_CHOWN, CAP_DAC_OVERRIDE, ...) until it is set back to 0."""
    return int(_libc.setfsuid(uid)), int(_libc.setfsgid(gid))
