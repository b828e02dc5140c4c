"""The exec protocol against a fake LXD exec: fds, stdin barrier, control messages, status."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from lxmgr.client import Client
from lxmgr.client.exec import (
    CommandFailed,
    ExecSession,
    build_exec_body,
    resize_message,
    run_exec,
)
from lxmgr.client.websocket import OP_BINARY, OP_CLOSE, OP_TEXT
from tests.unit.client.fake_server import FakeRequest, FakeServer, ServerWebSocket, async_op


class FakeExec:
    """Accepts the 4 (or 2) websockets, then runs an 'uppercase cat' and exits 3."""

    def __init__(self, server: FakeServer, interactive: bool) -> None:
        self.server = server
        self.interactive = interactive
        self.fds = ["0", "control"] if interactive else ["0", "1", "2", "control"]
        self.secrets = {fd: os.urandom(8).hex() for fd in self.fds}
        self.sockets: dict[str, ServerWebSocket] = {}
        self.connected = threading.Event()
        self.control: list[dict[str, Any]] = []
        self.stdin_frames: list[tuple[int, bytes]] = []
        self.op: dict[str, Any] = {}
        self.order: list[str] = []
        self.failed = ""
        server.route("POST", "/1.0/instances/c1/exec")(self.post)

    def post(self, req: FakeRequest) -> tuple[int, Any]:
        self.body = req.body
        self.op = self.server.add_operation({"fds": self.secrets}, class_="websocket")
        path = f"/1.0/operations/{self.op['id']}/websocket"
        self.server.ws_routes[path] = self.attach
        return async_op(self.op)

    def attach(self, ws: ServerWebSocket, req: FakeRequest) -> None:
        fd = next(fd for fd, s in self.secrets.items() if s == req.query["secret"])
        self.order.append(fd)
        self.sockets[fd] = ws
        if fd == "control":
            while True:
                opcode, payload = ws.recv_frame()
                if opcode == OP_CLOSE:
                    return
                self.control.append(json.loads(payload))
        if len(self.sockets) == len(self.fds):
            self.connected.set()
        if fd == "0":
            self.connected.wait(5)
            self.run()
        else:  # keep the connection open (the server closes it when the handler returns)
            self.server.op_done[self.op["id"]].wait(10)

    def run(self) -> None:
        if self.failed:  # lxmgrd's answer for a command it could not execute
            self.server.finish(self.op["id"], metadata={"return": 127, "error": self.failed})
            return
        out = self.sockets["0" if self.interactive else "1"]
        while True:
            opcode, payload = self.sockets["0"].recv_frame()
            self.stdin_frames.append((opcode, payload))
            if opcode == OP_TEXT and not payload:  # barrier
                break
            out.send_frame(OP_BINARY, payload.upper())
        if not self.interactive:
            self.sockets["2"].send_frame(OP_BINARY, b"err\n")
            self.sockets["2"].send_frame(OP_TEXT, b"")
        out.send_frame(OP_CLOSE, b"\x03\xe8")
        self.server.finish(self.op["id"], metadata={"return": 3})


def _pipe_with(data: bytes) -> int:
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def test_build_exec_body_matches_lxc() -> None:
    body = build_exec_body(["ls"], environment={"A": "1"})
    assert body == {"command": ["ls"], "environment": {"A": "1"}, "wait-for-websocket": True,
                    "interactive": False, "record-output": False}
    body = build_exec_body(["bash"], interactive=True, width=120, height=40, user=1000,
                           group=1000, cwd="/srv")
    assert (body["width"], body["height"], body["user"], body["group"], body["cwd"]) == (
        120, 40, 1000, 1000, "/srv")
    assert resize_message(120, 40) == {"command": "window-resize",
                                       "args": {"width": "120", "height": "40"}}


def test_non_interactive_exec(server: FakeServer, client: Client, tmp_path: Any) -> None:
    fake = FakeExec(server, interactive=False)
    stdin = _pipe_with(b"hello\nworld\n")
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        status = run_exec(client, "c1", build_exec_body(["cat"]), stdin_fd=stdin,
                          stdout_fd=out.fileno(), stderr_fd=err.fileno())
    os.close(stdin)
    assert status == 3
    assert out_path.read_bytes() == b"HELLO\nWORLD\n"
    assert err_path.read_bytes() == b"err\n"
    assert fake.order[0] == "control"
    assert sorted(fake.order) == ["0", "1", "2", "control"]
    assert fake.stdin_frames[-1] == (OP_TEXT, b"")  # the barrier is an empty TEXT frame
    assert all(op == OP_BINARY for op, _ in fake.stdin_frames[:-1])
    assert server.unmasked_frames == 0
    assert fake.body["wait-for-websocket"] is True


def test_interactive_exec_and_control(server: FakeServer, client: Client,
                                      tmp_path: Any) -> None:
    fake = FakeExec(server, interactive=True)
    body = build_exec_body(["bash"], interactive=True, width=80, height=24)
    session = ExecSession(client, "c1", body)
    session.start()
    session.resize(120, 40)
    session.signal(15)
    stdin = _pipe_with(b"ls\n")
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        session.pump(stdin, out.fileno(), out.fileno())
    os.close(stdin)
    assert session.finish() == 3
    assert out_path.read_bytes() == b"LS\n"
    assert sorted(fake.order) == ["0", "control"]
    for _ in range(50):
        if len(fake.control) == 2:
            break
        threading.Event().wait(0.02)
    assert fake.control == [
        {"command": "window-resize", "args": {"width": "120", "height": "40"}},
        {"command": "signal", "signal": 15},
    ]


def test_a_command_the_server_could_not_execute(server: FakeServer, client: Client,
                                                tmp_path: Any) -> None:
    fake = FakeExec(server, interactive=False)
    fake.failed = "Command not found: nosuchcmd"
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        try:
            run_exec(client, "c1", build_exec_body(["nosuchcmd"]), stdin_fd=None,
                     stdout_fd=out.fileno(), stderr_fd=out.fileno())
        except CommandFailed as err:
            assert (str(err), err.exit_status) == ("Command not found: nosuchcmd", 127)
        else:
            raise AssertionError("no CommandFailed")
    assert out_path.read_bytes() == b""
