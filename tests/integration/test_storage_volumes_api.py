"""/1.0/storage-pools/POOL/volumes/custom in-process, on the default (overlay) pool: a volume
created, used by an instance and a profile (used_by, delete refused), snapshotted, restored,
renamed (its users follow), copied with and without snapshots, updated and deleted, each with
LXD's lifecycle event; bad requests get one-line 4xx/501 with nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lxmgr.daemon.keys import EVENTS, MANAGER
from tests.integration.conftest import call, wait

pytestmark = pytest.mark.kernel

VOLS = "/1.0/storage-pools/default/volumes/custom"
VOLUME_KEYS = {"name", "type", "description", "config", "used_by", "location", "content_type",
               "project", "created_at"}


def events(sub: Any) -> list[tuple[str, str]]:
    """(action, source) of the lifecycle events queued so far."""
    out = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        if event["type"] == "lifecycle":
            out.append((event["metadata"]["action"], event["metadata"]["source"]))
    return out


async def test_volume_lifecycle(api) -> None:  # type: ignore[no-untyped-def]
    manager = api.server.app[MANAGER]
    sub = api.server.app[EVENTS].subscribe()
    await call(api, "POST", VOLS, {"name": "data", "type": "custom", "description": "shared",
                                   "config": {"user.owner": "me"}})
    assert (await call(api, "GET", VOLS))["metadata"] == [f"{VOLS}/data"]
    [vol] = (await call(api, "GET", f"{VOLS}?recursion=1"))["metadata"]
    assert set(vol) == VOLUME_KEYS and vol["used_by"] == [] and vol["type"] == "custom"
    assert vol["config"] == {"user.owner": "me"} and vol["content_type"] == "filesystem"
    assert vol["location"] == "none" and vol["created_at"].endswith("Z")
    host = Path(manager.volumes.host_path("default", "data"))
    assert host.stat().st_uid == 0 and host.stat().st_mode & 0o7777 == 0o711
    (host / "f").write_text("one\n")

    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "c1", "source": {"type": "image", "alias": "debian"},
        "devices": {"data": {"type": "disk", "pool": "default", "source": "data",
                             "path": "/srv/data"}}}, status=202))
    await call(api, "POST", "/1.0/profiles", {"name": "shared", "devices": {
        "d": {"type": "disk", "pool": "default", "source": "data", "path": "/d"}}}, status=201)
    vol = (await call(api, "GET", f"{VOLS}/data"))["metadata"]
    assert vol["used_by"] == ["/1.0/instances/c1", "/1.0/profiles/shared"]
    busy = await call(api, "DELETE", f"{VOLS}/data", status=400)
    assert busy["error"] == "The storage volume is still in use"
    pool = (await call(api, "GET", "/1.0/storage-pools/default"))["metadata"]
    assert f"{VOLS}/data" in pool["used_by"]

    snap = await wait(api, await call(api, "POST", f"{VOLS}/data/snapshots", {}, status=202))
    assert snap["metadata"] == {"name": "snap0"}
    assert (await call(api, "GET", f"{VOLS}/data/snapshots"))["metadata"] == [
        f"{VOLS}/data/snapshots/snap0"]
    shown = (await call(api, "GET", f"{VOLS}/data/snapshots/snap0"))["metadata"]
    assert shown["name"] == "snap0" and shown["description"] == "shared"
    assert shown["config"] == {"user.owner": "me"} and shown["content_type"] == "filesystem"
    listed = (await call(api, "GET", f"{VOLS}?recursion=1"))["metadata"]
    assert [v["name"] for v in listed] == ["data", "data/snap0"]
    (host / "f").write_text("two\n")
    await call(api, "PUT", f"{VOLS}/data", {"restore": "snap0"})  # c1 is stopped
    assert (host / "f").read_text() == "one\n"

    renamed = await api.post(f"{VOLS}/data", json={"name": "data2"})
    assert renamed.status == 201 and renamed.headers["Location"] == f"{VOLS}/data2"
    inst = (await call(api, "GET", "/1.0/instances/c1"))["metadata"]
    assert inst["devices"]["data"]["source"] == "data2"
    profile = (await call(api, "GET", "/1.0/profiles/shared"))["metadata"]
    assert profile["devices"]["d"]["source"] == "data2"
    assert (await call(api, "GET", f"{VOLS}/data2/snapshots"))["metadata"] == [
        f"{VOLS}/data2/snapshots/snap0"]
    host = Path(manager.volumes.host_path("default", "data2"))

    await wait(api, await call(api, "POST", VOLS, {"name": "copy", "source": {
        "type": "copy", "pool": "default", "name": "data2"}}, status=202))
    copy = (await call(api, "GET", f"{VOLS}/copy"))["metadata"]
    assert copy["description"] == "shared" and copy["config"] == {"user.owner": "me"}
    assert (await call(api, "GET", f"{VOLS}/copy/snapshots"))["metadata"] == [
        f"{VOLS}/copy/snapshots/snap0"]
    await wait(api, await call(api, "POST", VOLS, {"name": "old", "config": {}, "source": {
        "type": "copy", "pool": "default", "name": "data2/snap0"}}, status=202))
    assert (await call(api, "GET", f"{VOLS}/old"))["metadata"]["config"] == {}
    assert (await call(api, "GET", f"{VOLS}/old/snapshots"))["metadata"] == []
    old = Path(manager.volumes.host_path("default", "old"))
    assert (old / "f").read_text() == "one\n"

    await call(api, "PATCH", f"{VOLS}/copy", {"config": {"user.b": "2"}})
    assert (await call(api, "GET", f"{VOLS}/copy"))["metadata"]["config"] == {
        "user.owner": "me", "user.b": "2"}
    await call(api, "PUT", f"{VOLS}/copy", {"config": {}, "description": "bare"})
    copy = (await call(api, "GET", f"{VOLS}/copy"))["metadata"]
    assert copy["config"] == {} and copy["description"] == "bare"
    await wait(api, await call(api, "POST", f"{VOLS}/copy/snapshots/snap0", {"name": "s1"},
                               status=202))
    await wait(api, await call(api, "DELETE", f"{VOLS}/copy/snapshots/s1", status=202))
    assert (await call(api, "GET", f"{VOLS}/copy/snapshots"))["metadata"] == []

    await call(api, "DELETE", "/1.0/profiles/shared")
    inst["devices"] = {}
    await wait(api, await call(api, "PUT", "/1.0/instances/c1", {
        k: inst[k] for k in ("config", "devices", "profiles", "description")}, status=202))
    for name in ("data2", "copy", "old"):
        await call(api, "DELETE", f"{VOLS}/{name}")
    assert (await call(api, "GET", VOLS))["metadata"] == []
    assert not host.exists() and not old.exists()
    seen = events(sub)
    for action, source in [
            ("storage-volume-created", "/data"), ("storage-volume-snapshot-created",
                                                  "/data/snapshots/snap0"),
            ("storage-volume-restored", "/data"), ("storage-volume-renamed", "/data2"),
            ("storage-volume-created", "/copy"), ("storage-volume-updated", "/copy"),
            ("storage-volume-snapshot-renamed", "/copy/snapshots/s1"),
            ("storage-volume-snapshot-deleted", "/copy/snapshots/s1"),
            ("storage-volume-deleted", "/data2")]:
        assert (action, VOLS + source) in seen, (action, source, seen)


async def test_volume_disk_refusals_and_pool_delete(api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await call(api, "POST", "/1.0/storage-pools", {"name": "p1", "driver": "dir",
                                                   "config": {"source": str(tmp_path / "p")}},
               status=201)
    await call(api, "POST", "/1.0/storage-pools/p1/volumes", {"name": "v", "type": "custom"})
    for device, message in [
            ({"pool": "nope", "source": "v"}, "storage pool 'nope' not found"),
            ({"pool": "p1", "source": "w"}, "storage volume 'w' not found in pool 'p1'")]:
        bad = await call(api, "POST", "/1.0/instances", {
            "name": "c2", "source": {"type": "image", "alias": "debian"},
            "devices": {"v": {"type": "disk", "path": "/v", **device}}}, status=400)
        assert bad["error"] == f"Invalid device 'v': {message}", bad
    busy = await call(api, "DELETE", "/1.0/storage-pools/p1", status=400)
    assert busy["error"] == "Storage pool 'p1' holds storage volume v"
    await call(api, "DELETE", "/1.0/storage-pools/p1/volumes/custom/v")
    await call(api, "DELETE", "/1.0/storage-pools/p1")


async def test_move_to_another_pool(api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manager = api.server.app[MANAGER]
    await call(api, "POST", "/1.0/storage-pools", {"name": "p1", "driver": "dir",
                                                   "config": {"source": str(tmp_path / "p")}},
               status=201)
    await call(api, "POST", VOLS, {"name": "v", "description": "mine"})
    Path(manager.volumes.host_path("default", "v"), "f").write_text("kept\n")
    await wait(api, await call(api, "POST", f"{VOLS}/v/snapshots", {"name": "s0"}, status=202))
    await call(api, "POST", "/1.0/profiles", {"name": "uses", "devices": {
        "d": {"type": "disk", "pool": "default", "source": "v", "path": "/d"}}}, status=201)
    await wait(api, await call(api, "POST", f"{VOLS}/v", {"name": "m", "pool": "p1"},
                               status=202))
    await call(api, "GET", f"{VOLS}/v", status=404)
    moved = "/1.0/storage-pools/p1/volumes/custom/m"
    vol = (await call(api, "GET", moved))["metadata"]
    assert vol["description"] == "mine" and vol["used_by"] == ["/1.0/profiles/uses"]
    assert (await call(api, "GET", f"{moved}/snapshots"))["metadata"] == [
        f"{moved}/snapshots/s0"]
    assert Path(manager.volumes.host_path("p1", "m"), "f").read_text() == "kept\n"
    profile = (await call(api, "GET", "/1.0/profiles/uses"))["metadata"]
    assert profile["devices"]["d"] == {"type": "disk", "pool": "p1", "source": "m",
                                       "path": "/d"}
    await call(api, "DELETE", "/1.0/profiles/uses")
    await call(api, "DELETE", moved)
    await call(api, "DELETE", "/1.0/storage-pools/p1")


@pytest.mark.parametrize("method,path,body,status,message", [
    ("POST", "/1.0/storage-pools/default/volumes", {"name": "x", "type": "container"}, 400,
     'Currently not allowed to create storage volumes of type "container"'),
    ("POST", "/1.0/storage-pools/default/volumes", {"name": "x"}, 400, 'type ""'),
    ("POST", VOLS, {"name": "x", "content_type": "block"}, 501, "content type 'block'"),
    ("POST", VOLS, {"name": "../x"}, 400, "Invalid volume name '../x'"),
    ("POST", VOLS, {"name": "x", "config": {"colour": "red"}}, 400,
     "Invalid volume config key 'colour'"),
    ("POST", VOLS, {"name": "x", "config": {"size": "1GiB"}}, 501,
     "Storage pool 'default' can't limit a volume's size"),
    ("POST", VOLS, {"name": "x", "source": {"type": "migration"}}, 501, "Migrating"),
    ("POST", VOLS, {"name": "x", "source": {"type": "copy", "name": "nope"}}, 404,
     "Storage volume 'nope' not found in pool 'default'"),
    ("POST", "/1.0/storage-pools/nope/volumes/custom", {"name": "x"}, 404,
     "Storage pool 'nope' not found"),
    ("GET", f"{VOLS}/nope", None, 404, "Storage volume 'nope' not found in pool 'default'"),
    ("DELETE", f"{VOLS}/nope", None, 404, "nope"),
    ("POST", f"{VOLS}/nope/snapshots", {}, 404, "nope"),
])
async def test_bad_volume_requests(api, method, path, body, status, message) -> None:  # type: ignore[no-untyped-def]
    error = await call(api, method, path, body, status=status)
    assert message in error["error"], error
    assert (await call(api, "GET", VOLS))["metadata"] == []


async def test_bad_requests_on_a_volume(api) -> None:  # type: ignore[no-untyped-def]
    await call(api, "POST", VOLS, {"name": "v"})
    dup = await call(api, "POST", VOLS, {"name": "v"}, status=409)
    assert dup["error"] == "Storage volume 'v' already exists in pool 'default'"
    bad = await call(api, "POST", f"{VOLS}/v/snapshots", {"expires_at": "2030-01-01T00:00:00Z"},
                     status=501)
    assert "Expiry" in bad["error"]
    bad = await call(api, "POST", f"{VOLS}/v", {"name": "w", "pool": "other"}, status=404)
    assert bad["error"] == "Storage pool 'other' not found"
    bad = await call(api, "PUT", f"{VOLS}/v", {"restore": "nope"}, status=404)
    assert bad["error"] == "Storage volume snapshot 'v/nope' not found in pool 'default'"
    await call(api, "DELETE", f"{VOLS}/v")
