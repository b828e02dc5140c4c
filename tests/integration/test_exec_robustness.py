"""Exec and events under misbehaving clients: two execs at once, a client that goes away in
the middle of an exec or of an event stream (no stuck operation, no leaked process)."""

from __future__ import annotations

import asyncio

import pytest

from lxmgr.daemon.keys import MANAGER
from tests.integration.conftest import call, wait
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


async def start_exec(api, name: str, command: list[str]) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    op = await call(api, "POST", f"/1.0/instances/{name}/exec", {
        "command": command, "wait-for-websocket": True, "interactive": False}, status=202)
    base = f"{op['operation']}/websocket?secret="
    fds = op["metadata"]["metadata"]["fds"]
    socks = {fd: await api.ws_connect(base + fds[fd]) for fd in ("control", "0", "1", "2")}
    return op, socks


async def output(ws) -> bytes:  # type: ignore[no-untyped-def]
    data = b""
    async for msg in ws:
        if msg.type.name == "BINARY":
            data += msg.data
        elif msg.type.name == "TEXT" and msg.data == "":
            break
    return data


async def test_two_execs_and_clients_that_vanish(api) -> None:  # type: ignore[no-untyped-def]
    manager = api.server.app[MANAGER]
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "rb1", "start": True, "source": {"type": "image", "alias": "debian"}},
        status=202))
    assert wait_running(manager, "rb1") == "running"
    (op1, s1), (op2, s2) = await asyncio.gather(
        start_exec(api, "rb1", ["sh", "-c", "sleep 0.5; echo one"]),
        start_exec(api, "rb1", ["sh", "-c", "echo two; exit 4"]))
    await s1["0"].send_str("")
    await s2["0"].send_str("")
    out1, out2 = await asyncio.gather(output(s1["1"]), output(s2["1"]))
    assert (out1, out2) == (b"one\n", b"two\n")
    done1 = (await call(api, "GET", f"{op1['operation']}/wait?timeout=10"))["metadata"]
    done2 = (await call(api, "GET", f"{op2['operation']}/wait?timeout=10"))["metadata"]
    assert (done1["metadata"]["return"], done2["metadata"]["return"]) == (0, 4)
    for ws in [*s1.values(), *s2.values()]:
        await ws.close()
    # A client that disconnects mid-exec: the command is killed, the operation ends.
    op3, s3 = await start_exec(api, "rb1", ["sh", "-c", "echo $$ > /tmp/victim; sleep 300"])
    await asyncio.sleep(0.5)
    for ws in s3.values():
        await ws.close()
    done3 = (await call(api, "GET", f"{op3['operation']}/wait?timeout=15"))["metadata"]
    assert done3["status"] in ("Success", "Failure")
    code, pid, _ = exec_out(manager, "rb1", ["cat", "/tmp/victim"])
    alive = exec_out(manager, "rb1", ["sh", "-c", f"kill -0 {pid.strip()} 2>/dev/null"])[0]
    assert code == 0 and alive != 0  # the sleeper is gone
    running = (await call(api, "GET", "/1.0/operations?recursion=1"))["metadata"]
    assert not running.get("running")
    # An events listener that vanishes does not stop the others.
    gone = await api.ws_connect("/1.0/events?type=lifecycle")
    stays = await api.ws_connect("/1.0/events?type=lifecycle")
    await gone.close()
    await wait(api, await call(api, "PUT", "/1.0/instances/rb1/state",
                               {"action": "stop", "force": True}, status=202))
    event = await asyncio.wait_for(stays.receive_json(), 10)
    assert event["metadata"]["action"] == "instance-stopped"
    await stays.close()
