"""A supervisor started by an older lxmgr answers commands it does not know with "Unknown
command" (and no flag): the daemon names the way out (restart the instance) in one line."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from lxmgr.supervisor import control, protocol


def serve_once(path: str, reply: dict[str, object]) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        with conn, server:
            protocol.recv(conn)
            protocol.send(conn, reply)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("reply", [
    {"error": "Unknown command 'disk_attach'", "status": 400},  # protocol 1, as shipped
    {"error": "Unknown command 'x'", "status": 400, "unknown_command": True, "protocol": 1},
])
def test_unknown_command_says_restart(tmp_path: Path, reply: dict[str, object]) -> None:
    path = str(tmp_path / "s.sock")
    thread = serve_once(path, reply)
    with pytest.raises(control.OlderSupervisor, match="^The instance runs under the "
                       r"supervisor of an older lxmgr \(protocol 1\), which lacks what this "
                       "needs: restart the instance first$"):
        control.call(path, protocol.DISK_ATTACH, disk={})
    thread.join(5)


def test_other_errors_stay_what_they_were(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    thread = serve_once(path, {"error": "Device busy", "status": 409})
    with pytest.raises(Exception, match="^Device busy$") as caught:
        control.call(path, protocol.FREEZE)
    assert not isinstance(caught.value, control.OlderSupervisor)
    assert caught.value.status == 409  # type: ignore[attr-defined]
    thread.join(5)
