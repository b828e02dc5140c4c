"""A tiny LXD-like server on a unix socket for client tests (stdlib threads, no aiohttp).

Routes are a dict (method, path) -> handler; websocket routes get a ServerWebSocket that
checks what a server must check (client frames masked).
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lxmgr.api.envelope import async_response, error_response, sync_response
from lxmgr.api.operation import Operation
from lxmgr.client.websocket import accept_key, encode_frame, mask_payload

Handler = Callable[["FakeRequest"], tuple[int, Any]]


class ServerWebSocket:
    """The server end: unmasked frames out, masked frames in (asserted)."""

    def __init__(self, sock: socket.socket, server: FakeServer) -> None:
        self.sock = sock
        self.server = server
        self.lock = threading.Lock()

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        with self.lock:
            self.sock.sendall(encode_frame(opcode, payload, fin=fin))

    def _exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def recv_frame(self) -> tuple[int, bytes]:
        head = self._exact(2)
        masked, length = bool(head[1] & 0x80), head[1] & 0x7F
        self.server.unmasked_frames += 0 if masked else 1
        if length == 126:
            length = struct.unpack("!H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exact(8))[0]
        mask = self._exact(4) if masked else b""
        payload = self._exact(length) if length else b""
        return head[0] & 0x0F, mask_payload(payload, mask) if masked else payload


class FakeRequest:
    def __init__(self, method: str, path: str, query: dict[str, str], body: Any,
                 headers: dict[str, str]) -> None:
        self.method, self.path, self.query, self.body, self.headers = (method, path, query,
                                                                       body, headers)


class FakeServer:
    """Serve routes on socket_path in a thread; record every request."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.routes: dict[tuple[str, str], Handler] = {}
        self.ws_routes: dict[str, Callable[[ServerWebSocket, FakeRequest], None]] = {}
        self.requests: list[FakeRequest] = []
        self.operations: dict[str, dict[str, Any]] = {}
        self.op_done: dict[str, threading.Event] = {}
        self.unmasked_frames = 0
        self.connections = 0
        self.errors: list[BaseException] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                fake.connections += 1
                super().setup()

            def log_message(self, *args: Any) -> None:
                pass

            def address_string(self) -> str:
                return "unix"

            def handle_one(self) -> None:
                fake.dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.httpd = Server(socket_path, Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            self.routes[(method, path)] = func
            return func
        return register

    def add_operation(self, metadata: dict[str, Any] | None = None,
                      class_: str = "task") -> dict[str, Any]:
        op = Operation(str(uuid.uuid4()), class_=class_, status_code=103,
                       metadata=metadata or {}).to_dict()
        self.operations[op["id"]] = op
        self.op_done[op["id"]] = threading.Event()
        return op

    def finish(self, op_id: str, code: int = 200, err: str = "",
               metadata: dict[str, Any] | None = None) -> None:
        op = self.operations[op_id]
        op.update(status_code=code, status={200: "Success", 400: "Failure"}.get(code, "?"),
                  err=err)
        if metadata is not None:
            op["metadata"] = metadata
        self.op_done[op_id].set()

    def dispatch(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw and "json" in (h.headers.get("Content-Type") or "") \
            else raw
        req = FakeRequest(h.command, url.path, query, body, dict(h.headers.items()))
        self.requests.append(req)
        if h.headers.get("Upgrade", "").lower() == "websocket":
            return self._upgrade(h, req)
        status, payload = self._answer(req)
        if isinstance(payload, bytes):
            data, ctype = payload, "text/plain"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if req.path == "/chunked":
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for i in range(0, len(data), 7):
                part = data[i:i + 7]
                h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
            return
        h.send_header("Content-Length", str(len(data)))
        if req.path == "/close":
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(data)

    def _answer(self, req: FakeRequest) -> tuple[int, Any]:
        handler = self.routes.get((req.method, req.path))
        if handler is not None:
            return handler(req)
        parts = req.path.split("/")
        if req.path.startswith("/1.0/operations/") and req.method == "GET":
            op_id = parts[3]
            if op_id not in self.operations:
                return 404, error_response("Operation not found", 404)
            if len(parts) > 4 and parts[4] == "wait":
                timeout = float(req.query.get("timeout", -1))
                self.op_done[op_id].wait(None if timeout < 0 else timeout)
            return 200, sync_response(self.operations[op_id])
        return 404, error_response("not found", 404)

    def _upgrade(self, h: BaseHTTPRequestHandler, req: FakeRequest) -> None:
        handler = self.ws_routes.get(req.path)
        if handler is None:
            data = json.dumps(error_response("Bad secret", 403)).encode()
            h.send_response(403)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        h.send_response(101)
        h.send_header("Upgrade", "websocket")
        h.send_header("Connection", "Upgrade")
        h.send_header("Sec-WebSocket-Accept", accept_key(h.headers["Sec-WebSocket-Key"]))
        h.end_headers()
        h.wfile.flush()
        h.close_connection = True
        try:
            handler(ServerWebSocket(h.connection, self), req)
        except (EOFError, OSError) as err:
            self.errors.append(err)


def sync(metadata: Any) -> tuple[int, Any]:
    return 200, sync_response(metadata)


def async_op(op: dict[str, Any]) -> tuple[int, Any]:
    return 202, async_response(op)
