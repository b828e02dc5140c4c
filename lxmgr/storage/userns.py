"""A user-namespace fd for idmapped mounts, made by a short-lived helper process.

Imports lxmgr.model and lxmgr.linux. mount_setattr(MOUNT_ATTR_IDMAP) takes the mapping from
a userns fd, and only a process can own a new userns: we fork a helper that unshares one and
waits; the parent (host root, so no setgroups=deny is needed) writes the maps, opens
/proc/<helper>/ns/user and lets the helper exit. The fd keeps the namespace alive.
The caller must be single-threaded (os.fork); the helper always leaves through os._exit.
"""

from __future__ import annotations

import os

from lxmgr.errors import KernelError
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.model.idmap import IdMap


def open_userns_fd(idmap: IdMap) -> int:
    """An O_CLOEXEC fd on a new user namespace mapping 0..size to idmap's host ranges."""
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
        return _map_and_open(pid, ready_r, idmap)
    finally:
        os.close(done_w)  # the helper reads EOF and exits
        os.close(ready_r)
        os.waitpid(pid, 0)


def _map_and_open(pid: int, ready_fd: int, idmap: IdMap) -> int:
    if os.read(ready_fd, 1) != b"1":
        raise KernelError("Failed to create a user namespace for the idmap")
    try:
        _write(f"/proc/{pid}/uid_map", idmap.uid_map_text())
        _write(f"/proc/{pid}/gid_map", idmap.gid_map_text())
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise KernelError(f"Failed to set up idmap user namespace: {err}") from err


def _write(path: str, text: str) -> None:
    """One write(2), checked: a short or failed map write must not pass silently."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if os.write(fd, text.encode()) != len(text):
            raise OSError(f"Short write to {path}")
    finally:
        os.close(fd)
