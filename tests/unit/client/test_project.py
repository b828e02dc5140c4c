"""A Client's project goes on every request as LXD's client sends it (`project=NAME`):
queries, operation waits and cancels, exec websockets, the events websocket, file and
image transfers; never twice, never beside `all-projects`, never on /1.0/projects; and the
operation URLs a server answers with `?project=` keep working."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from lxmgr.api.envelope import async_response
from lxmgr.client import Client, files, transfer
from lxmgr.client.exec import build_exec_body, run_exec
from lxmgr.client.rest import operation_id
from lxmgr.client.websocket import OP_CLOSE, WebSocket
from tests.unit.client.fake_server import FakeRequest, FakeServer, ServerWebSocket, sync
from tests.unit.client.test_exec import FakeExec


@pytest.fixture
def web(server: FakeServer) -> Any:
    with Client(server.socket_path, timeout=10, project="web") as c:
        yield c


def _queries(server: FakeServer) -> list[tuple[str, str, dict[str, str]]]:
    return [(r.method, r.path, r.query) for r in server.requests]


def test_url_adds_the_project_once() -> None:
    client = Client("/nonexistent", project="web team")
    assert client.url("/1.0/instances") == "/1.0/instances?project=web%20team"
    assert client.url("/1.0/instances", {"recursion": 2}) == \
        "/1.0/instances?recursion=2&project=web%20team"
    assert client.url("/1.0/instances/c1/files?path=/etc") == \
        "/1.0/instances/c1/files?path=/etc&project=web%20team"
    # the caller's own project, or all of them, as LXD's setURLQueryAttributes
    assert client.url("/1.0/instances", {"project": "other"}) == "/1.0/instances?project=other"
    assert client.url("/1.0/instances?project=other") == "/1.0/instances?project=other"
    assert client.url("/1.0/instances", {"all-projects": True}) == \
        "/1.0/instances?all-projects=true"
    assert client.url("/1.0/operations?all-projects=1") == "/1.0/operations?all-projects=1"
    # a project lives in no project
    for path in ("/1.0/projects", "/1.0/projects/", "/1.0/projects/web",
                 "/1.0/projects/web/state"):
        assert client.url(path) == path
    assert client.url("/1.0/projectsx") == "/1.0/projectsx?project=web%20team"


def test_no_project_sends_none() -> None:
    client = Client("/nonexistent")
    assert client.url("/1.0/instances", {"recursion": 1}) == "/1.0/instances?recursion=1"
    assert client.url("/1.0/instances/c1/files?path=/x") == "/1.0/instances/c1/files?path=/x"


def test_queries_and_operation_waits(server: FakeServer, web: Client) -> None:
    server.route("GET", "/1.0/instances")(lambda req: sync([]))
    op = server.add_operation()

    def start(req: FakeRequest) -> tuple[int, Any]:
        # LXD names a non-default project's operation URL with its project; no metadata:
        # the client goes by the URL
        return 202, {**async_response(op), "metadata": None,
                     "operation": f"/1.0/operations/{op['id']}?project=web"}

    server.route("PUT", "/1.0/instances/c1/state")(start)
    assert web.query("GET", "/1.0/instances", params={"recursion": 2}) == []
    started = web.operate("PUT", "/1.0/instances/c1/state", body={"action": "start"},
                          wait=False)
    server.finish(op["id"])
    web.wait_operation(f"/1.0/operations/{op['id']}?project=web")
    web.wait_operation(started)
    assert _queries(server) == [
        ("GET", "/1.0/instances", {"recursion": "2", "project": "web"}),
        ("PUT", "/1.0/instances/c1/state", {"project": "web"}),
        ("GET", f"/1.0/operations/{op['id']}/wait", {"timeout": "-1", "project": "web"}),
        ("GET", f"/1.0/operations/{op['id']}/wait", {"timeout": "-1", "project": "web"}),
    ]


def test_operation_urls_with_a_query() -> None:
    assert operation_id("/1.0/operations/abc?project=web") == "abc"
    assert operation_id("/1.0/operations/abc/?project=web#x") == "abc"
    assert operation_id("/1.0/operations/abc") == "abc"


def test_exec_websockets(server: FakeServer, web: Client, tmp_path: Path) -> None:
    fake = FakeExec(server, interactive=False)
    out = tmp_path / "out"
    with open(out, "wb") as sink:
        assert run_exec(web, "c1", build_exec_body(["cat"]), stdin_fd=None,
                        stdout_fd=sink.fileno(), stderr_fd=sink.fileno()) == 3
    assert sorted(fake.order) == ["0", "1", "2", "control"]
    for req in server.requests:
        assert req.query.get("project") == "web", (req.method, req.path)
    sockets = [r for r in server.requests if r.path.endswith("/websocket")]
    assert len(sockets) == 4 and all("secret" in r.query for r in sockets)


def test_events_websocket(server: FakeServer, web: Client) -> None:
    def events(ws: ServerWebSocket, req: FakeRequest) -> None:
        ws.send_frame(OP_CLOSE, b"\x03\xe8")

    server.ws_routes["/1.0/events"] = events
    ws = WebSocket.connect(web, "/1.0/events?type=lifecycle")
    assert ws.recv() is None
    ws.close()
    assert server.requests[-1].query == {"type": "lifecycle", "project": "web"}


def test_files_and_transfers(server: FakeServer, web: Client, tmp_path: Path) -> None:
    server.route("POST", "/1.0/instances/c1/files")(lambda req: sync({}))
    server.route("GET", "/1.0/instances/c1/files")(lambda req: (200, b"content"))
    server.route("DELETE", "/1.0/instances/c1/files")(lambda req: sync({}))
    server.route("GET", "/1.0/instances/c1/backups/b/export")(lambda req: (200, b"tarball"))
    op = server.add_operation()
    server.finish(op["id"])
    server.route("POST", "/1.0/instances")(lambda req: (202, async_response(op)))
    files.push(web, "c1", "/etc/motd", io.BytesIO(b"hi"), 2)
    sink = io.BytesIO()
    files.pull(web, "c1", "/etc/motd", sink)
    files.delete(web, "c1", "/etc/motd")
    written = transfer.download(web, "/1.0/instances/c1/backups/b/export", tmp_path / "b")
    backup = tmp_path / "backup.tar.gz"
    backup.write_bytes(b"x" * 10)
    transfer.upload_file(web, "/1.0/instances", backup, {})
    assert sink.getvalue() == b"content" and written.read_bytes() == b"tarball"
    assert [(m, p, q) for m, p, q in _queries(server)] == [
        ("POST", "/1.0/instances/c1/files", {"path": "/etc/motd", "project": "web"}),
        ("GET", "/1.0/instances/c1/files", {"path": "/etc/motd", "project": "web"}),
        ("DELETE", "/1.0/instances/c1/files", {"path": "/etc/motd", "project": "web"}),
        ("GET", "/1.0/instances/c1/backups/b/export", {"project": "web"}),
        ("POST", "/1.0/instances", {"project": "web"}),
    ]


def test_image_upload(server: FakeServer, web: Client, tmp_path: Path) -> None:
    op = server.add_operation()
    server.finish(op["id"])
    server.route("POST", "/1.0/images")(lambda req: (202, async_response(op)))
    image = tmp_path / "image.tar.gz"
    image.write_bytes(os.urandom(64))
    transfer.upload_image(web, [image])
    assert _queries(server) == [("POST", "/1.0/images", {"project": "web"})]
