"""/1.0/projects (create, show, update, rename, delete, state) and the `project=` parameter
everywhere (what each project holds: tests/integration/test_project_scoping.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.integration.conftest import call, wait

pytestmark = pytest.mark.kernel

FEATURES = {"features.images": "true", "features.profiles": "true",
            "features.storage.volumes": "true", "features.networks": "true"}


async def test_list_and_show(api) -> None:  # type: ignore[no-untyped-def]
    assert (await call(api, "GET", "/1.0/projects"))["metadata"] == ["/1.0/projects/default"]
    listed = (await call(api, "GET", "/1.0/projects?recursion=1"))["metadata"]
    shown = (await call(api, "GET", "/1.0/projects/default?project=default"))["metadata"]
    assert listed == [shown]
    assert shown["name"] == "default" and shown["description"] == "Default LXD project"
    assert shown["config"] == FEATURES
    assert "/1.0/profiles/default" in shown["used_by"]
    assert "/1.0/storage-pools/default" in shown["used_by"]
    assert any(url.startswith("/1.0/images/") for url in shown["used_by"])


async def test_used_by_follows_objects(api) -> None:  # type: ignore[no-untyped-def]
    name = f"p{uuid.uuid4().hex[:8]}"
    body = {"name": name, "source": {"type": "image", "alias": "debian"}}
    await wait(api, await call(api, "POST", "/1.0/instances?project=default", body,
                               status=202))
    await call(api, "POST", "/1.0/profiles", {"name": f"{name}-prof"}, status=201)
    used = (await call(api, "GET", "/1.0/projects/default"))["metadata"]["used_by"]
    assert f"/1.0/instances/{name}" in used and f"/1.0/profiles/{name}-prof" in used
    state = (await call(api, "GET", "/1.0/projects/default/state"))["metadata"]
    assert state["resources"]["instances"] == {"Limit": -1, "Usage": 1}
    assert state["resources"]["containers"]["Usage"] == 1
    await call(api, "DELETE", f"/1.0/profiles/{name}-prof")
    await wait(api, await call(api, "DELETE", f"/1.0/instances/{name}", status=202))
    used = (await call(api, "GET", "/1.0/projects/default"))["metadata"]["used_by"]
    assert f"/1.0/instances/{name}" not in used


async def test_other_projects_are_missing(api) -> None:  # type: ignore[no-untyped-def]
    for path in ("/1.0/projects/web", "/1.0/projects/web/state"):
        error = await call(api, "GET", path, status=404)
        assert error["error"] == "Project 'web' not found"
    for method in ("PUT", "PATCH", "POST", "DELETE"):
        await call(api, method, "/1.0/projects/web", {"name": "x", "config": {}}, status=404)
    assert (await call(api, "GET", "/1.0/projects"))["metadata"] == ["/1.0/projects/default"]


async def test_project_lifecycle(api) -> None:  # type: ignore[no-untyped-def]
    events = await api.ws_connect("/1.0/events?type=lifecycle")
    created = await call(api, "POST", "/1.0/projects",
                         {"name": "web", "description": "Web team",
                          "config": {"features.networks": "true", "user.team": "a"}},
                         status=201)
    assert created["metadata"] == {}
    await call(api, "POST", "/1.0/projects", {"name": "web"}, status=409)
    assert (await call(api, "GET", "/1.0/projects"))["metadata"] == [
        "/1.0/projects/default", "/1.0/projects/web"]
    shown = (await call(api, "GET", "/1.0/projects/web"))["metadata"]
    assert shown == {"name": "web", "description": "Web team",
                     "used_by": ["/1.0/profiles/default?project=web"], "config": {
        "features.images": "true", "features.profiles": "true",
        "features.storage.volumes": "true", "features.networks": "true", "user.team": "a"}}
    state = (await call(api, "GET", "/1.0/projects/web/state"))["metadata"]
    assert state["resources"]["instances"] == {"Limit": -1, "Usage": 0}

    # PATCH merges, PUT replaces; an empty project may change its features.
    await call(api, "PATCH", "/1.0/projects/web", {"config": {"features.images": "false"}})
    shown = (await call(api, "GET", "/1.0/projects/web"))["metadata"]
    assert shown["description"] == "Web team" and shown["config"]["features.images"] == "false"
    assert shown["config"]["user.team"] == "a"
    await call(api, "PUT", "/1.0/projects/web", {"config": {"features.profiles": "false"}})
    shown = (await call(api, "GET", "/1.0/projects/web"))["metadata"]
    assert shown["description"] == "" and shown["config"] == {"features.profiles": "false"}
    assert shown["used_by"] == []  # its own default profile went with the feature

    op = await wait(api, await call(api, "POST", "/1.0/projects/web", {"name": "www"},
                                    status=202))
    assert op["resources"] == {"projects": ["/1.0/projects/web"]}
    await call(api, "GET", "/1.0/projects/web", status=404)
    await call(api, "DELETE", "/1.0/projects/www")
    await call(api, "GET", "/1.0/projects/www", status=404)

    seen = []
    while len(seen) < 5:
        meta = (await asyncio.wait_for(events.receive_json(), 10))["metadata"]
        if meta["source"].startswith("/1.0/projects/"):
            seen.append((meta["action"], meta["source"], meta.get("context", {})))
    await events.close()
    assert [s[:2] for s in seen] == [
        ("project-created", "/1.0/projects/web"), ("project-updated", "/1.0/projects/web"),
        ("project-updated", "/1.0/projects/web"), ("project-renamed", "/1.0/projects/www"),
        ("project-deleted", "/1.0/projects/www")]
    assert seen[3][2]["old_name"] == "web"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"name": "a/b"}, 400, "Project names may not contain slashes"),
    ({"name": ""}, 400, "No name provided"),
    ({"name": "x", "config": {"limits.networks": "1"}}, 501,
     "Project configuration keys not supported yet: limits.networks"),
    ({"name": "x", "config": {"restricted.backups": "block"}}, 501,
     "Project configuration keys not supported yet: restricted.backups"),
    ({"name": "x", "config": {"nosuch": "1"}}, 400, "Invalid project configuration key 'nosuch'"),
])
async def test_create_refused(api, body, status, message) -> None:  # type: ignore[no-untyped-def]
    error = await call(api, "POST", "/1.0/projects", body, status=status)
    assert error["error"] == message
    assert (await call(api, "GET", "/1.0/projects"))["metadata"] == ["/1.0/projects/default"]


async def test_default_project_rules(api) -> None:  # type: ignore[no-untyped-def]
    error = await call(api, "DELETE", "/1.0/projects/default", status=403)
    assert error["error"] == "The 'default' project cannot be deleted"
    error = await call(api, "POST", "/1.0/projects/default", {"name": "x"}, status=403)
    assert error["error"] == "The 'default' project cannot be renamed"
    error = await call(api, "PATCH", "/1.0/projects/default",
                       {"config": {"features.images": "false"}}, status=400)
    assert error["error"] == "You can't change the features of the default project"
    await call(api, "PATCH", "/1.0/projects/default", {"description": "Main"})
    shown = (await call(api, "GET", "/1.0/projects/default"))["metadata"]
    assert shown["description"] == "Main" and shown["config"] == FEATURES
    await call(api, "POST", "/1.0/projects", {"name": "web"}, status=201)
    error = await call(api, "POST", "/1.0/projects/web", {"name": "default"}, status=409)
    assert error["error"] == "A project named 'default' already exists"
    await call(api, "DELETE", "/1.0/projects/web")


@pytest.mark.parametrize("path", [
    "/1.0", "/1.0/instances", "/1.0/instances/nosuch", "/1.0/profiles/default",
    "/1.0/images", "/1.0/networks", "/1.0/storage-pools", "/1.0/operations",
    "/1.0/projects/default",
])
async def test_project_parameter(api, path: str) -> None:  # type: ignore[no-untyped-def]
    sep = "&" if "?" in path else "?"
    error = await call(api, "GET", f"{path}{sep}project=web", status=404)
    assert error["error"] == "Project 'web' not found" and error["error_code"] == 404
    resp = await api.get(f"{path}{sep}project=default")
    assert resp.status in (200, 404)
    if resp.status == 404:
        assert "Project" not in (await resp.json())["error"]


@pytest.mark.parametrize("path", [
    "/1.0/instances", "/1.0/operations", "/1.0/images", "/1.0/profiles", "/1.0/networks",
])
async def test_all_projects(api, path: str) -> None:  # type: ignore[no-untyped-def]
    plain = (await call(api, "GET", f"{path}?recursion=1"))["metadata"]
    assert (await call(api, "GET", f"{path}?recursion=1&all-projects=true"))["metadata"] \
        == plain


async def test_events_project(api) -> None:  # type: ignore[no-untyped-def]
    await call(api, "GET", "/1.0/events?project=web", status=404)
    ws = await api.ws_connect("/1.0/events?all-projects=true&project=default")
    await ws.close()
