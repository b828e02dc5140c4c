"""The exec zygote: a child of the supervisor that joined the container's cgroups once, at
boot, and forks there the helper of each exec (runtime.attach.enter), so an exec moves no
process between cgroups.

Why: a process that joins a cgroup by writing cgroup.procs takes the kernel's global
cgroup_threadgroup_rwsem for writing (kernel/cgroup/cgroup.c, cgroup_attach_lock ->
percpu_down_write), which every fork and exit on the host takes for reading
(cgroup_can_fork, exit_signals). A waiting writer queues the new readers behind it and waits
for those under way; next to a fork bomb at its pids.max (hundreds of runnable tasks forking
on one CPU) a reader preempted inside its section holds the writer until its next turn on
that CPU. An exec that joined the ten hierarchies of a hybrid host one write at a time took
seconds there, and every fork on the host waited with it. A fork inherits its parent's
cgroups without a migration: the helper starts where it belongs and takes the lock for
reading only, as any fork. (On cgroup2 alone, LXC's attach gets the same from
clone3(CLONE_INTO_CGROUP); v1 hierarchies have no equivalent.)

Only where no process may ever be in the way: on a cgroup2 tree whose controllers can be
enabled below the container's cgroup, a process sitting there would make the kernel refuse
the container's subtree_control ("no internal processes", Documentation/admin-guide/
cgroup-v2.rst), so there the supervisor keeps joining per exec (can_host()).

Over a SOCK_SEQPACKET socketpair, one JSON object a message:
  supervisor -> zygote  {"seq", "spec"} + fds [conn, stdin, stdout, stderr] (pty: [conn])
  zygote -> supervisor  {"ready"} once, then per exec {"seq", "pid"} + [the helper's pidfd]
                        or {"seq", "error", "status"}, and {"seq", "status": wait status}
                        when the helper has exited.
The helper tells the client on conn that the command started, as before; the supervisor
sends the exit status. If the zygote dies (the container's OOM killer, a stop), the helpers
it forked are the supervisor's (it is their subreaper) and it waits for them itself.

Runs in the supervisor's process tree only; imports runtime, linux, supervisor.protocol.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import select
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from lxmgr.errors import LxmgrError
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.runtime import attach
from lxmgr.runtime.plan import RuntimePlan
from lxmgr.supervisor import protocol

log = logging.getLogger(__name__)

READY_TIMEOUT = 10.0  # seconds the zygote gets to join the cgroups at boot
EXIT_TIMEOUT = 5.0  # seconds a killed zygote gets to be gone (frozen, it waits for a thaw)
MAX_FDS = 4  # conn + stdin, stdout, stderr


def can_host(procs: list[str]) -> bool:
    """True if a process may stay in these cgroups for the container's life: none is on a
    cgroup2 tree with controllers to enable (a hybrid host's unified tree has none)."""
    for path in procs:
        try:
            with open(os.path.join(os.path.dirname(path), "cgroup.controllers")) as f:
                if f.read().strip():
                    return False
        except FileNotFoundError:
            continue  # a v1 hierarchy
    return True


@dataclass
class _Exec:
    conn: socket.socket
    pid: int = 0
    pidfd: int = -1


class Zygote:
    """The supervisor's side: spawn, submit execs, turn the zygote's messages into replies."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.pidfd = libc.pidfd_open(pid)
        self.sock = sock
        self.execs: dict[int, _Exec] = {}
        self.seq = 0
        self.dead = False

    @classmethod
    def spawn(cls, plan: RuntimePlan, init_pid: int, procs: list[str], flt,  # type: ignore[no-untyped-def]
              after_fork: Callable[[], None]) -> Zygote:
        """Fork the zygote and wait until it sits in procs. after_fork runs first in the
        child (the supervisor's own fork hygiene). LxmgrError if it could not join."""
        ours, theirs = socket.socketpair(socket.AF_UNIX,
                                         socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                after_fork()
                ours.close()
            except BaseException:  # noqa: BLE001
                os._exit(1)
            _serve(theirs.detach(), supervisor, plan, init_pid, procs, flt)
        theirs.close()
        zygote = cls(pid, ours)
        ours.settimeout(READY_TIMEOUT)
        try:
            msg, _ = protocol.recv(ours)
        except OSError as err:
            msg = {"error": attach.describe(err)}
        ours.settimeout(None)
        if msg is None or not msg.get("ready"):
            zygote.close()
            why = (msg or {}).get("error") or "it exited"
            raise LxmgrError(f"Failed to start the exec zygote: {why}")
        return zygote

    def pids(self) -> set[int]:
        """The helpers under way (the supervisor's SIGCHLD reaper must leave them alone)."""
        return {e.pid for e in self.execs.values() if e.pid}

    def submit(self, conn: socket.socket, spec: attach.ExecSpec, stdio: list[int]) -> None:
        """Ask for a helper; its outcome comes back through read(). OSError if the zygote
        is gone (nothing was taken over then)."""
        self.seq += 1
        protocol.send(self.sock, {"seq": self.seq, "spec": dataclasses.asdict(spec)},
                      [conn.fileno(), *stdio])
        self.execs[self.seq] = _Exec(conn)

    def read(self) -> list[tuple[socket.socket, dict[str, Any]]]:
        """One message of the zygote: the (conn, final reply) it completes, if any. Sets
        dead at EOF."""
        try:
            msg, fds = protocol.recv(self.sock)
        except OSError:
            msg, fds = None, []
        if msg is None:
            self.dead = True
            return []
        entry = self.execs.get(int(msg.get("seq", 0)))
        if entry is None:
            for fd in fds:
                os.close(fd)
            return []
        if "pid" in msg:
            entry.pid = int(msg["pid"])
            entry.pidfd = fds[0] if fds else -1
            return []
        self._forget(int(msg["seq"]))
        if "error" in msg:
            return [(entry.conn, {"error": str(msg["error"]), "status": int(msg["status"])})]
        code = os.waitstatus_to_exitcode(int(msg["status"]))
        return [(entry.conn, {"ok": True, "exit": code if code >= 0 else 128 - code})]

    def close(self) -> tuple[list[tuple[socket.socket, dict[str, Any]]],
                             list[tuple[int, int, socket.socket]]]:
        """The zygote is gone (or unwanted): close our end and kill it. Returns the replies
        of execs it never started and the helpers now left to the caller, as (pid, pidfd,
        conn): orphans, they were reparented to the supervisor, their subreaper."""
        self.dead = True
        try:
            libc.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            # Gone means its exit reparented its helpers to us: then wait for them.
            select.select([self.pidfd], [], [], EXIT_TIMEOUT)
            os.waitpid(self.pid, os.WNOHANG)
        except (ProcessLookupError, ChildProcessError):
            pass
        finally:
            os.close(self.pidfd)
            self.sock.close()
        replies, orphans = [], []
        for entry in self.execs.values():
            if entry.pidfd >= 0:
                orphans.append((entry.pid, entry.pidfd, entry.conn))
            else:
                replies.append((entry.conn, {"error": "Failed to enter the instance: the "
                                             "exec zygote died", "status": 500}))
        self.execs = {}
        return replies, orphans

    def _forget(self, seq: int) -> None:
        entry = self.execs.pop(seq)
        if entry.pidfd >= 0:
            os.close(entry.pidfd)


# -- the zygote process ----------------------------------------------------------------------

def _serve(fd: int, supervisor: int, plan: RuntimePlan, init_pid: int, procs: list[str],
           flt) -> NoReturn:  # type: ignore[no-untyped-def]
    """The zygote: become non-dumpable, keep only fd (and stdio), join procs, then fork a
    helper per request until the supervisor closes its end. Never returns."""
    try:
        # Non-dumpable before joining, as attach.enter (CVE-2016-9962, CVE-2019-5736); the
        # helpers inherit it. It dies with the supervisor, which owns its helpers' replies.
        libc.prctl(c.PR_SET_DUMPABLE, 0)
        libc.prctl(c.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != supervisor:
            os._exit(1)
        fd = _keep_only(fd)
        sock = socket.socket(fileno=fd)
        libc.set_process_name("lxmgr-zygote")
        try:
            for path in procs:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
        except OSError as err:
            protocol.send(sock, {"error": f"Failed to join '{path}': {attach.describe(err)}"})
            os._exit(1)
        protocol.send(sock, {"ready": True})
        _loop(sock, plan, init_pid, flt)
    except BaseException as err:  # noqa: BLE001
        try:
            os.write(2, f"Error: exec zygote: {attach.describe(err)}\n".encode())
        except OSError:
            pass
        os._exit(1)
    os._exit(0)


def _keep_only(fd: int) -> int:
    """Close every descriptor but stdio (the supervisor's log) and fd, moved to 3: the
    zygote lives as long as the container and must not hold the supervisor's listener,
    lock or ptys."""
    if fd != 3:
        os.dup2(fd, 3, inheritable=False)
        os.close(fd)
    libc.close_range(4)
    return 3


def _loop(sock: socket.socket, plan: RuntimePlan, init_pid: int, flt) -> None:  # type: ignore[no-untyped-def]
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    helpers: dict[int, int] = {}  # helper pid -> seq
    while True:
        ready = select.select([sock, wake_r], [], [])[0]
        if wake_r in ready:
            _drain(wake_r)
            _reap(sock, helpers)
        if sock in ready:
            msg, fds = protocol.recv(sock, MAX_FDS)
            if msg is None:
                return  # the supervisor closed its end: running helpers go on
            _fork_helper(sock, msg, fds, plan, init_pid, flt, helpers, (wake_r, wake_w))


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _reap(sock: socket.socket, helpers: dict[int, int]) -> None:
    """Report each exited helper's wait status."""
    while helpers:
        try:
            pid, wstatus = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        seq = helpers.pop(pid, None)
        if seq is not None:
            protocol.send(sock, {"seq": seq, "status": wstatus})


def _fork_helper(sock: socket.socket, msg: dict[str, Any], fds: list[int], plan: RuntimePlan,
                 init_pid: int, flt, helpers: dict[int, int],  # type: ignore[no-untyped-def]
                 wake: tuple[int, int]) -> None:
    """Fork the helper of one exec; tell the supervisor its pid (and a pidfd) or why not."""
    seq = int(msg["seq"])
    try:
        spec = attach.ExecSpec(**msg["spec"])
        pid = os.fork()
    except (OSError, TypeError) as err:
        for fd in fds:
            os.close(fd)
        protocol.send(sock, {"seq": seq, "status": 500,
                             "error": f"Failed to enter the instance: {attach.describe(err)}"})
        return
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (sock.detach(), *wake):
                os.close(fd)
            conn = socket.socket(fileno=fds[0])
        except BaseException:  # noqa: BLE001
            os._exit(1)
        attach.enter(plan, init_pid, [], spec, fds[1:], conn, flt)
    for fd in fds:
        os.close(fd)
    pidfd = libc.pidfd_open(pid)
    try:
        helpers[pid] = seq
        protocol.send(sock, {"seq": seq, "pid": pid}, [pidfd])
    finally:
        os.close(pidfd)
