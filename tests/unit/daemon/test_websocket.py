"""The client-mask check in front of aiohttp's frame parser (lxmgr.daemon.websocket)."""

from __future__ import annotations

import struct
from typing import Any

from lxmgr.daemon.websocket import MaskedFrames


class Recorder:
    def __init__(self) -> None:
        self.fed = b""
        self.error: Exception | None = None

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed += data
        return False, b""

    def set_exception(self, exc: Exception) -> None:
        self.error = exc


def _frame(payload: bytes, mask: bool = True, size: int | None = None) -> bytes:
    n = len(payload) if size is None else size
    bit = 0x80 if mask else 0
    if n < 126:
        head = bytes([0x82, bit | n])
    elif n < 1 << 16:
        head = bytes([0x82, bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x82, bit | 127]) + struct.pack(">Q", n)
    return head + (b"\x00" * 4 if mask else b"") + payload


def _check(chunks: list[bytes]) -> tuple[Recorder, Any]:
    parser = Recorder()
    check = MaskedFrames(parser, parser)
    results = [check.feed_data(chunk) for chunk in chunks]
    return parser, results


def test_masked_frames_pass_through_in_any_split() -> None:
    stream = _frame(b"a" * 5) + _frame(b"b" * 300) + _frame(b"c" * 70000) + _frame(b"")
    for size in (1, 2, 3, 7, 100, 4096, len(stream)):
        parser, results = _check([stream[i:i + size] for i in range(0, len(stream), size)])
        assert parser.error is None and parser.fed == stream, size
        assert all(r == (False, b"") for r in results)


def test_unmasked_frame_fails_the_websocket() -> None:
    stream = _frame(b"ok") + _frame(b"x" * 200, mask=False)
    for size in (1, 5, len(stream)):
        parser, results = _check([stream[i:i + size] for i in range(0, len(stream), size)])
        assert "unmasked" in str(parser.error)
        assert results[-1] == (True, b"")
        # At most the unmasked frame's first byte (alone it cannot tell) reached aiohttp.
        assert stream.startswith(parser.fed) and len(parser.fed) <= len(_frame(b"ok")) + 1
