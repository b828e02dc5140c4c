"""LXD's snapshot, restore, copy and rename calls, in-process against real containers."""

from __future__ import annotations

import pytest

from lxmgr.daemon.keys import MANAGER
from tests.integration.conftest import call, wait
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


async def op(api, method: str, path: str, body=None, status: int = 202) -> dict:  # type: ignore[no-untyped-def]
    return await wait(api, await call(api, method, path, body, status=status))


async def test_snapshot_restore_copy_rename(api) -> None:  # type: ignore[no-untyped-def]
    manager = api.server.app[MANAGER]
    await op(api, "POST", "/1.0/instances", {"name": "s1", "start": True,
                                             "source": {"type": "image", "alias": "debian"}})
    assert wait_running(manager, "s1") == "running"
    exec_out(manager, "s1", ["sh", "-c", "echo v1 > /root/f"])
    done = await op(api, "POST", "/1.0/instances/s1/snapshots", {"name": "snap0"})
    assert done["status"] == "Success" and done["metadata"] == {"name": "snap0"}
    snaps = (await call(api, "GET", "/1.0/instances/s1/snapshots"))["metadata"]
    assert snaps == ["/1.0/instances/s1/snapshots/snap0"]
    snap = (await call(api, "GET", "/1.0/instances/s1/snapshots/snap0"))["metadata"]
    assert snap["name"] == "snap0" and snap["stateful"] is False
    assert snap["expires_at"] == "0001-01-01T00:00:00Z"
    await op(api, "POST", "/1.0/instances/s1/snapshots", {})  # pattern: snap1
    full = (await call(api, "GET", "/1.0/instances/s1?recursion=2"))["metadata"]
    assert [s["name"] for s in full["snapshots"]] == ["snap0", "snap1"]
    await op(api, "PATCH", "/1.0/instances/s1/snapshots/snap1",
             {"expires_at": "2099-01-01T00:00:00Z"})
    snap1 = (await call(api, "GET", "/1.0/instances/s1/snapshots/snap1"))["metadata"]
    assert snap1["expires_at"].startswith("2099-01-01")
    await op(api, "POST", "/1.0/instances/s1/snapshots/snap1", {"name": "later"})
    await op(api, "DELETE", "/1.0/instances/s1/snapshots/later")
    exec_out(manager, "s1", ["sh", "-c", "echo v2 > /root/f"])
    await op(api, "PUT", "/1.0/instances/s1", {"restore": "snap0"})
    assert wait_running(manager, "s1") == "running"
    assert exec_out(manager, "s1", ["cat", "/root/f"])[1] == "v1\n"
    await op(api, "POST", "/1.0/instances", {"name": "s2", "source": {
        "type": "copy", "source": "s1/snap0"}})
    await op(api, "PUT", "/1.0/instances/s1/state", {"action": "stop", "force": True})
    await op(api, "POST", "/1.0/instances/s1", {"name": "s3"})
    names = (await call(api, "GET", "/1.0/instances"))["metadata"]
    assert sorted(names) == ["/1.0/instances/s2", "/1.0/instances/s3"]
    assert (await call(api, "GET", "/1.0/instances/s3/snapshots"))["metadata"] == [
        "/1.0/instances/s3/snapshots/snap0"]


@pytest.mark.parametrize("method,path,body,status,message", [
    ("POST", "/1.0/instances/nope/snapshots", {}, 404, "nope"),
    ("POST", "/1.0/instances/b1/snapshots", {"name": "a/b"}, 400, "snapshot name"),
    ("POST", "/1.0/instances/b1/snapshots", {"name": "x", "stateful": True}, 501, "Stateful"),
    ("POST", "/1.0/instances/b1/snapshots", {"expires_at": "soon"}, 400, "expires_at"),
    ("GET", "/1.0/instances/b1/snapshots/none", None, 404, "none"),
    ("DELETE", "/1.0/instances/b1/snapshots/none", None, 404, "none"),
    ("PUT", "/1.0/instances/b1", {"restore": "none"}, 404, "none"),
    ("POST", "/1.0/instances/b1", {"name": "9bad"}, 400, "name"),
    ("POST", "/1.0/instances/b1", {"name": "b2", "migration": True}, 501, "Migrating"),
    ("POST", "/1.0/instances", {"name": "c9", "source": {"type": "copy"}}, 400, "source"),
    ("POST", "/1.0/instances", {"name": "c9", "source": {"type": "copy", "source": "zz"}},
     404, "zz"),
    ("POST", "/1.0/instances", {"name": "b1", "source": {"type": "copy", "source": "b1"}},
     409, "already exists"),
])
async def test_bad_snapshot_requests(api, method, path, body, status, message) -> None:  # type: ignore[no-untyped-def]
    await op(api, "POST", "/1.0/instances", {"name": "b1", "source": {
        "type": "image", "alias": "debian"}})
    error = await call(api, method, path, body, status=status)
    assert message in error["error"], error
    names = (await call(api, "GET", "/1.0/instances"))["metadata"]
    assert names == ["/1.0/instances/b1"]
