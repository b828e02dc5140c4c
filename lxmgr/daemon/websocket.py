"""Server websockets (events, exec, console) with RFC 6455's client masking enforced.

aiohttp's frame parser closes on bad opcodes, reserved bits, invalid UTF-8 and oversized
messages, but accepts unmasked client frames, which section 5.1 says a server MUST close the
connection on (LXD's gorilla/websocket does: "incorrect mask flag"). prepare() wraps the
connection's parser with a header scanner that fails the websocket with 1002 on the first
unmasked frame; every other byte still goes to aiohttp's parser unchanged.

The wrapper reaches into aiohttp internals (the protocol's `_payload_parser`, the response's
`_reader` queue); when they are missing (another aiohttp) the check is skipped, logged once.
Imports aiohttp only.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import WebSocketError, WSCloseCode, web

log = logging.getLogger(__name__)
_warned = False


class MaskedFrames:
    """Scans frame headers (2 bytes, extended length, mask key) and skips payloads; feeds
    everything to aiohttp's parser, failing the queue on an unmasked frame."""

    def __init__(self, parser: Any, queue: Any) -> None:
        self.parser, self.queue = parser, queue
        self.pending = b""  # an incomplete header seen so far
        self.skip = 0  # payload bytes of the current frame still to come
        self.failed = False

    def feed_eof(self) -> None:
        self.parser.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.failed:
            return True, b""
        if not self._scan(bytes(data)):
            self.failed = True
            self.queue.set_exception(WebSocketError(
                WSCloseCode.PROTOCOL_ERROR, "Received an unmasked frame from the client"))
            return True, b""  # aiohttp's protocol closes the transport on eof
        return self.parser.feed_data(data)  # type: ignore[no-any-return]

    def _scan(self, data: bytes) -> bool:
        """False on an unmasked frame; remembers where the next header starts."""
        buf = self.pending + data if self.pending else data
        pos, end = 0, len(buf)
        while True:
            step = min(self.skip, end - pos)
            pos, self.skip = pos + step, self.skip - step
            if self.skip or end - pos < 2:
                break
            second = buf[pos + 1]
            if not second & 0x80:
                return False
            length = second & 0x7F
            extra = {126: 2, 127: 8}.get(length, 0)
            if end - pos < 2 + extra + 4:
                break
            if extra:
                length = int.from_bytes(buf[pos + 2:pos + 2 + extra], "big")
            pos, self.skip = pos + 2 + extra + 4, length
        self.pending = buf[pos:] if not self.skip else b""
        return True


async def prepare(ws: web.WebSocketResponse, request: web.Request) -> None:
    """ws.prepare(request), then the masking check on the connection's incoming frames."""
    global _warned
    await ws.prepare(request)
    protocol = request.protocol
    parser = getattr(protocol, "_payload_parser", None)
    queue = getattr(ws, "_reader", None)
    if parser is None or queue is None or not hasattr(queue, "set_exception"):
        if not _warned:
            log.warning("This aiohttp has no parser hook: unmasked client frames are accepted")
            _warned = True
        return
    protocol._payload_parser = MaskedFrames(parser, queue)
