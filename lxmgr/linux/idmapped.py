"""Thin mechanics of idmapped mounts: a user-namespace fd carrying a map, a detached
idmapped clone of a tree, and writing a process's id maps (kernel-facts §1).

Imports only lxmgr.linux and lxmgr.errors; maps arrive as the text the kernel takes
("0 1000000 65536\\n"), so no policy lives here.
"""

from __future__ import annotations

import os

from lxmgr.errors import KernelError
from lxmgr.linux import consts as c
from lxmgr.linux import libc


def write_id_maps(pid: int, uid_map: str, gid_map: str) -> None:
    """Write /proc/<pid>/uid_map and gid_map (host root needs no setgroups=deny)."""
    for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
        _write(f"/proc/{pid}/{name}", text)


def open_userns_fd(uid_map: str, gid_map: str) -> int:
    """An O_CLOEXEC fd on a new user namespace with these maps.

    Only a process can own a new userns: a helper unshares one and waits while we write
    its maps and open /proc/<helper>/ns/user; the fd keeps the namespace alive after the
    helper exits. The caller must be single-threaded; the helper leaves through os._exit.
    """
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # helper: unshare, report, wait for the parent, exit
        status = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            libc.unshare(c.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
            status = 0
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise KernelError("Failed to create a user namespace for the idmap")
        try:
            write_id_maps(pid, uid_map, gid_map)
            return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise KernelError(f"Failed to set up idmap user namespace: {err}") from err
    finally:
        os.close(done_w)  # the helper reads EOF and exits
        os.close(ready_r)
        os.waitpid(pid, 0)


def idmapped_clone(path: str, userns_fd: int, *, readonly: bool) -> int:
    """A detached, idmapped (and optionally read-only) mount fd of path."""
    fd = libc.open_tree(c.AT_FDCWD, path, c.OPEN_TREE_CLONE | c.OPEN_TREE_CLOEXEC)
    try:
        attrs = c.MOUNT_ATTR_IDMAP | (c.MOUNT_ATTR_RDONLY if readonly else 0)
        libc.mount_setattr(fd, "", c.AT_EMPTY_PATH, attrs, userns_fd=userns_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write(path: str, text: str) -> None:
    """One write(2), checked: a short or failed map write must not pass silently."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if os.write(fd, text.encode()) != len(text):
            raise OSError(f"Short write to {path}")
    finally:
        os.close(fd)
