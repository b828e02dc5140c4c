"""GET /1.0/instances at recursion 0/1 is served from a cache (lxmgr.daemon.views.Listing):
every change, to an instance, a profile or a status, shows in the very next listing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lxmgr.daemon.keys import MANAGER
from tests.integration.conftest import call, wait
from tests.kernel.conftest import wait_running

pytestmark = pytest.mark.kernel


async def listing(api: Any) -> dict[str, dict[str, Any]]:
    """name -> Instance, listed twice (the second from the cache) and checked equal."""
    first = (await call(api, "GET", "/1.0/instances?recursion=1"))["metadata"]
    again = (await call(api, "GET", "/1.0/instances?recursion=1"))["metadata"]
    assert first == again
    return {i["name"]: i for i in first}


async def state(api: Any, name: str, action: str) -> None:
    await wait(api, await call(api, "PUT", f"/1.0/instances/{name}/state",
                               {"action": action, "force": True}, status=202))


async def test_listing_is_never_stale(api) -> None:  # type: ignore[no-untyped-def]
    for name, start in (("ls1", True), ("ls2", False)):
        body = {"name": name, "source": {"type": "image", "alias": "debian"}, "start": start}
        await wait(api, await call(api, "POST", "/1.0/instances", body, status=202))
    seen = await listing(api)
    assert (seen["ls1"]["status"], seen["ls2"]["status"]) == ("Running", "Stopped")
    assert (seen["ls1"]["status_code"], seen["ls2"]["status_code"]) == (103, 102)

    await wait(api, await call(api, "PATCH", "/1.0/instances/ls1",
                               {"config": {"user.color": "red"}}, status=202))
    seen = await listing(api)
    assert seen["ls1"]["config"]["user.color"] == "red"
    assert seen["ls1"]["expanded_config"]["user.color"] == "red"
    assert "user.color" not in seen["ls2"]["config"]

    await call(api, "PATCH", "/1.0/profiles/default", {"config": {"user.shared": "1"}})
    seen = await listing(api)
    assert all(i["expanded_config"]["user.shared"] == "1" for i in seen.values())

    for action, ls1, ls2 in (("freeze", "Frozen", "Stopped"), ("unfreeze", "Running", "Stopped"),
                             ("stop", "Stopped", "Stopped")):
        await state(api, "ls1", action)
        seen = await listing(api)
        assert (seen["ls1"]["status"], seen["ls2"]["status"]) == (ls1, ls2), action
    await state(api, "ls2", "start")
    seen = await listing(api)
    assert seen["ls2"]["status"] == "Running" and seen["ls2"]["last_used_at"] != \
        "1970-01-01T00:00:00Z"
    running = (await call(api, "GET", "/1.0/instances?filter=status eq running"))["metadata"]
    assert running == ["/1.0/instances/ls2"]

    for snap in ("first", "second"):  # recursion=2 reads every snapshot in one query
        await wait(api, await call(api, "POST", "/1.0/instances/ls2/snapshots",
                                   {"name": snap}, status=202))
    full = {i["name"]: i for i in
            (await call(api, "GET", "/1.0/instances?recursion=2"))["metadata"]}
    assert [s["name"] for s in full["ls2"]["snapshots"]] == ["first", "second"]
    assert full["ls1"]["snapshots"] == [] and full["ls1"]["state"]["status"] == "Stopped"
    assert full["ls2"]["state"]["pid"] > 0 and full["ls2"]["expanded_config"] == \
        seen["ls2"]["expanded_config"]

    await wait(api, await call(api, "DELETE", "/1.0/instances/ls1", status=202))
    assert list(await listing(api)) == ["ls2"]
    assert (await call(api, "GET", "/1.0/instances"))["metadata"] == ["/1.0/instances/ls2"]


async def test_listing_shows_a_clean_stop_in_progress(api) -> None:  # type: ignore[no-untyped-def]
    """systemd takes a moment to shut down: meanwhile the listing says Stopping (status
    code 107), as recursion=2 and LXD do, not Running."""
    body = {"name": "ls3", "source": {"type": "image", "alias": "debian"}, "start": True}
    await wait(api, await call(api, "POST", "/1.0/instances", body, status=202))
    # systemd ignores the stop signal until it is up: stop a booted one.
    await asyncio.to_thread(wait_running, api.server.app[MANAGER], "ls3")
    op = await call(api, "PUT", "/1.0/instances/ls3/state",
                    {"action": "stop", "timeout": 30}, status=202)
    seen = set()
    while "Stopped" not in seen:  # one GET at a time: the status moves between two
        inst = (await call(api, "GET", "/1.0/instances?recursion=1"))["metadata"][0]
        seen.add(inst["status"])
        if inst["status"] == "Stopping":
            assert inst["status_code"] == 107
        await asyncio.sleep(0.005)
    await wait(api, op)
    assert "Stopping" in seen, seen
