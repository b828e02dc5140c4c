"""PURE: the supervisor's control-socket protocol (SOCK_SEQPACKET, one JSON object a message).

Requests carry {"cmd": NAME, ...}; file descriptors travel as SCM_RIGHTS on the same message.
Replies are {"ok": true, ...} or {"error": "...", "status": HTTP status}.
"""

from __future__ import annotations

import array
import json
import os
import socket
from typing import Any

# Commands (as LXC's LXC_CMD_*).
GET_STATE = "get_state"  # -> {status, pid, started_at, ...}
STOP = "stop"  # {timeout, force} -> reply once init is gone
FREEZE = "freeze"
UNFREEZE = "unfreeze"
EXEC = "exec"  # {argv, env, cwd, uid, gid, pty, rows, cols} + fds [stdin, stdout, stderr]
CONSOLE_LOG = "console_log"  # -> {log}
CONSOLE_CLEAR = "console_clear"
CONSOLE_ATTACH = "console_attach"  # + fds [a stream socket]: bytes to and from /dev/console
CONSOLE_RESIZE = "console_resize"  # {rows, cols}
RELOAD_PROXIES = "reload_proxies"  # stop the proxy relay, start one for the current file
DISK_ATTACH = "disk_attach"  # {disk: DiskMount dict} -> {mounted}: hot-plug, kept for reboots
DISK_DETACH = "disk_detach"  # {disk: DiskMount dict} -> {unmounted}: hot-unplug
# unix-char, unix-block, gpu: {device, disks: [DiskMount dicts with is_node], rules: [device
# cgroup rules]} -> plugged (access list, then mounts); DEVICE_DETACH {device} -> unplugged
DEVICE_ATTACH = "device_attach"
DEVICE_DETACH = "device_detach"
# The version of this protocol, of the supervisor's config and of state.json. Supervisors
# outlive daemon upgrades: a supervisor reports it in GET_STATE and state.json (absent: 1,
# the command set before versions), and refuses a config newer than it understands.
PROTOCOL_VERSION = 1
COMMANDS = (GET_STATE, STOP, FREEZE, UNFREEZE, EXEC, CONSOLE_LOG, CONSOLE_CLEAR,
            CONSOLE_ATTACH, CONSOLE_RESIZE, RELOAD_PROXIES, DISK_ATTACH, DISK_DETACH,
            DEVICE_ATTACH, DEVICE_DETACH)

MAX_MESSAGE = 1 << 20
MAX_FDS = 3


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


def decode(raw: bytes) -> dict[str, Any]:
    msg = json.loads(raw)
    if not isinstance(msg, dict):
        raise ValueError("message is not an object")
    return msg


def send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    """Send one message, with descriptors attached when given."""
    if fds:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        sock.sendmsg([encode(msg)], anc)
    else:
        sock.send(encode(msg))


def recv(sock: socket.socket, max_fds: int = MAX_FDS) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and its descriptors (at most max_fds); (None, []) at EOF."""
    fds = array.array("i")
    raw, anc, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(max_fds * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if not raw:
        for fd in fds:
            os.close(fd)
        return None, []
    return decode(raw), list(fds)
