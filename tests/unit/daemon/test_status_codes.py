"""The HTTP status of each error condition clients branch on, against LXD 5.0's (lxd-5.0.2).

Each row: the condition, the LXD 5.0 source that decides it, LXD's status, lxmgr's status
and the request that provokes it on the real daemon app (aiohttp test client, as
tests/integration does) on a private Manager. A row whose condition needs a running or
frozen instance fakes only the instance's state (manager.status/is_running): the route's
check runs for real, no container boots.

LXD answers a refused state change (start a running instance, stop a stopped one, freeze a
frozen one, rename a running one) with 202 and an operation that fails with status_code 400
(the driver's Start/Stop/Freeze/Rename errors, lxd/instance/drivers/driver_lxc.go); lxmgr
refuses it synchronously with that same 400. The one deliberate difference: a duplicate
instance name is a synchronous 409 (LXD: 202, then a failed operation).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lxmgr import errors

# (condition, LXD 5.0 source, LXD status, lxmgr status, state faked, method, path, body)
ROWS: list[tuple[str, str, int, int, str | None, str, str, Any]] = [
    ("delete a running instance", "lxd/instance_delete.go (BadRequest)", 400, 400,
     "Running", "DELETE", "/1.0/instances/c1", None),
    ("start a running instance", "lxd/instance_state.go -> driver_lxc.go Start "
     "(failed operation, 400)", 400, 400, "Running", "PUT", "/1.0/instances/c1/state",
     {"action": "start"}),
    ("stop a stopped instance", "lxd/instance_state.go -> driver_lxc.go Stop "
     "(failed operation, 400)", 400, 400, None, "PUT", "/1.0/instances/c1/state",
     {"action": "stop"}),
    ("freeze a frozen instance", "lxd/instance_state.go -> driver_lxc.go Freeze "
     "(failed operation, 400)", 400, 400, "Frozen", "PUT", "/1.0/instances/c1/state",
     {"action": "freeze"}),
    ("unfreeze a running instance", "lxd/instance_state.go -> driver_lxc.go Unfreeze "
     "(failed operation, 400)", 400, 400, "Running", "PUT", "/1.0/instances/c1/state",
     {"action": "unfreeze"}),
    ("exec in a stopped instance", "lxd/instance_exec.go (BadRequest)", 400, 400, None,
     "POST", "/1.0/instances/c1/exec", {"command": ["true"]}),
    ("console of a stopped instance", "lxd/instance_console.go (BadRequest)", 400, 400,
     None, "POST", "/1.0/instances/c1/console", {}),
    ("rename a running instance", "lxd/instance_post.go -> driver_lxc.go Rename "
     "(failed operation, 400)", 400, 400, "Running", "POST", "/1.0/instances/c1",
     {"name": "c3"}),
    ("rename an instance to a taken name", "lxd/instance_post.go (Conflict)", 409, 409,
     None, "POST", "/1.0/instances/c1", {"name": "c2"}),
    ("create an instance under a taken name (deliberate: LXD answers 202, then a failed "
     "operation)", "lxd/instances_post.go", 202, 409, None, "POST", "/1.0/instances",
     {"name": "c1", "source": {"alias": "tiny"}}),
    ("delete a profile in use", "lxd/profiles.go (5.0.2: an unclassified error, 500; "
     "LXD since: BadRequest)", 500, 400, None, "DELETE", "/1.0/profiles/used", None),
    ("delete the default profile", "lxd/profiles.go (Forbidden)", 403, 403, None,
     "DELETE", "/1.0/profiles/default", None),
    ("rename the default profile", "lxd/profiles.go (Forbidden)", 403, 403, None,
     "POST", "/1.0/profiles/default", {"name": "other"}),
    ("delete a storage pool holding a volume", "lxd/storage_pools.go (BadRequest)", 400,
     400, None, "DELETE", "/1.0/storage-pools/p1", None),
    ("delete a custom volume in use", "lxd/storage_volumes.go (BadRequest)", 400, 400,
     None, "DELETE", "/1.0/storage-pools/p1/volumes/custom/u", None),
    ("delete the default storage pool (LXD: in use by the default profile)",
     "lxd/storage_pools.go (BadRequest)", 400, 400, None, "DELETE",
     "/1.0/storage-pools/default", None),
    ("delete an image an instance uses (LXD has no such check: it deletes)",
     "lxd/images.go", 200, 400, None, "DELETE", "/1.0/images/{tiny}", None),
    ("cancel a finished operation", "lxd/operations.go (BadRequest)", 400, 400, None,
     "DELETE", "/1.0/operations/{done}", None),
    ("missing instance", "lxd/instance_get.go (SmartError of sql.ErrNoRows)", 404, 404,
     None, "GET", "/1.0/instances/nope", None),
    ("missing profile", "lxd/profiles.go (SmartError of sql.ErrNoRows)", 404, 404, None,
     "GET", "/1.0/profiles/nope", None),
    ("missing network", "lxd/networks.go (StatusErrorf NotFound)", 404, 404, None, "GET",
     "/1.0/networks/nope", None),
    ("missing storage pool", "lxd/storage_pools.go (SmartError)", 404, 404, None, "GET",
     "/1.0/storage-pools/nope", None),
    ("missing image", "lxd/images.go (SmartError of sql.ErrNoRows)", 404, 404, None, "GET",
     "/1.0/images/0123456789ab", None),
    ("invalid state action", "lxd/instance_state.go (BadRequest)", 400, 400, None, "PUT",
     "/1.0/instances/c1/state", {"action": "dance"}),
    ("malformed JSON body", "lxd/instances_post.go (BadRequest)", 400, 400, None, "POST",
     "/1.0/instances", b"{"),
    ("invalid instance name", "lxd/instances_post.go (BadRequest)", 400, 400, None, "POST",
     "/1.0/instances", {"name": "a/b", "source": {"alias": "tiny"}}),
    ("unknown project", "lxd/api_project.go, request project (SmartError of a missing "
     "row)", 404, 404, None, "GET", "/1.0/instances?project=nope", None),
    ("create beyond a project's limits.instances (deliberate: LXD 5.0.2's "
     "AllowInstanceCreation error is unclassified, a 500)", "lxd/instances_post.go "
     "(SmartError)", 500, 400, None, "POST", "/1.0/instances?project=full",
     {"name": "x1", "source": {"alias": "tiny"}}),
    ("create a bridge in a project with features.networks", "lxd/networks.go "
     "(BadRequest)", 400, 400, None, "POST", "/1.0/networks?project=netp", {"name": "br7"}),
    ("delete a project holding an instance", "lxd/api_project.go projectDelete "
     "(BadRequest)", 400, 400, None, "DELETE", "/1.0/projects/held", None),
    ("delete the default project", "lxd/api_project.go (Forbidden)", 403, 403, None,
     "DELETE", "/1.0/projects/default", None),
]


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TestClient, Any]]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from lxmgr.daemon.app import create_app
    from tests.integration.conftest import call, wait
    from tests.integration.test_images_api import tiny_image
    from tests.private_state import private_manager

    with private_manager(monkeypatch, "lxsc") as manager:
        client = TestClient(TestServer(create_app(manager, background=False)))
        await client.start_server()
        try:
            resp = await client.post("/1.0/images", data=tiny_image(), headers={
                "Content-Type": "application/octet-stream", "X-LXD-aliases": "tiny"})
            done = await wait(client, await resp.json())
            for name in ("c1", "c2"):
                await wait(client, await call(client, "POST", "/1.0/instances", {
                    "name": name, "source": {"alias": "tiny"}}, status=202))
            await created(client, "/1.0/storage-pools", {"name": "p1", "driver": "dir"})
            for volume in ("v", "u"):
                await created(client, "/1.0/storage-pools/p1/volumes/custom", {"name": volume})
            for project, config in (("full", {"limits.instances": "0"}), ("netp", {
                    "features.networks": "true"}), ("held", {})):
                await call(client, "POST", "/1.0/projects", {"name": project, "config": {
                    "features.images": "false", **config}}, status=201)
            await wait(client, await call(client, "POST", "/1.0/instances?project=held", {
                "name": "h1", "source": {"alias": "tiny"}}, status=202))
            await call(client, "POST", "/1.0/profiles", {"name": "used", "devices": {"data": {
                "type": "disk", "pool": "p1", "source": "u", "path": "/mnt"}}}, status=201)
            await wait(client, await call(client, "PATCH", "/1.0/instances/c2",
                                          {"profiles": ["default", "used"]}, status=202))
            tiny = (await call(client, "GET", "/1.0/images/aliases/tiny"))["metadata"]
            client.subs = {"tiny": tiny["target"], "done": done["id"]}  # type: ignore[attr-defined]
            yield client, manager
        finally:
            await client.close()


async def created(client: TestClient, path: str, body: dict[str, Any]) -> None:
    """A POST that creates, synchronously (200/201) or through an operation (202)."""
    from tests.integration.conftest import wait

    resp = await client.post(path, json=body)
    data = await resp.json()
    assert resp.status in (200, 201, 202), data
    if resp.status == 202:
        await wait(client, data)


@pytest.mark.parametrize(("condition", "source", "lxd", "ours", "state", "method", "path",
                          "body"), ROWS, ids=[row[0][:40] for row in ROWS])
async def test_status_code(api, monkeypatch, condition, source, lxd, ours, state, method,  # type: ignore[no-untyped-def]
                           path, body) -> None:
    client, manager = api
    if state is not None:
        monkeypatch.setattr(manager, "status", lambda name: state if name == "c1"
                            else "Stopped")
        monkeypatch.setattr(manager, "is_running", lambda name: name == "c1")
    path = path.format(**client.subs)
    kwargs: dict[str, Any] = ({"data": body, "headers": {"Content-Type": "application/json"}}
                              if isinstance(body, bytes) else {"json": body})
    resp = await client.request(method, path, **kwargs)
    data = await resp.json()
    assert resp.status == ours, (condition, data)
    assert data["error_code"] == ours and data["type"] == "error"
    assert "\n" not in data["error"] and data["error"][:1].isupper()
    assert lxd == ours or "deliberate" in condition or "LXD has no" in condition \
        or "5.0.2" in source


def test_network_in_use_is_400(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """lxd/networks.go: "The network is currently in use" is a BadRequest (checked before
    the network is touched, so no bridge is needed)."""
    from lxmgr.instances.networks import Networks

    with pytest.raises(errors.InvalidState) as err:
        Networks.delete(object.__new__(Networks), "lxbr9", ["c1"])
    assert err.value.status == 400
    assert str(err.value) == "Network 'lxbr9' is in use by c1"


def test_state_errors_are_still_conflicts_for_internal_callers() -> None:
    assert issubclass(errors.InvalidState, errors.Conflict)
    assert (errors.InvalidState.status, errors.Conflict.status) == (400, 409)


# (object, LXD 5.0 source of its If-Match check, method, path, body): a stale If-Match is a
# 412 from both (response.PreconditionFailed); the ETag its GET answered goes through.
ETAG_ROWS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("instance", "lxd/instance_patch.go", "PATCH", "/1.0/instances/c1",
     {"config": {"user.k": "v"}}),
    ("profile", "lxd/profiles.go", "PATCH", "/1.0/profiles/used", {"description": "d"}),
    ("storage pool", "lxd/storage_pools.go", "PATCH", "/1.0/storage-pools/p1",
     {"description": "d"}),
    ("custom volume", "lxd/storage_volumes.go", "PATCH",
     "/1.0/storage-pools/p1/volumes/custom/v", {"description": "d"}),
]


@pytest.mark.parametrize(("what", "source", "method", "path", "body"), ETAG_ROWS,
                         ids=[row[0] for row in ETAG_ROWS])
async def test_stale_if_match_is_412(api, what, source, method, path, body) -> None:  # type: ignore[no-untyped-def]
    client, _manager = api
    got = await client.get(path)
    tag = got.headers["ETag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 66
    stale = await client.request(method, path, json=body, headers={"If-Match": '"0" '[:3]})
    data = await stale.json()
    assert (stale.status, data["error_code"]) == (412, 412), data
    assert data["error"] == f"ETag doesn't match: {tag.strip(chr(34))} vs 0"
    assert (await client.get(path)).headers["ETag"] == tag  # nothing changed
    fresh = await client.request(method, path, json=body, headers={"If-Match": tag})
    assert fresh.status in (200, 202), await fresh.text()
    if fresh.status == 202:
        from tests.integration.conftest import wait

        await wait(client, await fresh.json())
    assert (await client.get(path)).headers["ETag"] != tag  # the edit changed it
    # No If-Match (or an empty one) is no check, as LXD's util.EtagCheck.
    unchecked = await client.request(method, path, json=body, headers={"If-Match": ""})
    assert unchecked.status in (200, 202)
    if unchecked.status == 202:
        from tests.integration.conftest import wait

        await wait(client, await unchecked.json())


async def test_lists_and_state_have_no_etag(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, manager = api
    assert "ETag" not in (await client.get("/1.0/instances?recursion=1")).headers
    assert "ETag" not in (await client.get("/1.0/profiles")).headers
    before = (await client.get("/1.0/instances/c1")).headers["ETag"]
    monkeypatch.setattr(manager, "status", lambda name: "Running")
    assert (await client.get("/1.0/instances/c1")).headers["ETag"] == before
