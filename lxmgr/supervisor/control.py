"""Client side of the supervisor's control socket (used by instances/, synchronous).

A missing or refused socket means the container is not running.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from lxmgr.errors import CommandFailed, Conflict, LxmgrError
from lxmgr.supervisor import protocol


class NotRunning(Conflict):
    """No supervisor answers for this instance."""


class OlderSupervisor(Conflict):
    """The instance's supervisor, started by an older lxmgr (supervisors outlive daemon
    upgrades), does not know the command: the instance must restart to get it."""


def _error(reply: dict[str, Any]) -> LxmgrError:
    if reply.get("unknown_command") or str(reply["error"]).startswith("Unknown command"):
        return OlderSupervisor(f"The instance runs under the supervisor of an older lxmgr "
                               f"(protocol {reply.get('protocol', 1)}), which lacks what "
                               "this needs: restart the instance first")
    err = LxmgrError(reply["error"])
    err.status = int(reply.get("status", 500))
    return err


def _reply(sock: socket.socket) -> dict[str, Any]:
    """The next reply on sock (descriptors dropped); NotRunning if the supervisor left,
    the matching error if it answered one."""
    try:
        reply, fds = protocol.recv(sock)
    except (ConnectionResetError, BrokenPipeError) as err:
        raise NotRunning("Instance supervisor went away") from err
    for fd in fds:
        os.close(fd)
    if reply is None:
        raise NotRunning("Instance supervisor went away")
    if "error" in reply:
        raise _error(reply)
    return reply


def connect(path: str, timeout: float | None = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as err:
        sock.close()
        raise NotRunning("Instance is not running") from err
    return sock


def call(path: str, cmd: str, *, wait: float | None = 10.0, fds: list[int] | None = None,
         **args: Any) -> dict[str, Any]:
    """One request, one reply; `wait` bounds the whole exchange."""
    with connect(path, wait) as sock:
        try:
            protocol.send(sock, {"cmd": cmd, **args}, fds)
        except (ConnectionResetError, BrokenPipeError) as err:
            raise NotRunning("Instance supervisor went away") from err
        return _reply(sock)


def exec_start(path: str, argv: list[str], stdio: list[int] | None, **spec: Any) \
        -> tuple[socket.socket, int, int | None]:
    """Start a command: (the open connection, whose next message carries the exit status;
    the command's host pid; in pty mode the pty master). CommandFailed when it could not
    be executed, the supervisor's error when it could not be set up."""
    sock = connect(path, None)
    try:
        protocol.send(sock, {"cmd": protocol.EXEC, "argv": argv, **spec}, stdio)
        reply, fds = protocol.recv(sock)
    except (ConnectionResetError, BrokenPipeError) as err:
        sock.close()
        raise NotRunning("Instance supervisor went away") from err
    if reply is None or "error" in reply or "exit" in reply:
        sock.close()
        for fd in fds:
            os.close(fd)
        if reply is not None and reply.get("failed"):
            raise CommandFailed(str(reply["failed"]), int(reply["exit"]))
        if reply is not None and "exit" in reply:  # died before starting: its status
            return _finished(int(reply["exit"]))
        raise _error(reply or {"error": "exec failed to start"})
    return sock, int(reply["pid"]), (fds[0] if fds else None)


def _finished(code: int) -> tuple[socket.socket, int, None]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    protocol.send(b, {"ok": True, "exit": code})
    b.close()
    return a, 0, None


def exec_wait(sock: socket.socket) -> int:
    """The exit status of a command started by exec_start."""
    with sock:
        return int(_reply(sock)["exit"])
