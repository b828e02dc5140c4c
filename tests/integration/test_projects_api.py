"""The single `default` project: /1.0/projects and the `project=` parameter everywhere."""

from __future__ import annotations

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
    error = await call(api, "POST", "/1.0/projects", {"name": "web", "config": {}},
                       status=501)
    assert error["error"] == "Only the default project is supported"
    assert (await call(api, "GET", "/1.0/projects"))["metadata"] == ["/1.0/projects/default"]


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
