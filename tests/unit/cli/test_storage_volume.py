"""`lxmgr storage volume ...`: request paths and bodies (lxc's), the list columns, snapshot
references, attach/detach as a disk device, and one-line refusals."""

from __future__ import annotations

from collections.abc import Callable

import yaml
from click.testing import Result

from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]
VOLS = "/1.0/storage-pools/default/volumes/custom"
DATA = {"name": "data", "type": "custom", "description": "shared", "config": {"size": "1GiB"},
        "used_by": ["/1.0/instances/web1"], "location": "none", "content_type": "filesystem",
        "project": "default", "created_at": "2026-01-01T00:00:00Z"}
WEB1 = {"name": "web1", "config": {"limits.cpu": "1"}, "profiles": ["default"],
        "description": "", "ephemeral": False, "stateful": False,
        "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}},
        "expanded_devices": {}}


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_create_list_show_get(run: Run, fake: FakeClient) -> None:
    assert ok(run("storage", "volume", "create", "default", "data", "size=1GiB", "-d",
                  "shared")) == "Storage volume data created\n"
    assert fake.last("POST", VOLS).body == {"name": "data", "type": "custom",
                                            "content_type": "filesystem", "description": "shared",
                                            "config": {"size": "1GiB"}}
    fake.answers[("GET", "/1.0/storage-pools/default/volumes")] = [
        {"name": "web1", "type": "container", "description": "", "content_type": "filesystem",
         "used_by": ["/1.0/instances/web1"]}, DATA, {**DATA, "name": "data/snap0", "used_by": []}]
    out = ok(run("storage", "volume", "list", "default", "-f", "csv"))
    assert out.splitlines() == ["container,web1,,filesystem,1", "custom,data,shared,filesystem,1",
                                "custom (snapshot),data/snap0,shared,filesystem,0"]
    fake.answers[("GET", f"{VOLS}/data")] = DATA
    assert yaml.safe_load(ok(run("storage", "volume", "show", "default", "custom/data"))) == DATA
    run("storage", "volume", "show", "default", "data/snap0")
    assert fake.calls[-1].path == f"{VOLS}/data/snapshots/snap0"
    assert ok(run("storage", "volume", "get", "default", "data", "size")) == "1GiB\n"


def test_set_unset_edit(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", f"{VOLS}/data")] = DATA
    ok(run("storage", "volume", "set", "default", "data", "user.a=1"))
    assert fake.last("PATCH", f"{VOLS}/data").body == {"config": {"user.a": "1"}}
    ok(run("storage", "volume", "unset", "default", "data", "size"))
    put = fake.last("PUT", f"{VOLS}/data")
    assert put.body == {"description": "shared", "config": {}}
    assert put.headers == {"If-Match": "etag-1"}
    result = run("storage", "volume", "unset", "default", "data", "nope")
    assert result.exit_code == 1 and "Can't unset key 'nope'" in result.output
    ok(run("storage", "volume", "edit", "default", "data",
           input="description: new\nconfig:\n  user.n: 5\n"))
    assert fake.last("PUT", f"{VOLS}/data").body == {"description": "new",
                                                     "config": {"user.n": "5"}}


def test_snapshots_restore_rename_delete_copy(run: Run, fake: FakeClient) -> None:
    fake.answers[("POST", f"{VOLS}/data/snapshots")] = {"name": "snap0"}
    assert ok(run("storage", "volume", "snapshot", "default", "data")) == \
        "Snapshot data/snap0 created\n"
    assert fake.last("POST", f"{VOLS}/data/snapshots").body == {}
    ok(run("storage", "volume", "restore", "default", "data", "snap0"))
    assert fake.last("PUT", f"{VOLS}/data").body == {"restore": "snap0"}
    ok(run("storage", "volume", "rename", "default", "data", "shared"))
    assert fake.last("POST", f"{VOLS}/data").body == {"name": "shared"}
    ok(run("storage", "volume", "rename", "default", "data/snap0", "data/old"))
    assert fake.last("POST", f"{VOLS}/data/snapshots/snap0").body == {"name": "old"}
    result = run("storage", "volume", "rename", "default", "data/snap0", "other/old")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    ok(run("storage", "volume", "delete", "default", "data/old", "data"))
    assert fake.mutations()[-2:] == [("DELETE", f"{VOLS}/data/snapshots/old"),
                                     ("DELETE", f"{VOLS}/data")]
    ok(run("storage", "volume", "copy", "default/data/snap0", "fast/old", "--volume-only"))
    assert fake.last("POST", "/1.0/storage-pools/fast/volumes/custom").body == {
        "name": "old", "type": "custom", "source": {
            "type": "copy", "pool": "default", "name": "data/snap0", "volume_only": True}}
    result = run("storage", "volume", "show", "default", "container/web1")
    assert result.exit_code == 1 and "Only custom storage volumes" in result.output


def test_attach_and_detach(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances/web1")] = WEB1
    ok(run("storage", "volume", "attach", "default", "data", "web1", "/srv/data"))
    put = fake.last("PUT", "/1.0/instances/web1")
    assert put.body["devices"]["data"] == {"type": "disk", "pool": "default",
                                           "source": "data", "path": "/srv/data"}
    assert put.body["config"] == {"limits.cpu": "1"} and "expanded_devices" not in put.body
    ok(run("storage", "volume", "attach", "default", "data", "web1", "shared", "/srv/s"))
    assert set(fake.last("PUT", "/1.0/instances/web1").body["devices"]) == {"root", "shared"}
    result = run("storage", "volume", "attach", "default", "data", "web1", "root", "/x")
    assert result.exit_code == 1 and "Device 'root' already exists on instance 'web1'" in \
        result.output
    result = run("storage", "volume", "attach", "default", "data", "web1", "relative")
    assert result.exit_code == 1 and "'path'" in result.output
    with_two = {**WEB1, "devices": {**WEB1["devices"], **{
        n: {"type": "disk", "pool": "default", "source": "data", "path": f"/{n}"}
        for n in ("a", "b")}}}
    fake.answers[("GET", "/1.0/instances/web1")] = with_two
    result = run("storage", "volume", "detach", "default", "data", "web1")
    assert result.exit_code == 1 and "More than one device" in result.output
    ok(run("storage", "volume", "detach", "default", "data", "web1", "b"))
    assert set(fake.last("PUT", "/1.0/instances/web1").body["devices"]) == {"root", "a"}
    fake.answers[("GET", "/1.0/instances/web1")] = WEB1
    result = run("storage", "volume", "detach", "default", "data", "web1")
    assert result.exit_code == 1 and "No device of instance 'web1' uses storage volume" in \
        result.output


def test_pool_info_names_instances_and_volumes(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/storage-pools/default")] = {
        "name": "default", "driver": "dir", "description": "",
        "used_by": ["/1.0/instances/web1", f"{VOLS}/data"]}
    fake.answers[("GET", "/1.0/storage-pools/default/resources")] = {
        "space": {"used": 1, "total": 2}}
    out = ok(run("storage", "info", "default"))
    assert out.splitlines()[-3:] == ["used by:", "  instances: web1", "  volumes: data"]
