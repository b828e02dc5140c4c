"""LXD's console websocket, in-process against a real container: attach, see the getty,
type, resize, detach; the console log still has everything; bad requests are 4xx."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from lxmgr.daemon.keys import MANAGER
from tests.integration.conftest import call, wait
from tests.kernel.conftest import wait_running

pytestmark = pytest.mark.kernel


async def read_until(ws, needle: bytes, timeout: float = 15) -> bytes:  # type: ignore[no-untyped-def]
    seen = b""
    deadline = asyncio.get_running_loop().time() + timeout
    while needle not in seen:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, seen
        msg = await asyncio.wait_for(ws.receive(), left)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        seen += msg.data
    return seen


async def test_console_attach(api) -> None:  # type: ignore[no-untyped-def]
    manager = api.server.app[MANAGER]
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "con1", "start": True, "source": {"type": "image", "alias": "debian"}},
        status=202))
    assert wait_running(manager, "con1") == "running"
    op = await call(api, "POST", "/1.0/instances/con1/console",
                    {"width": 100, "height": 30, "type": "console"}, status=202)
    fds = op["metadata"]["metadata"]["fds"]
    base = f"{op['operation']}/websocket?secret="
    data = await api.ws_connect(base + fds["0"])
    control = await api.ws_connect(base + fds["control"])
    await data.send_bytes(b"\n")
    assert b"login:" in await read_until(data, b"login:")
    await control.send_str(json.dumps({"command": "window-resize",
                                       "args": {"width": "120", "height": "40"}}))
    await data.send_bytes(b"root\n")  # getty asks for the password: the console answers
    await read_until(data, b"assword")
    await data.close()
    await control.close()
    done = (await call(api, "GET", f"{op['operation']}/wait?timeout=10"))["metadata"]
    assert done["status"] == "Success"
    log = await (await api.get("/1.0/instances/con1/console")).read()
    assert b"login:" in log
    bad = await call(api, "POST", "/1.0/instances/con1/console", {"type": "vga"}, status=501)
    assert "console" in bad["error"]
    await call(api, "POST", "/1.0/instances/con1/console", {"width": -1}, status=400)
    await wait(api, await call(api, "PUT", "/1.0/instances/con1/state",
                               {"action": "stop", "force": True}, status=202))
    stopped = await call(api, "POST", "/1.0/instances/con1/console", {}, status=400)
    assert "not running" in stopped["error"]
