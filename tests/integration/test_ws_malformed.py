"""Malformed websocket frames, sent raw after a correct upgrade, to the exec websockets
(control and stdin) and to /1.0/events: the daemon closes that websocket, the exec operation
ends with its command killed, nothing is left running and other requests are still served.
A well-formed binary frame on control is ignored, as LXD does."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

import pytest

from lxmgr.daemon.keys import MANAGER
from tests.integration.conftest import call, wait
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


def frame(opcode: int, payload: bytes, *, mask: bool = True, first: int | None = None,
          length: int | None = None) -> bytes:
    """One client frame; `first` overrides the FIN/RSV/opcode byte, `length` the header's."""
    size = len(payload) if length is None else length
    head = bytes([0x80 | opcode if first is None else first])
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", size)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


MALFORMED = {
    "bad opcode": frame(0x3, b"x"),
    "unmasked": frame(0x2, b"hello", mask=False),
    "reserved bits": frame(0x2, b"x", first=0x80 | 0x20 | 0x2),
    "oversized length": frame(0x2, b"x", length=1 << 40),
    "truncated": frame(0x2, b"0123456789", length=1000),
    "invalid utf-8": frame(0x1, b"\xff\xfe\xfd"),
    "fragmented ping": frame(0x9, b"", first=0x09),
}


async def raw_websocket(api: Any, path: str) -> tuple[asyncio.StreamReader,
                                                       asyncio.StreamWriter]:
    """A plain TCP connection upgraded by hand (the frames that follow are ours)."""
    reader, writer = await asyncio.open_connection(api.server.host, api.server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {api.server.host}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def send_and_expect_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                data: bytes, truncated: bool) -> None:
    """Send `data`; the server must end the connection (a close frame first, unless the
    client's own EOF cut the frame short)."""
    writer.write(data)
    if truncated:
        writer.write_eof()
    try:
        rest = await asyncio.wait_for(reader.read(), 15)
        assert truncated or rest[:1] == b"\x88", rest[:16]
    finally:
        writer.close()


async def start_sleeper(api: Any, name: str, tag: str) -> tuple[dict[str, Any], dict[str, str]]:
    op = await call(api, "POST", f"/1.0/instances/{name}/exec", {
        "command": ["sh", "-c", f"echo $$ > /tmp/{tag}; echo ready; exec sleep 300"],
        "wait-for-websocket": True, "interactive": False}, status=202)
    return op, op["metadata"]["metadata"]["fds"]


async def assert_killed_and_done(api: Any, op: dict[str, Any], name: str, tag: str) -> None:
    done = (await call(api, "GET", f"{op['operation']}/wait?timeout=20"))["metadata"]
    assert done["status"] != "Running", done
    manager = api.server.app[MANAGER]
    code, pid, _ = await asyncio.to_thread(exec_out, manager, name, ["cat", f"/tmp/{tag}"])
    assert code == 0 and pid.strip()
    alive, _, _ = await asyncio.to_thread(exec_out, manager, name, [
        "sh", "-c", f"kill -0 {pid.strip()} 2>/dev/null"])
    assert alive != 0, f"the command of {tag} still runs"
    running = (await call(api, "GET", "/1.0/operations"))["metadata"].get("running", [])
    assert op["operation"] not in running
    assert (await call(api, "GET", "/1.0"))["metadata"]["api_version"] == "1.0"


async def read_ready(ws: Any) -> None:
    msg = await asyncio.wait_for(ws.receive(), 15)
    assert msg.data == b"ready\n", msg


async def launch(api: Any, name: str) -> None:
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": name, "start": True, "source": {"type": "image", "alias": "debian"}},
        status=202))
    assert await asyncio.to_thread(wait_running, api.server.app[MANAGER], name) in (
        "running", "degraded")


async def test_malformed_frames_on_exec_websockets(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "mf1")
    for target in ("control", "0"):
        for index, (kind, data) in enumerate(MALFORMED.items()):
            tag = f"mf-{target}-{index}"
            op, fds = await start_sleeper(api, "mf1", tag)
            base = f"{op['operation']}/websocket?secret="
            socks = {fd: await api.ws_connect(base + fds[fd])
                     for fd in ("control", "0", "1", "2") if fd != target}
            reader, writer = await raw_websocket(api, base + fds[target])
            try:
                await read_ready(socks["1"])
                await send_and_expect_close(reader, writer, data, kind == "truncated")
                await assert_killed_and_done(api, op, "mf1", tag)
            except (AssertionError, TimeoutError) as err:
                raise AssertionError(f"{kind} on {target}: {err!r}") from err
            finally:
                for ws in socks.values():
                    await ws.close()


async def test_binary_frame_on_control_is_ignored(api) -> None:  # type: ignore[no-untyped-def]
    """LXD reads control messages as JSON and skips what does not parse; the command runs on
    until the control socket closes (which kills it)."""
    await launch(api, "mf2")
    op, fds = await start_sleeper(api, "mf2", "mf-binary")
    base = f"{op['operation']}/websocket?secret="
    socks = {fd: await api.ws_connect(base + fds[fd]) for fd in ("0", "1", "2")}
    reader, writer = await raw_websocket(api, base + fds["control"])
    try:
        await read_ready(socks["1"])
        writer.write(frame(0x2, b"\x00\x01binary"))
        await asyncio.sleep(0.5)
        shown = (await call(api, "GET", op["operation"]))["metadata"]
        assert shown["status"] == "Running"
        writer.write(frame(0x8, struct.pack(">H", 1000)))  # a proper close
        assert (await asyncio.wait_for(reader.read(), 15))[:1] == b"\x88"
        await assert_killed_and_done(api, op, "mf2", "mf-binary")
    finally:
        writer.close()
        for ws in socks.values():
            await ws.close()


async def test_malformed_frames_on_events(api) -> None:  # type: ignore[no-untyped-def]
    for kind, data in MALFORMED.items():
        reader, writer = await raw_websocket(api, "/1.0/events?type=lifecycle,operation")
        try:
            await send_and_expect_close(reader, writer, data, kind == "truncated")
        except (AssertionError, TimeoutError) as err:
            raise AssertionError(f"{kind}: {err!r}") from err
    # Still serving: a well-behaved listener gets events.
    listener = await api.ws_connect("/1.0/events?type=lifecycle")
    try:
        await wait(api, await call(api, "POST", "/1.0/instances", {
            "name": "mf3", "source": {"type": "image", "alias": "debian"}}, status=202))
        event = await asyncio.wait_for(listener.receive_json(), 10)
        assert event["metadata"]["action"] == "instance-created"
    finally:
        await listener.close()
        await wait(api, await call(api, "DELETE", "/1.0/instances/mf3", status=202))
