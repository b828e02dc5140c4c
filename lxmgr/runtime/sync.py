"""Typed parent<->child messages over a SOCK_SEQPACKET socketpair (as LXC's sync.h).

Each message is one JSON object: {"stage": ...} to advance, {"error": ...} to abort.
"""

from __future__ import annotations

import json
import socket
from typing import Any

# Stages, in order.
UNSHARED = "unshared"  # child -> parent: namespaces exist, write the id maps
MAPPED = "mapped"  # parent -> child: maps written, go on
INIT_PID = "init-pid"  # child -> parent: PID 1's host pid


class SyncError(Exception):
    """The other side reported an error or went away."""


def socketpair() -> tuple[socket.socket, socket.socket]:
    """Both ends close-on-exec: the parent sees EOF once init has exec'd."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, stage: str, **data: Any) -> None:
    sock.send(json.dumps({"stage": stage, **data}).encode())


def send_error(sock: socket.socket, message: str) -> None:
    try:
        sock.send(json.dumps({"error": message}).encode())
    except OSError:
        pass


def recv(sock: socket.socket, expect: str | None) -> dict[str, Any]:
    """Next message; EOF returns {} when expect is None, else raises."""
    raw = sock.recv(65536)
    if not raw:
        if expect is None:
            return {}
        raise SyncError(f"Container setup ended before stage '{expect}'")
    msg: dict[str, Any] = json.loads(raw)
    if "error" in msg:
        raise SyncError(msg["error"])
    if expect is not None and msg.get("stage") != expect:
        raise SyncError(f"Container setup sent stage '{msg.get('stage')}', expected '{expect}'")
    return msg
