"""control.exec_start against a stand-in supervisor socket: the first reply decides between
a started command, one that could not be executed (CommandFailed with 127/126) and one that
could not be set up (the supervisor's error)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lxmgr.errors import LxmgrError
from lxmgr.supervisor import control, protocol

Serve = Callable[[list[dict[str, Any]]], str]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """serve(replies): a socket path whose one exec request gets those replies."""
    threads: list[threading.Thread] = []

    def start(replies: list[dict[str, Any]]) -> str:
        path = str(tmp_path / "supervisor.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server.bind(path)
        server.listen()

        def answer() -> None:
            with server:
                server.settimeout(5)
                conn, _ = server.accept()
                with conn:
                    _msg, fds = protocol.recv(conn)
                    for fd in fds:
                        os.close(fd)
                    for reply in replies:
                        try:
                            protocol.send(conn, reply)
                        except BrokenPipeError:  # the client had its answer and left
                            return

        threads.append(threading.Thread(target=answer, daemon=True))
        threads[-1].start()
        return path

    yield start
    for thread in threads:
        thread.join(5)


def test_a_command_not_found_raises_command_failed(serve: Serve) -> None:
    path = serve([{"ok": True, "exit": 127, "failed": "Command not found: nosuchcmd"},
                  {"ok": True, "exit": 127}])
    with pytest.raises(control.CommandFailed, match="^Command not found: nosuchcmd$") as err:
        control.exec_start(path, ["nosuchcmd"], None, pty=True)
    assert err.value.exit_status == 127


def test_a_setup_failure_is_the_supervisor_error(serve: Serve) -> None:
    path = serve([{"error": "Failed to change directory to '/x': No such file or directory",
                   "status": 400}])
    with pytest.raises(LxmgrError, match="^Failed to change directory") as err:
        control.exec_start(path, ["true"], None, pty=True, cwd="/x")
    assert err.value.status == 400 and not isinstance(err.value, control.CommandFailed)


def test_an_early_exit_without_a_reason_is_a_finished_command(serve: Serve) -> None:
    path = serve([{"ok": True, "exit": 1}])
    handle, pid, master = control.exec_start(path, ["true"], None, pty=True)
    assert (pid, master) == (0, None) and control.exec_wait(handle) == 1
