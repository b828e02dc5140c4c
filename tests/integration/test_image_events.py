"""Image lifecycle events on /1.0/events (LXD 5.0's image-* and image-alias-*): each change
made through the API, by an upload, a publish, a pull from an image server or a refresh,
emits its event exactly once, from the engine, with LXD's source, context and project."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from lxmgr.daemon.keys import MANAGER
from lxmgr.instances import image_ops
from tests.integration.conftest import call, wait
from tests.integration.test_images_api import tiny_image
from tests.simplestreams_server import SimpleStreamsServer, build_tree

pytestmark = pytest.mark.kernel  # a real Manager (root)

Seen = list[tuple[str, str, dict[str, Any]]]


async def image_events(events: Any, last: str, times: int = 1) -> Seen:
    """The image lifecycle events up to and including the `times`th whose action is `last`,
    then a short quiet wait proving no duplicate of any follows."""
    seen: Seen = []
    while sum(action == last for action, _, _ in seen) < times:
        meta = (await asyncio.wait_for(events.receive_json(), 30))["metadata"]
        if meta["action"].startswith("image-"):
            seen.append((meta["action"], meta["source"], meta["context"]))
    try:
        extra = (await asyncio.wait_for(events.receive_json(), 0.5))["metadata"]
    except TimeoutError:
        return seen
    assert not extra["action"].startswith("image-"), extra
    return seen


async def upload(api: Any, aliases: str, project: str = "") -> str:
    query = f"?project={project}" if project else ""
    resp = await api.post(f"/1.0/images{query}", data=tiny_image(), headers={
        "Content-Type": "application/octet-stream", "X-LXD-aliases": aliases})
    assert resp.status == 202
    return str((await wait(api, await resp.json()))["metadata"]["fingerprint"])


async def test_image_and_alias_events(api) -> None:  # type: ignore[no-untyped-def]
    events = await api.ws_connect("/1.0/events?type=lifecycle")
    fp = await upload(api, "tiny")
    await upload(api, "tiny")  # the same image again: no change, no event
    await call(api, "PATCH", f"/1.0/images/{fp}", {"properties": {"team": "a"}})
    await call(api, "PUT", f"/1.0/images/{fp}", {"properties": {"os": "tiny"}, "public": True})
    await call(api, "POST", "/1.0/images/aliases", {"name": "extra", "target": fp},
               status=201)
    await call(api, "POST", "/1.0/images/aliases", {"name": "extra", "target": fp},
               status=409)  # taken: no event
    refused = await call(api, "POST", "/1.0/images/aliases", {
        "name": "described", "target": fp, "description": "d"}, status=501)  # not kept
    assert refused["error"] == "Image alias descriptions are not supported"
    resp = await api.post("/1.0/images/aliases/extra", json={"name": "x/two"})
    assert resp.status == 201 and resp.headers["Location"] == "/1.0/images/aliases/x%2Ftwo"
    await call(api, "PATCH", "/1.0/images/aliases/x/two", {"target": fp[:12]})
    await call(api, "PUT", "/1.0/images/aliases/x/two", {"target": fp, "description": "d"},
               status=501)
    resp = await api.get(f"/1.0/images/{fp}/export")
    assert resp.status == 200 and len(await resp.read()) > 0
    secret = await call(api, "POST", f"/1.0/images/{fp}/secret", status=202)
    assert len(secret["metadata"]["metadata"]["secret"]) == 64
    await call(api, "DELETE", "/1.0/images/aliases/x/two")
    await call(api, "GET", "/1.0/images")  # a read: no event (nor any write)

    # publish: an instance of the tiny image becomes an image of its own
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "ev1", "source": {"type": "image", "alias": "tiny"}}, status=202))
    op = await wait(api, await call(api, "POST", "/1.0/images", {
        "source": {"type": "instance", "name": "ev1"}, "aliases": [{"name": "pub"}]},
        status=202))
    published = op["metadata"]["fingerprint"]
    await wait(api, await call(api, "DELETE", "/1.0/instances/ev1", status=202))
    await wait(api, await call(api, "DELETE", f"/1.0/images/{published}", status=202))
    await wait(api, await call(api, "DELETE", f"/1.0/images/{fp}", status=202))

    url, alias = f"/1.0/images/{fp}", "/1.0/images/aliases/"
    assert await image_events(events, "image-deleted", times=2) == [
        ("image-created", url, {"type": "container"}),
        ("image-updated", url, {}),
        ("image-updated", url, {}),
        ("image-alias-created", alias + "extra", {"target": fp}),
        ("image-alias-renamed", alias + "x%2Ftwo", {"old_name": "extra"}),
        ("image-alias-updated", alias + "x%2Ftwo", {"target": fp}),
        ("image-retrieved", url, {}),
        ("image-secret-created", url, {}),
        ("image-alias-deleted", alias + "x%2Ftwo", {}),
        ("image-created", f"/1.0/images/{published}", {"type": "container"}),
        ("image-deleted", f"/1.0/images/{published}", {}),
        ("image-deleted", url, {})]
    await events.close()


async def test_image_events_carry_the_project(api) -> None:  # type: ignore[no-untyped-def]
    await call(api, "POST", "/1.0/projects", {"name": "evp", "config": {}}, status=201)
    events = await api.ws_connect("/1.0/events?type=lifecycle&project=evp")
    fp = await upload(api, "tiny", project="evp")
    await call(api, "POST", "/1.0/images/aliases?project=evp", {"name": "e", "target": fp},
               status=201)
    await wait(api, await call(api, "DELETE", f"/1.0/images/{fp}?project=evp", status=202))
    seen = await image_events(events, "image-deleted")
    assert seen == [
        ("image-created", f"/1.0/images/{fp}?project=evp", {"type": "container"}),
        ("image-alias-created", "/1.0/images/aliases/e?project=evp", {"target": fp}),
        ("image-deleted", f"/1.0/images/{fp}?project=evp", {})]
    await events.close()
    await call(api, "DELETE", "/1.0/projects/evp")


def small_rootfs(path: Path, marker: str) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "os-release").write_text(f"ID=debian\nMARK={marker}\n")
    return path


async def test_pull_and_refresh_events(api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A pull (POST /1.0/images from a server) is image-created; a refresh that finds a
    newer build is image-created (the new one) then image-refreshed (the old one), the
    replaced build going silently (LXD's autoUpdateImage), whether asked by the API or
    done by the hourly auto-update."""
    manager = api.app[MANAGER]
    tree = tmp_path / "tree"
    build_tree(tree, small_rootfs(tmp_path / "v1", "one"), serial="20261101_00:00",
               formats=("root.tar.xz",))
    async with SimpleStreamsServer(tree) as server:
        events = await api.ws_connect("/1.0/events?type=lifecycle")
        op = await wait(api, await call(api, "POST", "/1.0/images", {
            "source": {"type": "image", "server": server.url, "protocol": "simplestreams",
                       "alias": "debian/12"}, "aliases": [{"name": "stable"}]},
            status=202))
        first = op["metadata"]["fingerprint"]
        build_tree(tree, small_rootfs(tmp_path / "v2", "two"), serial="20261102_00:00",
                   formats=("root.tar.xz",))
        op = await wait(api, await call(api, "POST", f"/1.0/images/{first}/refresh",
                                        status=202))
        second = op["metadata"]["fingerprint"]
        assert second != first
        assert await image_events(events, "image-refreshed") == [
            ("image-created", f"/1.0/images/{first}", {"type": "container"}),
            ("image-created", f"/1.0/images/{second}", {"type": "container"}),
            ("image-refreshed", f"/1.0/images/{first}", {})]

        await call(api, "PATCH", f"/1.0/images/{second}", {"auto_update": True})
        build_tree(tree, small_rootfs(tmp_path / "v3", "three"), serial="20261103_00:00",
                   formats=("root.tar.xz",))
        done = await image_ops.image_duties(manager, now=time.time() + 7 * 3600)
        third = manager.images.get("stable").fingerprint
        assert done == [f"refreshed {second[:12]} -> {third[:12]}"]
        assert await image_events(events, "image-refreshed") == [
            ("image-updated", f"/1.0/images/{second}", {}),
            ("image-created", f"/1.0/images/{third}", {"type": "container"}),
            ("image-refreshed", f"/1.0/images/{second}", {})]
        await events.close()
