"""A minimal RFC 6455 websocket client over lxmgrd's unix socket (stdlib only).

Enough for LXD's exec/console streams and the events feed: masked client frames, binary,
text, ping/pong, close, fragmented messages, the Sec-WebSocket-Accept check. One thread may
recv() while others send(); sends are serialised by a lock. Imports lxmgr.client.rest only.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
import socket
import struct
import threading

from lxmgr import errors
from lxmgr.client.rest import connect_unix, error_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from lxmgr.client.rest import Client

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HEADER = 65536


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def _sha1(data: bytes) -> Any:
    """hashlib.sha1 without importing hashlib and OpenSSL's _hashlib (~6 ms of a CLI start
    here): CPython's own _sha1 when it has one."""
    try:
        from _sha1 import sha1  # type: ignore[import-not-found]
    except ImportError:
        from hashlib import sha1
    return sha1(data)


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value a server must answer for key."""
    return _b64(_sha1((key + GUID).encode()).digest())


def mask_payload(payload: bytes, mask: bytes) -> bytes:
    """XOR payload with the 4-byte mask (one big-int XOR: fast enough for 64 KiB chunks)."""
    if not payload:
        return b""
    length = len(payload)
    repeated = (mask * (length // 4 + 1))[:length]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(length, "big")


def encode_frame(opcode: int, payload: bytes, *, mask: bytes | None = None,
                 fin: bool = True) -> bytes:
    """One frame; client frames pass a 4-byte mask (RFC 6455 section 5.3)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    length = len(payload)
    if length < 126:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + mask_payload(payload, mask)


class Message:
    """One complete (reassembled) data message."""

    __slots__ = ("opcode", "data")

    def __init__(self, opcode: int, data: bytes) -> None:
        self.opcode = opcode
        self.data = data

    def __repr__(self) -> str:
        return f"Message(opcode={self.opcode}, data={self.data[:32]!r})"

    @property
    def is_text(self) -> bool:
        return self.opcode == OP_TEXT

    def text(self) -> str:
        return self.data.decode()


class WebSocket:
    """A connected client websocket; use connect() to open one."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self._buf = bytearray(buffered)
        self._send_lock = threading.Lock()
        self.close_sent = False
        self.close_received = False

    @classmethod
    def connect(cls, target: str | Client, path: str, *, timeout: float | None = 10.0,
                headers: dict[str, str] | None = None) -> WebSocket:
        """Open path on the daemon (a Client's, with its project as every request of it, or
        a unix socket path) and upgrade; raise the API error on a refusal."""
        if isinstance(target, str):
            sock, host = connect_unix(target, timeout), "unix.socket"
        else:
            sock, host = target.open_stream(timeout), target.host
            path = target.url(path)
        try:
            sock.settimeout(timeout)
            key = _b64(os.urandom(16))
            lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
                     "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                     "Sec-WebSocket-Version: 13"]
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            status, resp_headers, rest = _read_handshake(sock)
            if status != 101:
                raise _refusal(sock, status, resp_headers, rest)
            if resp_headers.get("sec-websocket-accept") != accept_key(key):
                raise errors.LxmgrError(f"Websocket handshake for '{path}' failed: bad "
                                        "Sec-WebSocket-Accept")
            sock.settimeout(None)
            return cls(sock, rest)
        except BaseException:
            sock.close()
            raise

    def send(self, data: bytes | str) -> None:
        """A text frame for str, a binary frame for bytes."""
        if isinstance(data, str):
            self._send_frame(OP_TEXT, data.encode())
        else:
            self._send_frame(OP_BINARY, data)

    def send_binary(self, data: bytes) -> None:
        self._send_frame(OP_BINARY, data)

    def send_text(self, text: str) -> None:
        self._send_frame(OP_TEXT, text.encode())

    def send_json(self, value: object) -> None:
        self.send_text(json.dumps(value))

    def ping(self, data: bytes = b"") -> None:
        self._send_frame(OP_PING, data)

    def recv(self) -> Message | None:
        """The next data message (fragments joined); None once the peer closed."""
        parts: list[bytes] = []
        opcode = None
        while True:
            frame = self._read_frame()
            if frame is None:
                return None
            fin, op, payload = frame
            if op == OP_PING:
                self._send_frame(OP_PONG, payload, quiet=True)
            elif op == OP_PONG:
                continue
            elif op == OP_CLOSE:
                self.close_received = True
                self.close(_close_code(payload))
                self.shutdown()  # both close frames exchanged: the handshake is over
                return None
            else:
                if op != OP_CONT:
                    opcode = op
                    parts = []
                elif opcode is None:
                    raise errors.LxmgrError("Websocket protocol error: stray continuation")
                parts.append(payload)
                if fin:
                    return Message(opcode, b"".join(parts))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once); the socket is shut down by shutdown()."""
        if self.close_sent:
            return
        self.close_sent = True
        payload = struct.pack("!H", code) + reason.encode() if code else b""
        self._send_frame(OP_CLOSE, payload, quiet=True)

    def shutdown(self) -> None:
        """Close the socket now (unblocks a thread in recv())."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _send_frame(self, opcode: int, payload: bytes, *, quiet: bool = False) -> None:
        frame = encode_frame(opcode, payload, mask=os.urandom(4))
        with self._send_lock:
            try:
                self.sock.sendall(frame)
            except OSError:
                if not quiet:
                    raise

    def _read_exact(self, count: int) -> bytes | None:
        while len(self._buf) < count:
            try:
                chunk = self.sock.recv(max(65536, count - len(self._buf)))
            except OSError:
                chunk = b""
            if not chunk:
                return None
            self._buf += chunk
        data = bytes(self._buf[:count])
        del self._buf[:count]
        return data

    def _read_frame(self) -> tuple[bool, int, bytes] | None:
        head = self._read_exact(2)
        if head is None:
            return None
        fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
        masked, length = bool(head[1] & 0x80), head[1] & 0x7F
        if length >= 126:
            ext = self._read_exact(2 if length == 126 else 8)
            if ext is None:
                return None
            length = struct.unpack("!H" if len(ext) == 2 else "!Q", ext)[0]
        mask = self._read_exact(4) if masked else None
        payload = self._read_exact(length) if length else b""
        if payload is None or (masked and mask is None):
            return None
        return fin, opcode, mask_payload(payload, mask) if mask else payload


def _close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1000


def _read_handshake(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > _MAX_HEADER:
            raise errors.LxmgrError("Websocket handshake failed: connection closed")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def _refusal(sock: socket.socket, status: int, headers: dict[str, str],
             rest: bytes) -> errors.LxmgrError:
    """The error a non-101 answer carries (its JSON envelope when there is one)."""
    length = int(headers.get("content-length", "0") or 0)
    body = rest
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    try:
        env = json.loads(body)
        return error_for(int(env.get("error_code") or status), str(env["error"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return error_for(status, f"Websocket upgrade refused with HTTP {status}")
