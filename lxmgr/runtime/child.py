"""Start a container: the ordered setup sequence across three processes.

  supervisor (S, host)  ->  intermediate (C)  ->  init (G, PID 1 in the container)

C joins the cgroups, mounts the rootfs in a private mount namespace, unshares every
namespace and forks G; G builds /proc, /sys, /dev and the cgroup view, pivots and execs init.
Every step has one error message; a failing child reports it over the sync socket and
os._exit()s. SYNCHRONOUS; runs in the supervisor, which must be single-threaded (unshare of a
user namespace and setns into a time namespace refuse multi-threaded callers).
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
from dataclasses import dataclass

from lxmgr.errors import RuntimeSetupError
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.linux.idmapped import open_userns_fd, write_id_maps
from lxmgr.model.rootfs import RootfsSpec
from lxmgr.runtime import disks, security, sync
from lxmgr.runtime.devices import build_dev_ops
from lxmgr.runtime.mounts import apply_all
from lxmgr.runtime.plan import RuntimePlan
from lxmgr.runtime.rootfs import (
    build_nesting_ops,
    build_proc_sys_ops,
    check_pivoted,
    check_rootfs,
    mount_rootfs,
    pivot_into,
)


@dataclass
class Consoles:
    """Host ptys given to the container: /dev/console and /dev/tty1..N (slave paths)."""

    console: str
    ttys: list[str]


def start(plan: RuntimePlan, consoles: Consoles) -> int:
    """Create the container and return PID 1's host pid once init has been exec'd.

    Raises RuntimeSetupError naming the failing step; nothing of the container is left then
    (its processes are killed; mounts lived only in its own namespaces)."""
    check_rootfs(plan)
    root_st = os.stat("/")
    host_root = (root_st.st_dev, root_st.st_ino)
    userns_fd = None
    if plan.idmap is not None:
        userns_fd = open_userns_fd(plan.idmap.uid_map_text(), plan.idmap.gid_map_text())
    flt = security.build_seccomp(plan)
    parent, child = sync.socketpair()
    try:
        pid = os.fork()
        if pid == 0:
            parent.close()
            _intermediate(plan, child, userns_fd, consoles, host_root, flt)
        child.close()
        return _drive(plan, parent, pid)
    finally:
        parent.close()
        if not child._closed:  # type: ignore[attr-defined]
            child.close()
        if userns_fd is not None:
            os.close(userns_fd)


def _drive(plan: RuntimePlan, sock: socket.socket, pid: int) -> int:
    """Parent side: write id maps when asked, collect PID 1, wait for its exec."""
    init_pid = 0
    try:
        sync.recv(sock, sync.UNSHARED)
        if plan.idmap:
            write_id_maps(pid, plan.idmap.uid_map_text(), plan.idmap.gid_map_text())
        sync.send(sock, sync.MAPPED)
        init_pid = int(sync.recv(sock, sync.INIT_PID)["pid"])
        sync.recv(sock, None)  # EOF: init exec'd (the socket is close-on-exec)
        return init_pid
    except (sync.SyncError, OSError) as err:
        for victim in (init_pid, pid):
            if victim:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        raise RuntimeSetupError(f"Failed to start '{plan.name}': {err}") from None
    finally:
        os.waitpid(pid, 0)


def _intermediate(plan: RuntimePlan, sock: socket.socket, userns_fd: int | None,
                  consoles: Consoles, host_root: tuple[int, int], flt) -> None:  # type: ignore[no-untyped-def]
    """C: cgroups, rootfs, namespaces, ids, then fork PID 1. Never returns."""
    try:
        os.setsid()
        step = "join the container cgroups"
        for path in plan.cgroup_procs:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        step = "make a private mount namespace"
        libc.unshare(c.CLONE_NEWNS)
        libc.mount(None, "/", None, c.MS_REC | c.MS_PRIVATE, None)
        step = f"mount the rootfs at {plan.rootfs}"
        mount_rootfs(RootfsSpec(**plan.rootfs_spec), userns_fd)
        step = "prepare the disk devices"
        prepared = disks.prepare([disks.DiskMount.from_dict(d) for d in plan.disks], userns_fd)
        step = "unshare the container namespaces"
        # One call: the new mount namespace is then owned by the new user namespace
        # (and CLONE_NEWNET after CLONE_NEWUSER gives a netns owned by it, see LXC start.c).
        libc.unshare(plan.namespaces)
        sync.send(sock, sync.UNSHARED)
        sync.recv(sock, sync.MAPPED)
        if plan.idmap:
            step = "become root in the user namespace"
            os.setresgid(0, 0, 0)
            os.setgroups([])
            os.setresuid(0, 0, 0)
            # After the uid change the process is non-dumpable: /proc/self turns host-root
            # owned and unreadable (kernel-facts §3).
            libc.prctl(c.PR_SET_DUMPABLE, 1)
        step = "fork the container init"
        pid = os.fork()  # first child in the new pid namespace: PID 1
        if pid == 0:
            _init(plan, sock, consoles, host_root, flt, prepared)
        sync.send(sock, sync.INIT_PID, pid=pid)
        os._exit(0)
    except BaseException as err:  # noqa: BLE001 - report anything, then exit
        sync.send_error(sock, f"Failed to {step}: {err}")
        os._exit(1)


def _init(plan: RuntimePlan, sock: socket.socket, consoles: Consoles,
          host_root: tuple[int, int], flt,  # type: ignore[no-untyped-def]
          prepared: list[tuple[disks.DiskMount, int]]) -> None:
    """G, PID 1: filesystems, hostname, pivot, console, privileges, exec. Never returns."""
    step = "set up the container"
    try:
        os.setsid()
        tty_gid = 5
        step = "mount /proc, /sys, /dev and cgroups"
        ops = build_proc_sys_ops(plan) + build_dev_ops(plan.rootfs, consoles.console,
                                                       consoles.ttys, tty_gid)
        ops += build_nesting_ops(plan)
        apply_all(ops, libc, root=plan.rootfs)
        step = "mount the disk devices"
        disks.attach_prepared(prepared, plan.rootfs)
        step = "set the hostname"
        libc.sethostname(plan.hostname)
        step = "pivot_root into the rootfs"
        pivot_into(plan.rootfs, libc)
        check_pivoted(host_root)
        step = f"find {plan.init[0]} in the rootfs"
        if not os.path.exists(plan.init[0]):
            raise RuntimeSetupError(f"The rootfs has no {plan.init[0]}")
        step = "attach /dev/console"
        _attach_console()
        step = "drop capabilities"
        security.drop_bounding_caps(plan.caps_drop, libc)
        step = "close inherited descriptors"
        keep = sock.fileno()
        if keep > 3:
            libc.close_range(3, keep - 1)
        libc.close_range(keep + 1)
        step = "load the seccomp filter"
        security.load_seccomp(flt)
        step = f"exec {plan.init[0]}"
        os.execve(plan.init[0], plan.init, plan.env)
    except BaseException as err:  # noqa: BLE001
        sync.send_error(sock, f"Failed to {step}: {err}")
        os._exit(1)


def _attach_console() -> None:
    """stdin/stdout/stderr on /dev/console, which becomes our controlling terminal."""
    fd = os.open("/dev/console", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    for std in (0, 1, 2):
        os.dup2(fd, std)
    os.close(fd)
    fcntl.ioctl(0, c.TIOCSCTTY, 0)
