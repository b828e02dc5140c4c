"""`lxmgr daemon` without a daemon: status (LSB exit codes), stop with no pid file."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from lxmgr.cli.commands import daemon
from tests.unit.cli.conftest import FakeClient


def test_paths_follow_lxmgr_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    assert daemon.pid_file() == tmp_path / "lxmgrd.pid"
    assert daemon.log_file() == tmp_path / "logs" / "lxmgrd.log"
    # -P: `python -m` must not put the caller's directory first on sys.path
    assert daemon.daemon_argv() == [sys.executable, "-P", "-m", "lxmgr.daemon"]


def test_status_stopped_exits_3(run: Callable[..., Result], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    result = run("daemon", "status")
    assert (result.exit_code, result.output) == (3, "stopped\n")


def test_status_dead_with_pid_file_exits_1_and_stop_clears_it(
        run: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    (tmp_path / "lxmgrd.pid").write_text("999999999\n")  # stale
    result = run("daemon", "status")
    assert result.exit_code == 1
    assert result.output == (f"dead ({tmp_path}/lxmgrd.pid is left: pid 999999999 is not "
                             "running)\n")
    result = run("daemon", "stop")
    assert result.exit_code == 0 and result.output == "lxmgrd is not running\n"
    assert not (tmp_path / "lxmgrd.pid").exists()
    assert run("daemon", "status").exit_code == 3


def test_status_unknown_exits_4(run: Callable[..., Result], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    (tmp_path / "lxmgrd.pid").mkdir()  # unreadable as a file, even for root
    result = run("daemon", "status")
    assert result.exit_code == 4
    assert result.output == f"unknown (cannot read {tmp_path}/lxmgrd.pid: Is a directory)\n"


def test_status_running_from_the_pid_file_exits_0(
        run: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    # a live process whose command line names lxmgrd stands in for the daemon
    proc = subprocess.Popen([sys.executable, "-c", "import sys; print(); sys.stdin.read()",
                             "lxmgrd"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"\n"  # up, not execing
        (tmp_path / "lxmgrd.pid").write_text(f"{proc.pid}\n")
        result = run("daemon", "status")
        assert result.exit_code == 0
        assert result.output.startswith(f"running (pid {proc.pid}, socket ")
    finally:
        proc.communicate(timeout=10)


@pytest.fixture
def answering_socket(tmp_path: Path) -> Iterator[str]:
    """A unix socket answering every request with an empty sync response, as lxmgrd's
    GET /1.0 would (one connection, then closed)."""
    path = str(tmp_path / "unix.socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    body = b'{"type": "sync", "status_code": 200, "metadata": {}}'

    def serve() -> None:
        with server:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    thread.join(timeout=5)
    if thread.is_alive():  # nobody connected: wake accept() up
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=5)


def test_status_running_on_the_socket_exits_0(
        run: Callable[..., Result], fake: FakeClient, tmp_path: Path, answering_socket: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    fake.socket_path = answering_socket
    result = run("daemon", "status")
    assert result.exit_code == 0
    assert result.output == (f"running (socket {answering_socket}; not started by lxmgr "
                             "daemon start)\n")
