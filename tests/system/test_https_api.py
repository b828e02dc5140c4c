"""The API over HTTPS as LXD's web UI uses it, on a real lxmgrd with a real container: a
trusted client certificate reads every list the UI loads (recursion, all-projects), follows
lifecycle and operation events over wss and attaches the console over wss; an untrusted
certificate sees only GET /1.0. Listens on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lxmgr.api.certificate import generate_certificate

pytestmark = [pytest.mark.kernel, pytest.mark.system]

UI_LISTS = ["/1.0/projects?recursion=1", "/1.0/projects/default",
            "/1.0/instances?recursion=2", "/1.0/instances?recursion=2&all-projects=true",
            "/1.0/operations?recursion=1", "/1.0/operations?recursion=1&all-projects=true",
            "/1.0/profiles?recursion=1", "/1.0/networks?recursion=1",
            "/1.0/images?recursion=1", "/1.0/storage-pools?recursion=1",
            "/1.0/certificates?recursion=1", "/1.0/resources"]


class Https:
    """aiohttp over TLS to the daemon's 127.0.0.1 listener with one client certificate."""

    def __init__(self, port: int, crt: Path, key: Path) -> None:
        self.base = f"127.0.0.1:{port}"
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE  # the server certificate is not the point
        self.context.load_cert_chain(crt, key)
        self.session = aiohttp.ClientSession()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, f"https://{self.base}{path}", json=body,
                                        ssl=self.context) as resp:
            return resp.status, await resp.json()

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, envelope = await self.call(method, path, body)
        assert status in (200, 201, 202), (path, envelope)
        if envelope["type"] == "async":
            status, done = await self.call("GET", f"{envelope['operation']}/wait?timeout=120")
            assert done["metadata"]["status"] == "Success", done
        return envelope["metadata"]

    def websocket(self, path: str) -> Any:
        return self.session.ws_connect(f"wss://{self.base}{path}", ssl=self.context)


def _listen(daemon: Any) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    daemon.api("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}})
    return port


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = generate_certificate(name, [], client=True)
    (tmp_path / f"{name}.crt").write_bytes(cert)
    (tmp_path / f"{name}.key").write_bytes(key)
    return tmp_path / f"{name}.crt", tmp_path / f"{name}.key"


def _trusted(daemon: Any, tmp_path: Path, name: str) -> tuple[Path, Path]:
    crt, key = _certificate(tmp_path, name)
    daemon.api("POST", "/1.0/certificates", {"name": name, "certificate": crt.read_text()})
    return crt, key


async def _event(ws: Any, action: str, timeout: float = 60) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        while True:
            event = await ws.receive_json()
            if event["type"] == "lifecycle" and event["metadata"]["action"] == action:
                return event  # type: ignore[no-any-return]

    return await asyncio.wait_for(find(), timeout)


async def test_web_ui_calls_over_https(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = _listen(daemon)
    ui = Https(port, *_trusted(daemon, tmp_path, "lxd-ui"))
    stranger = Https(port, *_certificate(tmp_path, "stranger"))
    try:
        info = await ui.ok("GET", "/1.0")
        assert info["auth"] == "trusted" and info["auth_user_method"] == "tls"
        assert info["environment"]["server_version"] and "projects" in info["api_extensions"]
        assert info["environment"]["addresses"] == [f"127.0.0.1:{port}"]
        for path in UI_LISTS:
            await ui.ok("GET", path)
        assert (await ui.ok("GET", "/1.0/projects/default"))["name"] == "default"

        async with ui.websocket("/1.0/events?type=lifecycle,operation&all-projects=true") \
                as events:
            await ui.ok("POST", "/1.0/instances", {
                "name": "ui1", "source": {"type": "image", "alias": "debian"}})
            await ui.ok("PUT", "/1.0/instances/ui1/state", {"action": "start"})
            started = await _event(events, "instance-started")
            assert started["metadata"]["source"] == "/1.0/instances/ui1"
            listed = await ui.ok("GET", "/1.0/instances?recursion=2")
            assert [(i["name"], i["status"]) for i in listed] == [("ui1", "Running")]
            assert listed[0]["state"]["status"] == "Running" and listed[0]["state"]["pid"] > 0
            ops = await ui.ok("GET", "/1.0/operations?recursion=1")
            assert all(isinstance(op, dict) for group in ops.values() for op in group)
            await ui.ok("PUT", "/1.0/instances/ui1/state", {"action": "stop", "force": True})
            await _event(events, "instance-stopped")
        await ui.ok("DELETE", "/1.0/instances/ui1")

        status, body = await stranger.call("GET", "/1.0")
        assert status == 200 and body["metadata"]["auth"] == "untrusted"
        assert (await stranger.call("GET", "/"))[0] == 200
        for path in [*UI_LISTS, "/1.0/instances/ui1"]:
            status, body = await stranger.call("GET", path)
            assert (status, body["error_code"]) == (403, 403), path
        status, _ = await stranger.call("POST", "/1.0/instances", {"name": "x"})
        assert status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await stranger.websocket("/1.0/events")
    finally:
        await ui.session.close()
        await stranger.session.close()


async def test_console_over_wss(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """POST .../console with wait-for-websocket over HTTPS, both websockets over wss with the
    client certificate: the getty answers a newline; a clean close ends the operation. As in
    LXD, the secret alone authorizes a websocket: an untrusted certificate may attach with it
    (control here), not without it."""
    port = _listen(daemon)
    ui = Https(port, *_trusted(daemon, tmp_path, "console"))
    stranger = Https(port, *_certificate(tmp_path, "stranger"))
    try:
        await ui.ok("POST", "/1.0/instances", {
            "name": "cw1", "start": True, "source": {"type": "image", "alias": "debian"}})
        status, op = await ui.call("POST", "/1.0/instances/cw1/console", {
            "type": "console", "width": 80, "height": 24, "wait-for-websocket": True})
        assert status == 202, op
        fds = op["metadata"]["metadata"]["fds"]
        base = f"{op['operation']}/websocket?secret="
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stranger.websocket(base + "0" * 64)
        assert refused.value.status == 403
        async with stranger.websocket(base + fds["control"]) as control, \
                ui.websocket(base + fds["0"]) as console:
            await control.send_str(json.dumps({"command": "window-resize",
                                               "args": {"width": "100", "height": "30"}}))
            seen = b""
            deadline = asyncio.get_running_loop().time() + 90
            while b"login:" not in seen:
                await console.send_bytes(b"\r")
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, seen[-500:]
                try:
                    msg = await asyncio.wait_for(console.receive(), min(left, 3))
                except TimeoutError:
                    continue
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                seen += msg.data
        status, done = await ui.call("GET", f"{op['operation']}/wait?timeout=30")
        assert done["metadata"]["status"] != "Running", done
        running = (await ui.ok("GET", "/1.0/operations")).get("running", [])
        assert op["operation"] not in running
        await ui.ok("PUT", "/1.0/instances/cw1/state", {"action": "stop", "force": True})
        await ui.ok("DELETE", "/1.0/instances/cw1")
    finally:
        await ui.session.close()
        await stranger.session.close()
