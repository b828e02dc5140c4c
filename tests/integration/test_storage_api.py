"""/1.0/storage-pools in-process: a dir pool created, listed, used, refused while used,
deleted; bad input gets 4xx with nothing changed."""

from __future__ import annotations

import pytest

from tests.integration.conftest import call, wait

pytestmark = pytest.mark.kernel


async def test_dir_pool_lifecycle(api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = str(tmp_path / "p1")
    await call(api, "POST", "/1.0/storage-pools",
               {"name": "p1", "driver": "dir", "config": {"source": source}}, status=201)
    names = (await call(api, "GET", "/1.0/storage-pools"))["metadata"]
    assert names == ["/1.0/storage-pools/default", "/1.0/storage-pools/p1"]
    pool = (await call(api, "GET", "/1.0/storage-pools/p1"))["metadata"]
    assert pool["driver"] == "dir" and pool["config"]["source"] == source
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "v1", "source": {"type": "image", "alias": "debian"},
        "devices": {"root": {"type": "disk", "path": "/", "pool": "p1"}}}, status=202))
    pool = (await call(api, "GET", "/1.0/storage-pools/p1"))["metadata"]
    assert pool["used_by"] == ["/1.0/instances/v1"]
    busy = await call(api, "DELETE", "/1.0/storage-pools/p1", status=400)
    assert "used by" in busy["error"]
    space = (await call(api, "GET", "/1.0/storage-pools/p1/resources"))["metadata"]["space"]
    assert 0 < space["used"] <= space["total"]
    await call(api, "PATCH", "/1.0/storage-pools/p1", {"description": "scratch"})
    await wait(api, await call(api, "DELETE", "/1.0/instances/v1", status=202))
    await call(api, "DELETE", "/1.0/storage-pools/p1")
    assert (await call(api, "GET", "/1.0/storage-pools"))["metadata"] == [
        "/1.0/storage-pools/default"]


@pytest.mark.parametrize("method,path,body,status,message", [
    ("POST", "/1.0/storage-pools", {"name": "x", "driver": "zfs"}, 400, "zfs"),
    ("POST", "/1.0/storage-pools", {"name": "../x", "driver": "dir"}, 400, "pool name"),
    ("POST", "/1.0/storage-pools", {"name": "x", "driver": "dir", "config": {"size": "1GiB"}},
     400, "size"),
    ("POST", "/1.0/storage-pools", {"name": "default", "driver": "dir"}, 409, "exists"),
    ("POST", "/1.0/storage-pools", {"driver": "dir"}, 400, "name"),
    ("GET", "/1.0/storage-pools/nope", None, 404, "nope"),
    ("DELETE", "/1.0/storage-pools/default", None, 400, "default"),
    ("PATCH", "/1.0/storage-pools/default", {"config": {"source": "/x"}}, 400, "config"),
])
async def test_bad_pool_requests(api, method, path, body, status, message) -> None:  # type: ignore[no-untyped-def]
    error = await call(api, method, path, body, status=status)
    assert message in error["error"], error
    assert (await call(api, "GET", "/1.0/storage-pools"))["metadata"] == [
        "/1.0/storage-pools/default"]


async def test_server_config(api) -> None:  # type: ignore[no-untyped-def]
    await call(api, "PATCH", "/1.0", {"config": {"images.auto_update_interval": "12"}})
    info = (await call(api, "GET", "/1.0"))["metadata"]
    assert info["config"] == {"images.auto_update_interval": "12"}
    bad = await call(api, "PATCH", "/1.0", {"config": {"core.nonsense": "1"}}, status=400)
    assert "core.nonsense" in bad["error"]
    await call(api, "PUT", "/1.0", {"config": {}})
    assert (await call(api, "GET", "/1.0"))["metadata"]["config"] == {}
