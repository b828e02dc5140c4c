"""WebSocket client: handshake check, masking, fragments, ping/pong, close, refusals."""

from __future__ import annotations

import socket
import threading

import pytest

from lxmgr import errors
from lxmgr.client.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WebSocket,
    accept_key,
    encode_frame,
    mask_payload,
)
from tests.unit.client.fake_server import FakeRequest, FakeServer, ServerWebSocket


def test_accept_key_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_frame_encoding_lengths_and_mask() -> None:
    assert encode_frame(OP_TEXT, b"hi") == b"\x81\x02hi"
    assert encode_frame(OP_BINARY, b"x" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert encode_frame(OP_BINARY, b"x" * 70000)[:2] == b"\x82\x7f"
    frame = encode_frame(OP_TEXT, b"Hello", mask=b"\x37\xfa\x21\x3d")
    assert frame == b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"  # RFC 6455 5.7
    assert mask_payload(mask_payload(b"abcdefg", b"1234"), b"1234") == b"abcdefg"


def _echo(ws: ServerWebSocket, req: FakeRequest) -> None:
    """Echo data frames; reply in two fragments with a ping in between; echo close."""
    while True:
        opcode, payload = ws.recv_frame()
        if opcode == OP_CLOSE:
            ws.send_frame(OP_CLOSE, payload)
            return
        if opcode == OP_PONG:
            ws.server.requests.append(FakeRequest("PONG", "", {}, payload, {}))
            continue
        half = len(payload) // 2
        ws.send_frame(opcode, payload[:half], fin=False)
        ws.send_frame(OP_PING, b"are you there")
        ws.send_frame(OP_CONT, payload[half:], fin=True)


def test_echo_roundtrip(server: FakeServer) -> None:
    server.ws_routes["/echo"] = _echo
    ws = WebSocket.connect(server.socket_path, "/echo")
    ws.send_binary(b"\x00\x01binary" * 10000)
    msg = ws.recv()
    assert msg is not None and msg.opcode == OP_BINARY and msg.data == b"\x00\x01binary" * 10000
    ws.send_text("héllo")
    msg = ws.recv()
    assert msg is not None and msg.is_text and msg.text() == "héllo"
    ws.close()
    assert ws.recv() is None
    ws.shutdown()
    assert server.unmasked_frames == 0
    pongs = [r.body for r in server.requests if r.method == "PONG"]
    assert pongs == [b"are you there", b"are you there"]


def test_server_close_ends_recv(server: FakeServer) -> None:
    def closer(ws: ServerWebSocket, req: FakeRequest) -> None:
        ws.send_frame(OP_CLOSE, b"\x03\xe8")
        opcode, _ = ws.recv_frame()
        assert opcode == OP_CLOSE

    server.ws_routes["/close"] = closer
    ws = WebSocket.connect(server.socket_path, "/close")
    assert ws.recv() is None
    assert ws.close_received and ws.close_sent


def test_refused_upgrade_raises_the_api_error(server: FakeServer) -> None:
    with pytest.raises(errors.LxmgrError, match="Bad secret"):
        WebSocket.connect(server.socket_path, "/1.0/operations/x/websocket?secret=bad")


def test_bad_accept_key_is_refused(tmp_path: object) -> None:
    path = f"{tmp_path}/ws.socket"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with pytest.raises(errors.LxmgrError, match="Sec-WebSocket-Accept"):
        WebSocket.connect(path, "/x")
    thread.join(5)
    listener.close()
