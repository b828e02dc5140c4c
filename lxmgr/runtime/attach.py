"""Run a command inside a running container (as lxc-attach): join its cgroup and all its
namespaces, take the caller's user/group/cwd/env, the container's capabilities and seccomp.

`enter()` runs in a process forked by the supervisor and never returns; it forks once more
so the command lands inside the container's pid namespace, and exits with its status.
"""

from __future__ import annotations

import array
import fcntl
import os
import signal
import socket
import struct
from dataclasses import dataclass, field

from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.runtime import security
from lxmgr.runtime.plan import DEFAULT_PATH, RuntimePlan

# LXD's defaults for `lxc exec`.
DEFAULT_ENV = {"PATH": DEFAULT_PATH, "HOME": "/root", "USER": "root", "LANG": "C.UTF-8"}


@dataclass
class ExecSpec:
    """What to run: LXD's exec fields."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    uid: int = 0
    gid: int = 0
    pty: bool = False
    rows: int = 24
    cols: int = 80

    def environment(self) -> dict[str, str]:
        env = dict(DEFAULT_ENV)
        if self.uid != 0:
            env["HOME"] = "/"
            env.pop("USER")
        if self.pty:
            env["TERM"] = "xterm"
        env.update(self.env)
        return env


def enter(plan: RuntimePlan, init_pid: int, cgroup_procs: list[str], spec: ExecSpec,
          stdio: list[int], reply: socket.socket | None, flt) -> None:  # type: ignore[no-untyped-def]
    """E: join, fork the command, relay its exit status. Never returns."""
    status = 127
    try:
        # Become non-dumpable before joining so nothing in the container can ptrace us or
        # open our /proc files (CVE-2016-9962, CVE-2019-5736).
        libc.prctl(c.PR_SET_DUMPABLE, 0)
        for path in cgroup_procs:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        pidfd = libc.pidfd_open(init_pid)
        libc.setns(pidfd, plan.namespaces)
        os.close(pidfd)
        master = None
        if spec.pty:
            master, stdio = _open_pty(spec)
        pid = os.fork()
        if pid == 0:
            _run(plan, spec, stdio, flt)
        for fd in set(stdio):
            os.close(fd)
        _report_started(reply, pid, master)
        signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
        _, wstatus = os.waitpid(pid, 0)
        status = os.waitstatus_to_exitcode(wstatus)
        status = 128 - status if status < 0 else status
    except BaseException as err:  # noqa: BLE001
        try:  # the caller's stderr when we still have it, else the supervisor log
            os.write(stdio[2] if len(stdio) == 3 and not spec.pty else 2,
                     f"Error: Failed to exec in container: {err}\n".encode())
        except OSError:
            pass
    os._exit(status)


def _report_started(reply: socket.socket | None, pid: int, master: int | None) -> None:
    """Tell the caller the command runs: its host pid (to signal it) and the pty master."""
    if reply is None:
        return
    msg = f'{{"started":true,"pid":{pid},"pty":{"true" if master is not None else "false"}}}'
    anc = []
    if master is not None:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]).tobytes())]
    try:
        reply.sendmsg([msg.encode()], anc)
    finally:
        if master is not None:
            os.close(master)


def _open_pty(spec: ExecSpec) -> tuple[int, list[int]]:
    """A pty from the container's own devpts: (master for the caller, slave as stdio)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, c.TIOCSPTLCK, struct.pack("i", 0))
    num = struct.unpack("i", fcntl.ioctl(master, c.TIOCGPTN, struct.pack("i", 0)))[0]
    slave = os.open(f"/dev/pts/{num}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    libc.set_winsize(master, spec.rows, spec.cols)
    return master, [slave, slave, slave]


def _run(plan: RuntimePlan, spec: ExecSpec, stdio: list[int], flt) -> None:  # type: ignore[no-untyped-def]
    """F, inside the container: identity, stdio, privileges, exec. Never returns."""
    try:
        os.setsid()
        for std, fd in enumerate(stdio):
            os.dup2(fd, std, inheritable=True)
        if spec.pty:
            fcntl.ioctl(0, c.TIOCSCTTY, 0)
        libc.close_range(3)
        os.setgroups([])
        os.setresgid(spec.gid, spec.gid, spec.gid)
        os.setresuid(spec.uid, spec.uid, spec.uid)
        os.chdir(spec.cwd or spec.environment().get("HOME", "/"))
        security.drop_bounding_caps(plan.caps_drop, libc)
        security.load_seccomp(flt)
        os.execvpe(spec.argv[0], spec.argv, spec.environment())
    except BaseException as err:  # noqa: BLE001
        try:
            os.write(2, f"Error: Failed to run '{spec.argv[0]}': {err}\n".encode())
        except OSError:
            pass
        os._exit(127 if isinstance(err, FileNotFoundError) else 126)
