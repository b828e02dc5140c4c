"""Client: socket discovery, envelopes, error classes, keep-alive, operations."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr import errors
from lxmgr.api.envelope import error_response
from lxmgr.client import Client, DaemonNotRunning, default_socket_path
from tests.unit.client.fake_server import FakeRequest, FakeServer, async_op, sync


def test_socket_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LXMGR_SOCKET", raising=False)
    monkeypatch.delenv("LXMGR_DIR", raising=False)
    assert default_socket_path() == "/var/lib/lxmgr/unix.socket"
    monkeypatch.setenv("LXMGR_DIR", "/tmp/x")
    assert default_socket_path() == "/tmp/x/unix.socket"
    monkeypatch.setenv("LXMGR_SOCKET", "/run/s")
    assert default_socket_path() == "/run/s"
    assert Client().socket_path == "/run/s"
    assert Client("/explicit").socket_path == "/explicit"


def test_query_returns_metadata_and_sends_json(server: FakeServer, client: Client) -> None:
    server.route("POST", "/1.0/profiles")(lambda req: sync({"got": req.body}))
    assert client.query("POST", "/1.0/profiles", body={"name": "p"}) == {"got": {"name": "p"}}
    req = server.requests[-1]
    assert req.headers["Host"] == "unix.socket"
    assert req.headers["Content-Type"] == "application/json"


def test_params_are_encoded(server: FakeServer, client: Client) -> None:
    server.route("GET", "/1.0/instances")(lambda req: sync(req.query))
    got = client.query("GET", "/1.0/instances", params={"recursion": 2, "all": True,
                                                         "skip": None})
    assert got == {"recursion": "2", "all": "true"}


@pytest.mark.parametrize(("code", "cls"), [
    (400, errors.InvalidConfig), (404, errors.NotFound), (409, errors.Conflict),
    (501, errors.NotSupported), (503, errors.HostNotReady), (500, errors.LxmgrError),
    (403, errors.Forbidden),
])
def test_error_codes_map_to_classes(server: FakeServer, client: Client, code: int,
                                    cls: type[errors.LxmgrError]) -> None:
    server.route("GET", "/x")(lambda req: (code, error_response(f"Failed {code}", code)))
    with pytest.raises(cls, match=f"^Failed {code}$") as info:
        client.query("GET", "/x")
    assert type(info.value) is cls


def test_request_does_not_raise(server: FakeServer, client: Client) -> None:
    server.route("GET", "/x")(lambda req: (404, error_response("nope", 404)))
    response = client.request("GET", "/x")
    assert response.status == 404 and response.envelope is not None
    assert response.envelope["error"] == "nope"


def test_keep_alive_reuses_one_connection(server: FakeServer, client: Client) -> None:
    server.route("GET", "/1.0")(lambda req: sync({"api_version": "1.0"}))
    for _ in range(5):
        assert client.query("GET", "/1.0") == {"api_version": "1.0"}
    assert server.connections == 1


def test_connection_close_and_chunked_bodies(server: FakeServer, client: Client) -> None:
    server.route("GET", "/close")(lambda req: sync("closed"))
    server.route("GET", "/chunked")(lambda req: sync("x" * 100))
    assert client.query("GET", "/close") == "closed"
    assert client.query("GET", "/chunked") == "x" * 100
    assert client.query("GET", "/close") == "closed"
    assert server.connections >= 2


def test_raw_body(server: FakeServer, client: Client) -> None:
    server.route("GET", "/1.0/instances/c1/console")(lambda req: (200, b"boot log\n"))
    assert client.raw("/1.0/instances/c1/console") == b"boot log\n"


def test_missing_socket_is_daemon_not_running(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="lxmgrd is not running") as info:
        Client(str(tmp_path / "none.socket")).query("GET", "/1.0")
    assert info.value.socket_path == str(tmp_path / "none.socket")


def test_refused_socket_is_daemon_not_running(tmp_path: Path) -> None:
    import socket

    path = str(tmp_path / "dead.socket")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.close()  # bound, never listening: connect() is refused
    with pytest.raises(DaemonNotRunning):
        Client(path).query("GET", "/1.0")


def test_operate_waits_for_the_operation(server: FakeServer, client: Client) -> None:
    def create(req: FakeRequest) -> tuple[int, object]:
        op = server.add_operation()
        server.finish(op["id"], metadata={"entity_url": "/1.0/instances/c1"})
        return async_op(op)

    server.route("POST", "/1.0/instances")(create)
    op = client.operate("POST", "/1.0/instances", body={"name": "c1"})
    assert op["status_code"] == 200
    assert op["metadata"] == {"entity_url": "/1.0/instances/c1"}
    wait = server.requests[-1]
    assert wait.path.endswith("/wait") and wait.query == {"timeout": "-1"}


def test_failed_operation_raises_its_error(server: FakeServer, client: Client) -> None:
    op = server.add_operation()
    server.finish(op["id"], code=400, err="Failed to start 'c1': no init")
    with pytest.raises(errors.LxmgrError, match="^Failed to start 'c1': no init$"):
        client.wait_operation(f"/1.0/operations/{op['id']}")


def test_failed_operation_uses_err_code(server: FakeServer, client: Client) -> None:
    op = server.add_operation()
    server.finish(op["id"], code=400, err="Instance 'c1' is running")
    server.operations[op["id"]]["err_code"] = 409
    with pytest.raises(errors.Conflict):
        client.wait_operation(op)


def test_wait_timeout_returns_running_operation(server: FakeServer, client: Client) -> None:
    op = server.add_operation({"create_progress": "rootfs: 10%"})
    got = client.wait_operation(op["id"], timeout=0.1)
    assert got["status_code"] == 103
    assert server.requests[-1].query == {"timeout": "1"}


def test_wait_timeout_504_falls_back_to_get(server: FakeServer, client: Client) -> None:
    op = server.add_operation()
    server.route("GET", f"/1.0/operations/{op['id']}/wait")(
        lambda req: (504, error_response("Timeout", 504)))
    assert client.wait_operation(op, timeout=1)["id"] == op["id"]
    assert server.requests[-1].path == f"/1.0/operations/{op['id']}"
