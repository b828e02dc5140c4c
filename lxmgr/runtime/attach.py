"""Run a command inside a running container (as lxc-attach): join its cgroup and all its
namespaces, take the caller's user/group/cwd/env, the container's capabilities and seccomp.

`enter()` runs in a process forked by the supervisor and never returns; it forks once more
so the command lands inside the container's pid namespace, and exits with its status.
Whether the command started is known before anything is reported: the forked child holds
the write end of a close-on-exec pipe, so a successful execve closes it (EOF) and a failure
writes the reply the caller gets instead (as CPython's subprocess learns of exec errors).
A command that cannot be executed ends with a shell's status, as LXC's
lxc_attach_run_command (src/lxc/attach.c): 127 when it is not found, 126 when it is found
but cannot run, and the reply says why in one line; LXD puts nothing on the command's
streams, and neither do we.
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import signal
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.runtime import security
from lxmgr.runtime.plan import DEFAULT_PATH, RuntimePlan

# LXD's defaults for `lxc exec`.
NOT_FOUND = 127  # a shell's status for a command it cannot find (POSIX, XCU 2.8.2)
NOT_EXECUTABLE = 126  # ... and for one it found but cannot execute
MAX_STATUS_REPLY = 4096  # a failure reply from the command's process: one short message
MAX_SHOWN = 200  # characters of a command name quoted in a message
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
    """E: join, fork the command, relay its exit status. Never returns.

    reply gets one message first: {"started", "pid", "pty"} once the command runs,
    {"ok", "exit", "failed"} when it could not be executed (exit 127 or 126), or {"error",
    "status"} when setting it up failed."""
    status = 127
    reported = False
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
        pid, master, failure = _start(plan, spec, stdio, flt)
        if failure is not None:
            os.waitpid(pid, 0)
            _send(reply, failure)
            reported = True
            os._exit(int(failure.get("exit", 1)))
        _report_started(reply, pid, master)
        reported = True
        signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
        _, wstatus = os.waitpid(pid, 0)
        status = os.waitstatus_to_exitcode(wstatus)
        status = 128 - status if status < 0 else status
    except BaseException as err:  # noqa: BLE001
        message = f"Failed to enter the instance: {describe(err)}"
        if not reported:
            _send(reply, {"error": message, "status": 500})
        try:  # the supervisor's log
            os.write(2, f"Error: {message}\n".encode())
        except OSError:
            pass
    os._exit(status)


def _start(plan: RuntimePlan, spec: ExecSpec, stdio: list[int], flt  # type: ignore[no-untyped-def]
           ) -> tuple[int, int | None, dict[str, Any] | None]:
    """Fork the command: (its pid, the pty master, the failure reply if it did not start).
    Returns once it has exec'd or failed; the caller's stdio descriptors are closed."""
    master = None
    if spec.pty:
        master, stdio = _open_pty(spec)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(status_r)
        _run(plan, spec, stdio, flt, status_w)
    os.close(status_w)
    for fd in set(stdio):
        os.close(fd)
    failure = _read_failure(status_r)
    if failure is not None and master is not None:
        os.close(master)
        master = None
    return pid, master, failure


def describe(err: BaseException) -> str:
    """One line for an error, without Python's reprs ("[Errno 2] ...: b'/x'")."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def exec_failure(command: str, err: OSError, exists: bool) -> dict[str, Any]:
    """The reply for a command execve refused: 127 if not found, 126 if found but not
    executable (EACCES, ENOEXEC, ...), as a shell and LXC. exists: command is a path
    that exists (an ENOENT then means its interpreter or loader is missing)."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in command[:MAX_SHOWN])
    shown += "..." if len(command) > MAX_SHOWN else ""
    if err.errno == errno.ENOENT:
        why = " (its interpreter or loader is missing)" if exists else ""
        return {"ok": True, "exit": NOT_FOUND, "failed": f"Command not found: {shown}{why}"}
    return {"ok": True, "exit": NOT_EXECUTABLE,
            "failed": f"Command not executable: {shown} ({describe(err)})"}


def _read_failure(fd: int) -> dict[str, Any] | None:
    """The reply the command's process wrote before exiting, or None at EOF (execve
    worked). Checked: the process had joined the container when it wrote."""
    data = b""
    try:
        while len(data) <= MAX_STATUS_REPLY and (chunk := os.read(fd, MAX_STATUS_REPLY)):
            data += chunk
    finally:
        os.close(fd)
    if not data:
        return None
    try:
        reply = json.loads(data)
    except ValueError:
        reply = None
    if isinstance(reply, dict) and isinstance(reply.get("failed"), str) and \
            reply.get("exit") in (NOT_FOUND, NOT_EXECUTABLE):
        return {"ok": True, "exit": reply["exit"], "failed": reply["failed"]}
    if isinstance(reply, dict) and isinstance(reply.get("error"), str) and \
            reply.get("status") in (400, 500):
        return {"error": reply["error"], "status": reply["status"]}
    return {"error": "The command failed to start", "status": 500}


def _send(reply: socket.socket | None, msg: dict[str, Any]) -> None:
    if reply is None:
        return
    try:
        reply.send(json.dumps(msg, separators=(",", ":")).encode())
    except OSError:
        pass


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


def _run(plan: RuntimePlan, spec: ExecSpec, stdio: list[int], flt,  # type: ignore[no-untyped-def]
         status_fd: int) -> None:
    """F, inside the container: identity, stdio, privileges, exec. Never returns; a failure
    is written to status_fd as the reply enter() sends (execve closes it on success)."""
    step = "set up the command's session"
    try:
        if status_fd < 3:  # keep it clear of the stdio descriptors dup2'd below
            status_fd = fcntl.fcntl(status_fd, fcntl.F_DUPFD_CLOEXEC, 3)
        os.setsid()
        for std, fd in enumerate(stdio):
            os.dup2(fd, std, inheritable=True)
        if spec.pty:
            fcntl.ioctl(0, c.TIOCSCTTY, 0)
        if status_fd > 3:
            libc.close_range(3, status_fd - 1)
        libc.close_range(status_fd + 1)
        step = f"switch to user {spec.uid} and group {spec.gid}"
        os.setgroups([])
        os.setresgid(spec.gid, spec.gid, spec.gid)
        os.setresuid(spec.uid, spec.uid, spec.uid)
        step = f"change directory to '{spec.cwd}'" if spec.cwd else "change directory"
        _enter_cwd(spec)
        step = "drop capabilities"
        security.drop_bounding_caps(plan.caps_drop, libc)
        step = "load the seccomp filter"
        security.load_seccomp(flt)
        step = ""
        os.execvpe(spec.argv[0], spec.argv, spec.environment())
    except BaseException as err:  # noqa: BLE001
        if not step and isinstance(err, OSError):
            exists = "/" in spec.argv[0] and os.path.exists(spec.argv[0])
            reply = exec_failure(spec.argv[0], err, exists)
        else:
            message = f"Failed to {step or 'run the command'}: {describe(err)}"
            reply = {"error": message[:MAX_SHOWN * 2],
                     "status": 400 if step.startswith("change directory") else 500}
        try:
            os.write(status_fd, json.dumps(reply).encode()[:MAX_STATUS_REPLY])
        except OSError:
            pass
        os._exit(int(reply.get("exit", 1)))


def _enter_cwd(spec: ExecSpec) -> None:
    """The requested directory; without one, HOME, or / when HOME does not exist there."""
    if spec.cwd:
        os.chdir(spec.cwd)
        return
    try:
        os.chdir(spec.environment().get("HOME", "/"))
    except OSError:
        os.chdir("/")
