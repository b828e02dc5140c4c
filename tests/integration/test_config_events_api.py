"""The lifecycle events of profile, network and network forward changes on /1.0/events, as
LXD's (lxd/lifecycle/profile.go, network.go, network_forward.go): each change announced
exactly once, with its source and project, by the service that made it; refused changes
announce nothing. The network is a test bridge of our own without NAT; the forward listens
on TEST-NET-1 (RFC 5737); no traffic is sent."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.integration.conftest import call

LISTEN = "192.0.2.78"
END = "zz-end"  # a profile whose deletion marks the end of what the test did


async def _seen(events: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(action, source, project, context) of each profile-* and network-* event up to
    the deletion of END."""
    seen = []
    while True:
        event = await asyncio.wait_for(events.receive_json(), 10)
        meta = event["metadata"]
        if not meta["action"].startswith(("profile-", "network-")):
            continue
        assert event["project"] == meta["project"], event
        if meta["action"] == "profile-deleted" and meta["name"] == END:
            return seen
        seen.append((meta["action"], meta["source"], meta["project"], meta["context"]))


async def test_profile_events_once_with_source_and_project(api) -> None:  # type: ignore[no-untyped-def]
    project = f"evp{uuid.uuid4().hex[:6]}"
    events = await api.ws_connect("/1.0/events?type=lifecycle&all-projects=true")
    await call(api, "POST", "/1.0/projects", {"name": project, "config": {
        "features.profiles": "true", "features.images": "false"}}, status=201)
    try:
        await call(api, "POST", "/1.0/profiles", {"name": "evt"}, status=201)
        await call(api, "POST", "/1.0/profiles", {"name": "evt"}, status=409)  # refused
        await call(api, "PUT", "/1.0/profiles/evt", {"config": {"limits.processes": "50"}})
        await call(api, "PATCH", "/1.0/profiles/evt", {"description": "x"})
        await call(api, "PATCH", "/1.0/profiles/evt", {"config": {"x.y": "1"}}, status=400)
        await call(api, "POST", "/1.0/profiles/evt", {"name": "evt2"}, status=201)
        await call(api, "DELETE", "/1.0/profiles/evt2")
        await call(api, "DELETE", "/1.0/profiles/default", status=403)
        q = f"?project={project}"
        await call(api, "POST", f"/1.0/profiles{q}", {"name": "own"}, status=201)
        await call(api, "PATCH", f"/1.0/profiles/own{q}", {"config": {"limits.cpu": "1"}})
        await call(api, "POST", f"/1.0/profiles/own{q}", {"name": "mine"}, status=201)
        await call(api, "DELETE", f"/1.0/profiles/mine{q}")
        await call(api, "POST", "/1.0/profiles", {"name": END}, status=201)
        await call(api, "DELETE", f"/1.0/profiles/{END}")
        seen = [s for s in await _seen(events) if s[1] != f"/1.0/profiles/{END}"]
    finally:
        await events.close()
        await call(api, "DELETE", f"/1.0/projects/{project}")
    assert seen == [
        ("profile-created", "/1.0/profiles/evt", "default", {}),
        ("profile-updated", "/1.0/profiles/evt", "default", {}),
        ("profile-updated", "/1.0/profiles/evt", "default", {}),
        ("profile-renamed", "/1.0/profiles/evt2", "default", {"old_name": "evt"}),
        ("profile-deleted", "/1.0/profiles/evt2", "default", {}),
        ("profile-created", f"/1.0/profiles/own{q}", project, {}),
        ("profile-updated", f"/1.0/profiles/own{q}", project, {}),
        ("profile-renamed", f"/1.0/profiles/mine{q}", project, {"old_name": "own"}),
        ("profile-deleted", f"/1.0/profiles/mine{q}", project, {}),
    ]


async def test_network_and_forward_events_once(api) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:7]
    name, new = f"lxe{tag}a", f"lxe{tag}b"
    events = await api.ws_connect("/1.0/events?type=lifecycle")
    await call(api, "POST", "/1.0/networks",
               {"name": name, "config": {"ipv4.address": "auto", "ipv4.nat": "false"}},
               status=201)
    try:
        await call(api, "POST", "/1.0/networks", {"name": name}, status=409)  # refused
        config = (await call(api, "GET", f"/1.0/networks/{name}"))["metadata"]["config"]
        prefix = config["ipv4.address"].split("/")[0].rsplit(".", 1)[0]
        await call(api, "PUT", f"/1.0/networks/{name}", {"config": config})
        await call(api, "PATCH", f"/1.0/networks/{name}", {"description": "evt"})
        base = f"/1.0/networks/{name}/forwards"
        await call(api, "POST", base, {"listen_address": LISTEN, "config": {
            "target_address": f"{prefix}.50"}}, status=201)
        await call(api, "POST", base, {"listen_address": LISTEN}, status=409)  # refused
        await call(api, "PATCH", f"{base}/{LISTEN}", {"description": "x"})
        await call(api, "PUT", f"{base}/{LISTEN}", {"config": {}})
        await call(api, "DELETE", f"{base}/{LISTEN}")
        await call(api, "DELETE", f"{base}/{LISTEN}", status=404)  # refused
        await call(api, "POST", f"/1.0/networks/{name}", {"name": new}, status=201)
        await call(api, "DELETE", f"/1.0/networks/{new}")
        await call(api, "POST", "/1.0/profiles", {"name": END}, status=201)
        await call(api, "DELETE", f"/1.0/profiles/{END}")
        seen = [s for s in await _seen(events) if s[1] != f"/1.0/profiles/{END}"]
    finally:
        await events.close()
        for each in (name, new):
            resp = await api.delete(f"/1.0/networks/{each}")
            assert resp.status in (200, 404)
    forward = f"/1.0/networks/{name}/forwards/{LISTEN}"
    assert seen == [
        ("network-created", f"/1.0/networks/{name}", "default", {}),
        ("network-updated", f"/1.0/networks/{name}", "default", {}),
        ("network-updated", f"/1.0/networks/{name}", "default", {}),
        ("network-forward-created", forward, "default", {}),
        ("network-forward-updated", forward, "default", {}),
        ("network-forward-updated", forward, "default", {}),
        ("network-forward-deleted", forward, "default", {}),
        ("network-renamed", f"/1.0/networks/{new}", "default", {"old_name": name}),
        ("network-deleted", f"/1.0/networks/{new}", "default", {}),
    ]
