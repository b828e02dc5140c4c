"""`lxmgr daemon shutdown` against stand-in daemons on a unix socket: the request it sends,
what it prints, no daemon, a daemon slower than --timeout (one line each, exit 1)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]


@contextlib.contextmanager
def stand_in(path: str, body: bytes | None) -> Iterator[list[bytes]]:
    """One connection: the request is recorded; answered with body (None: never)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    seen: list[bytes] = []
    release = threading.Event()

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                seen.append(conn.recv(65536))
                if body is None:
                    release.wait(10)
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        release.set()
        thread.join(timeout=10)


@pytest.fixture
def socket_path(tmp_path: Path, fake: FakeClient, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))  # no pid file there
    fake.socket_path = str(tmp_path / "unix.socket")
    return fake.socket_path


def test_prints_what_stopped(run: Run, socket_path: str) -> None:
    body = b'{"type": "sync", "status_code": 200, "metadata": {"stopped": ["web", "db"]}}'
    with stand_in(socket_path, body) as seen:
        result = run("daemon", "shutdown")
    assert (result.exit_code, result.output) == (
        0, "Stopped 2 instance(s): web, db; lxmgrd exits\n")
    assert seen[0].startswith(b"PUT /internal/shutdown HTTP/1.1\r\n")


def test_nothing_running(run: Run, socket_path: str) -> None:
    body = b'{"type": "sync", "status_code": 200, "metadata": {"stopped": []}}'
    with stand_in(socket_path, body):
        result = run("daemon", "shutdown")
    assert (result.exit_code, result.output) == (0, "Stopped 0 instance(s); lxmgrd exits\n")


def test_no_daemon(run: Run, socket_path: str) -> None:
    result = run("daemon", "shutdown")
    assert (result.exit_code, result.output) == (
        1, f"Error: lxmgrd is not running (socket {socket_path}): nothing was stopped\n")


def test_timeout(run: Run, socket_path: str) -> None:
    with stand_in(socket_path, None):
        result = run("daemon", "shutdown", "--timeout", "0.3")
    assert (result.exit_code, result.output) == (
        1, "Error: lxmgrd did not finish the shutdown within 0.3s (it goes on)\n")
