"""disk devices from custom volumes: resolved through the instance context to the volume's
host directory, always idmapped in unprivileged containers, missing pools and volumes named
in a 400; host-path disks unchanged."""

from __future__ import annotations

import pytest

from lxmgr.devices.base import InstanceContext
from lxmgr.devices.disk import Disk
from lxmgr.errors import InvalidConfig, NotFound, NotSupported

VOLUME = {"type": "disk", "pool": "p1", "source": "data", "path": "/srv/data"}


def resolve(pool: str, volume: str) -> str:
    if pool != "p1":
        raise NotFound(f"Storage pool '{pool}' not found")
    if volume != "data":
        raise NotFound(f"Storage volume '{volume}' not found in pool '{pool}'")
    return "/var/lib/lxmgr/storage/pools/p1/.custom/data"


def ctx(privileged: bool = False) -> InstanceContext:
    return InstanceContext("c1", privileged, volume_path=resolve)


def test_volume_disk_mounts_the_volume_shifted() -> None:
    disk = Disk("data", dict(VOLUME, readonly="true"), ctx())
    disk.validate()  # inside lxmgr's state dir, and that is fine for a volume
    mount = disk.mount()
    assert mount.source == "/var/lib/lxmgr/storage/pools/p1/.custom/data"
    assert (mount.path, mount.shift, mount.readonly, mount.required) == (
        "/srv/data", True, True, True)
    assert disk.start().disks == [mount]


def test_privileged_containers_need_no_shift() -> None:
    assert Disk("data", dict(VOLUME), ctx(privileged=True)).mount().shift is False


@pytest.mark.parametrize("config,message", [
    ({**VOLUME, "pool": "p9"}, "Invalid device 'data': storage pool 'p9' not found"),
    ({**VOLUME, "source": "nope"},
     "Invalid device 'data': storage volume 'nope' not found in pool 'p1'"),
])
def test_missing_pool_or_volume_is_a_400_naming_it(config: dict[str, str],
                                                   message: str) -> None:
    disk = Disk("data", config, ctx())
    for step in (disk.validate, disk.start):
        with pytest.raises(InvalidConfig) as err:
            step()
        assert str(err.value) == message and err.value.status == 400


def test_without_a_volume_service_volumes_are_refused() -> None:
    with pytest.raises(NotSupported, match="storage volumes can't be mounted here"):
        Disk("data", dict(VOLUME), InstanceContext("c1", False)).validate()


def test_host_path_disks_keep_their_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    disk = Disk("code", {"type": "disk", "source": str(tmp_path), "path": "/code"}, ctx())
    mount = disk.mount()
    assert mount.source == str(tmp_path) and mount.shift is False
