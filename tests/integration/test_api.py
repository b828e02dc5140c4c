"""LXD's REST API served in-process against real state and real containers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from lxmgr.daemon.keys import MANAGER
from tests.integration.conftest import call, wait

pytestmark = pytest.mark.kernel


async def launch(api, name: str, **extra) -> None:  # type: ignore[no-untyped-def]
    body = {"name": name, "source": {"type": "image", "alias": "debian"}, "start": True,
            **extra}
    await wait(api, await call(api, "POST", "/1.0/instances", body, status=202))


async def test_server_info(api) -> None:  # type: ignore[no-untyped-def]
    assert (await call(api, "GET", "/"))["metadata"] == ["/1.0"]
    info = (await call(api, "GET", "/1.0"))["metadata"]
    assert info["auth"] == "trusted" and info["api_version"] == "1.0"
    assert "instance_create_start" in info["api_extensions"]
    assert info["environment"]["server_clustered"] is False
    error = await call(api, "GET", "/1.0/nonsense", status=404)
    assert error["type"] == "error" and error["error_code"] == 404


@pytest.mark.parametrize("body,status,message", [
    (None, 400, "Missing request body"),
    ({"name": "bad_name", "source": {"alias": "debian"}}, 400, "name"),
    ({"name": "1abc", "source": {"alias": "debian"}}, 400, "name"),
    ({"name": "c1", "source": {"alias": "nosuchimage"}}, 404, "nosuchimage"),
    ({"name": "c1", "source": {"alias": "debian"}, "profiles": ["nope"]}, 404, "nope"),
    ({"name": "c1", "source": {"alias": "debian"}, "config": {"bogus.key": "1"}}, 400,
     "bogus.key"),
    ({"name": "c1", "source": {"alias": "debian"}, "config": {"limits.memory": "lots"}}, 400,
     "limits.memory"),
    ({"name": "c1", "source": {"alias": "debian"}, "config": "x"}, 400, "config"),
    ({"name": "c1", "source": {}}, 400, "source"),
    ({"name": 5, "source": {"alias": "debian"}}, 400, "name"),
])
async def test_bad_create_requests(api, body, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    error = await call(api, "POST", "/1.0/instances", body, status=status)
    assert message in error["error"] and error["error_code"] == status
    assert (await call(api, "GET", "/1.0/instances"))["metadata"] == []


async def test_malformed_json(api) -> None:  # type: ignore[no-untyped-def]
    error = await call(api, "POST", "/1.0/instances", raw=b"{not json", status=400)
    assert "Malformed JSON" in error["error"]
    await call(api, "PUT", "/1.0/instances/x/state", raw=b"[]", status=400)
    # A body declared as a backup tarball that is none: refused at once, nothing created.
    resp = await api.post("/1.0/instances", data=b"{not a tarball",
                          headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 400 and "not a tar archive" in (await resp.json())["error"]
    assert (await call(api, "GET", "/1.0/instances"))["metadata"] == []


async def test_instance_lifecycle(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "web1")
    dup = await call(api, "POST", "/1.0/instances",
                     {"name": "web1", "source": {"alias": "debian"}}, status=409)
    assert "already exists" in dup["error"]
    listing = (await call(api, "GET", "/1.0/instances"))["metadata"]
    assert listing == ["/1.0/instances/web1"]
    full = (await call(api, "GET", "/1.0/instances?recursion=2"))["metadata"][0]
    assert full["status"] == "Running" and full["status_code"] == 103
    assert full["state"]["pid"] > 0 and full["expanded_devices"]["root"]["path"] == "/"
    # LXD's selective recursion: the costly fields only when asked; status and usage always.
    assert full["state"]["network"] == {} and full["state"]["disk"] == {}
    for query, network, disk in (("recursion=2;fields=", None, None),
                                 ("recursion=2;fields=state.network", {}, None),
                                 ("recursion=2&fields=state.disk", None, {})):
        for path in ("/1.0/instances", "/1.0/instances/web1"):
            got = (await call(api, "GET", f"{path}?{query}"))["metadata"]
            state = (got[0] if isinstance(got, list) else got)["state"]
            assert (state["network"], state["disk"], state["status"]) == \
                (network, disk, "Running"), (path, query)
            assert state["pid"] > 0 and state["memory"]["usage"] > 0
    for bad in ("recursion=2;fields=state.cpu", "recursion=2;other=1"):
        assert "Invalid" in (await call(api, "GET", f"/1.0/instances?{bad}", status=400)
                             )["error"]
    assert (await call(api, "GET", '/1.0/instances?recursion=1&filter=status eq Stopped')
            )["metadata"] == []
    state = (await call(api, "GET", "/1.0/instances/web1/state"))["metadata"]
    assert state["processes"] > 0 and state["memory"]["usage"] > 0
    again = await call(api, "PUT", "/1.0/instances/web1/state", {"action": "start"},
                       status=400)
    assert "already running" in again["error"]
    busy = await call(api, "DELETE", "/1.0/instances/web1", status=400)
    assert "running" in busy["error"]
    await wait(api, await call(api, "PUT", "/1.0/instances/web1/state",
                               {"action": "freeze"}, status=202))
    assert (await call(api, "GET", "/1.0/instances/web1"))["metadata"]["status"] == "Frozen"
    await wait(api, await call(api, "PUT", "/1.0/instances/web1/state",
                               {"action": "unfreeze"}, status=202))
    await wait(api, await call(api, "PUT", "/1.0/instances/web1/state",
                               {"action": "stop", "timeout": 30}, status=202))
    stopped = await call(api, "PUT", "/1.0/instances/web1/state", {"action": "stop"},
                         status=400)
    assert "not running" in stopped["error"]
    bad = await call(api, "PUT", "/1.0/instances/web1/state", {"action": "dance"}, status=400)
    assert "dance" in bad["error"]
    await wait(api, await call(api, "DELETE", "/1.0/instances/web1", status=202))
    await call(api, "GET", "/1.0/instances/web1", status=404)


async def test_config_update_applies_live_and_validates(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "cfg1")
    await wait(api, await call(api, "PATCH", "/1.0/instances/cfg1",
                               {"config": {"limits.processes": "321"}}, status=202))
    inst = (await call(api, "GET", "/1.0/instances/cfg1"))["metadata"]
    assert inst["config"]["limits.processes"] == "321"
    assert "volatile.uuid" in inst["config"]
    manager = api.server.app[MANAGER]
    path = manager.cgroups.path(manager.cgroups.layout.find("pids"), "cfg1") + "/pids.max"
    with open(path) as f:
        assert f.read().strip() == "321"
    bad = await call(api, "PUT", "/1.0/instances/cfg1",
                     {"config": {"limits.processes": "x"}}, status=400)
    assert "limits.processes" in bad["error"]
    volatile = await call(api, "PATCH", "/1.0/instances/cfg1",
                          {"config": {"volatile.uuid": "x"}}, status=400)
    assert "volatile" in volatile["error"]


async def test_exec_websockets_and_record_output(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "ex1", config={"environment.GREETING": "hi"})
    body = {"command": ["sh", "-c", "cat; echo $GREETING >&2; exit 3"],
            "wait-for-websocket": True, "interactive": False, "environment": {}}
    resp = await call(api, "POST", "/1.0/instances/ex1/exec", body, status=202)
    op = resp["metadata"]
    fds = op["metadata"]["fds"]
    assert set(fds) == {"0", "1", "2", "control"}
    bad = await api.get(f"/1.0/operations/{op['id']}/websocket?secret=wrong")
    assert bad.status == 403
    socks = {k: await api.ws_connect(f"/1.0/operations/{op['id']}/websocket?secret={v}")
             for k, v in fds.items() if k != "control"}
    await socks["0"].send_bytes(b"hello\n")
    await socks["0"].send_str("")

    async def read(ws) -> bytes:  # type: ignore[no-untyped-def]
        out = b""
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            out += msg.data
        return out
    out, err = await asyncio.gather(read(socks["1"]), read(socks["2"]))
    done = await wait(api, resp)
    assert (out, err, done["metadata"]["return"]) == (b"hello\n", b"hi\n", 3)
    for ws in socks.values():
        await ws.close()
    rec = await wait(api, await call(api, "POST", "/1.0/instances/ex1/exec", {
        "command": ["sh", "-c", "echo recorded"], "record-output": True}, status=202))
    url = rec["metadata"]["output"]["1"]
    assert (await (await api.get(url)).read()) == b"recorded\n"
    assert url in (await call(api, "GET", "/1.0/instances/ex1/logs/exec-output"))["metadata"]
    await call(api, "GET", "/1.0/instances/ex1/logs/exec-output/..%2fsupervisor.json",
               status=400)


async def test_exec_interactive_pty(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "pty1")
    resp = await call(api, "POST", "/1.0/instances/pty1/exec", {
        "command": ["sh", "-c", "stty size; read x; stty size"], "wait-for-websocket": True,
        "interactive": True, "width": 100, "height": 30}, status=202)
    fds = resp["metadata"]["metadata"]["fds"]
    assert set(fds) == {"0", "control"}
    base = f"/1.0/operations/{resp['metadata']['id']}/websocket?secret="
    control = await api.ws_connect(base + fds["control"])
    term = await api.ws_connect(base + fds["0"])
    out = b""
    while b"30 100" not in out:
        out += (await term.receive()).data
    await control.send_str('{"command": "window-resize", "args": {"width": "120", '
                           '"height": "40"}}')
    await asyncio.sleep(0.2)
    await term.send_bytes(b"go\n")
    while b"40 120" not in out:
        msg = await term.receive()
        if msg.type != aiohttp.WSMsgType.BINARY:
            break
        out += msg.data
    assert b"40 120" in out
    assert (await wait(api, resp))["metadata"]["return"] == 0
    await term.close()
    await control.close()


async def test_profiles(api) -> None:  # type: ignore[no-untyped-def]
    events = await api.ws_connect("/1.0/events?type=lifecycle")
    names = (await call(api, "GET", "/1.0/profiles"))["metadata"]
    assert "/1.0/profiles/default" in names
    await call(api, "POST", "/1.0/profiles", {"name": "tight", "config": {
        "limits.processes": "400"}}, status=201)
    await call(api, "POST", "/1.0/profiles", {"name": "tight"}, status=409)
    await call(api, "POST", "/1.0/profiles", {"name": "bad", "config": {"x.y": "1"}},
               status=400)
    await launch(api, "pr1", profiles=["default", "tight"])
    prof = (await call(api, "GET", "/1.0/profiles/tight"))["metadata"]
    assert prof["used_by"] == ["/1.0/instances/pr1"]
    await call(api, "PATCH", "/1.0/profiles/tight", {"config": {"limits.processes": "444"}})
    manager = api.server.app[MANAGER]
    path = manager.cgroups.path(manager.cgroups.layout.find("pids"), "pr1") + "/pids.max"
    with open(path) as f:
        assert f.read().strip() == "444"  # the running user got the change
    assert "in use" in (await call(api, "DELETE", "/1.0/profiles/tight", status=400))["error"]
    assert "default" in (await call(api, "DELETE", "/1.0/profiles/default", status=403)
                         )["error"]
    await call(api, "POST", "/1.0/profiles/tight", {"name": "snug"}, status=201)
    inst = (await call(api, "GET", "/1.0/instances/pr1"))["metadata"]
    assert inst["profiles"] == ["default", "snug"]
    seen = []  # LXD's profile lifecycle events, which web panels refresh on
    while len(seen) < 3:
        meta = (await asyncio.wait_for(events.receive_json(), 10))["metadata"]
        if meta["action"].startswith("profile-"):
            seen.append((meta["action"], meta["source"], meta["context"]))
    assert seen == [("profile-created", "/1.0/profiles/tight", {}),
                    ("profile-updated", "/1.0/profiles/tight", {}),
                    ("profile-renamed", "/1.0/profiles/snug", {"old_name": "tight"})]
    await events.close()
    await call(api, "GET", "/1.0/profiles/nope", status=404)


async def test_operations_images_and_events(api) -> None:  # type: ignore[no-untyped-def]
    events = await api.ws_connect("/1.0/events?type=lifecycle")
    await launch(api, "ev1")
    actions = []
    while "instance-started" not in actions:
        msg = await asyncio.wait_for(events.receive_json(), 10)
        assert msg["type"] == "lifecycle"
        actions.append(msg["metadata"]["action"])
    assert actions[:2] == ["instance-created", "instance-started"]
    await events.close()
    ops = (await call(api, "GET", "/1.0/operations?recursion=1"))["metadata"]
    assert any(op["description"] == "Creating instance ev1" for op in ops["success"])
    await call(api, "GET", "/1.0/operations/nope", status=404)
    op_id = ops["success"][0]["id"]
    assert "done" in (await call(api, "DELETE", f"/1.0/operations/{op_id}", status=400)
                      )["error"]
    images = (await call(api, "GET", "/1.0/images?recursion=1"))["metadata"]
    assert any("debian" in [a["name"] for a in i["aliases"]] for i in images)
    alias = (await call(api, "GET", "/1.0/images/aliases/debian"))["metadata"]
    # The cache may also hold images of older recipes (no alias): the alias picks the one.
    aliased = [i for i in images if "debian" in [a["name"] for a in i["aliases"]]]
    assert [i["fingerprint"] for i in aliased] == [alias["target"]]
    used = await call(api, "DELETE", f"/1.0/images/{alias['target']}", status=400)
    assert "used by" in used["error"]
    console = b""
    for _ in range(100):  # the boot is still printing right after the start
        console = await (await api.get("/1.0/instances/ev1/console")).read()
        if b"Reached target" in console:
            break
        await asyncio.sleep(0.1)
    assert b"Reached target" in console


async def test_ephemeral_is_deleted_when_stopped(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "eph1", ephemeral=True)
    await wait(api, await call(api, "PUT", "/1.0/instances/eph1/state",
                               {"action": "stop", "force": True}, status=202))
    await call(api, "GET", "/1.0/instances/eph1", status=404)
