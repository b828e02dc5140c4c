"""The custom volume service on a real state database and a dir-backed pool: used_by (own
devices and profiles, not instances that only inherit), the delete refusal, renames that
repoint their users, and the running-instance rules of rename and restore."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxmgr.errors import Conflict, InvalidConfig, NotFound, NotSupported
from lxmgr.instances.db import Database
from lxmgr.instances.pools import Pools
from lxmgr.instances.volumes import Volumes, uses
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.profile import Profile

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a volume's root is chowned to root")
DISK = {"type": "disk", "pool": "default", "source": "data", "path": "/data"}


@pytest.fixture
def running() -> set[str]:
    return set()


@pytest.fixture
def vols(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         running: set[str]) -> Iterator[Volumes]:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path / "state"))
    db = Database()
    try:
        yield Volumes(db, Pools(db, "overlay"), lambda name: name in running)
    finally:
        db.close()


def add_instance(vols: Volumes, name: str, devices: dict[str, dict[str, str]],
                 profiles: tuple[str, ...] = ()) -> None:
    vols.db.instance_add(InstanceSpec(name=name, image_fingerprint="", devices=devices,
                                      profiles=list(profiles)))


def test_uses_names_the_disks_of_a_volume() -> None:
    devices = {"a": DISK, "b": {**DISK, "source": "other"}, "root": {
        "type": "disk", "pool": "default", "path": "/"}, "c": {**DISK, "path": "/c"},
        "eth0": {"type": "nic", "network": "br"}}
    assert uses(devices, "default", "data") == ["a", "c"]
    assert uses(devices, "p2", "data") == []


def test_used_by_and_delete(vols: Volumes) -> None:
    vols.create("default", "data", description="d")
    vols.db.profile_add(Profile("shared", devices={"d": DISK}))
    add_instance(vols, "c2", {})
    add_instance(vols, "c1", {"d": DISK})
    add_instance(vols, "c3", {}, profiles=("shared",))  # through the profile only
    assert vols.used_by("default", "data") == ["/1.0/instances/c1", "/1.0/profiles/shared"]
    with pytest.raises(InvalidConfig, match="^The storage volume is still in use$"):
        vols.delete("default", "data")
    vols.db.instance_remove("c1")
    vols.db.instance_remove("c3")
    vols.db.profile_remove("shared")
    vols.delete("default", "data")
    with pytest.raises(NotFound, match="^Storage volume 'data' not found in pool 'default'$"):
        vols.host_path("default", "data")


def test_rename_repoints_users_and_refuses_while_running(vols: Volumes,
                                                          running: set[str]) -> None:
    vols.create("default", "data")
    vols.snapshot("default", "data")
    vols.db.profile_add(Profile("shared", devices={"d": DISK}))
    add_instance(vols, "c1", {"d": DISK, "other": {**DISK, "source": "x", "path": "/x"}})
    add_instance(vols, "c3", {}, profiles=("shared",))
    running.add("c3")
    with pytest.raises(InvalidConfig, match="^Volume is still in use by running instances$"):
        vols.rename("default", "data", "new")
    with pytest.raises(InvalidConfig, match="^Cannot restore custom volume used by running"):
        vols.restore("default", "data", "snap0")
    running.clear()
    vols.rename("default", "data", "new")
    spec = vols.db.instance_get("c1")
    assert spec.devices["d"]["source"] == "new" and spec.devices["other"]["source"] == "x"
    assert vols.db.profile_get("shared").devices["d"]["source"] == "new"
    assert [s["name"] for s in vols.snapshots("default", "new")] == ["new/snap0"]
    assert Path(vols.host_path("default", "new")).is_dir()
    vols.restore("default", "new", "snap0")


def test_snapshot_names_copy_and_refusals(vols: Volumes) -> None:
    vols.create("default", "data", {"user.k": "v"}, "desc")
    assert [vols.snapshot("default", "data") for _ in range(2)] == ["snap0", "snap1"]
    assert vols.snapshot("default", "data", "mine") == "mine"
    snap = vols.get_snapshot("default", "data", "mine")
    assert snap["config"] == {"user.k": "v"} and snap["description"] == "desc"
    vols.delete_snapshot("default", "data", "snap0")
    assert vols.snapshot("default", "data") == "snap0"  # the lowest free number
    vols.copy("default", "copy", "default", "data")
    assert [s["name"] for s in vols.snapshots("default", "copy")] == [
        "copy/snap1", "copy/mine", "copy/snap0"]
    assert vols.get("default", "copy")["description"] == "desc"
    with pytest.raises(Conflict, match="^Storage volume 'copy' already exists in pool"):
        vols.copy("default", "copy", "default", "data")
    with pytest.raises(NotSupported, match="'size' needs a btrfs pool"):
        vols.update("default", "data", {"size": "1GiB"})
    assert vols.get("default", "data")["config"] == {"user.k": "v"}
    with pytest.raises(NotFound, match="^Storage pool 'nope' not found$"):
        vols.create("nope", "x")
    vols.pools.create("p2", "dir")
    vols.copy("p2", "across", "default", "copy/mine")  # from a snapshot, to another pool
    assert vols.snapshots("p2", "across") == []
    with pytest.raises(Conflict, match="^Storage pool 'p2' holds storage volume across$"):
        vols.pools.delete("p2", [])
    vols.delete("p2", "across")
    vols.pools.delete("p2", [])
