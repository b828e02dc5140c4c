"""The root disk on the device layer: its start() gives the storage driver's rootfs, its
`size` is refused on a pool without quotas instead of ignored."""

from __future__ import annotations

import pytest

from lxmgr import devices
from lxmgr.devices.base import InstanceContext
from lxmgr.errors import NotSupported
from lxmgr.model.rootfs import RootfsSpec

ROOT = {"type": "disk", "path": "/", "pool": "default"}
SPEC = RootfsSpec(kind="bind", target="/t/rootfs", source="/t/volume")


def _ctx(quotas: bool) -> InstanceContext:
    return InstanceContext(name="c1", privileged=False, rootfs=lambda: SPEC,
                           pool_has_quotas=lambda pool: quotas)


def test_start_gives_the_rootfs_of_the_pool_volume() -> None:
    run = devices.start_all({"root": ROOT, "none": {"type": "none"}}, _ctx(quotas=False))
    assert run.rootfs == SPEC and run.disks == []


def test_size_needs_a_pool_with_quotas() -> None:
    sized = {**ROOT, "size": "10GiB"}
    devices.validate_all({"root": sized}, _ctx(quotas=True))
    with pytest.raises(NotSupported, match="^Invalid device 'root': 'size' needs a storage "
                                           "pool with quotas \\(btrfs\\); pool 'default' has "
                                           "none$"):
        devices.validate_all({"root": sized}, _ctx(quotas=False))


def test_no_root_disk_no_rootfs() -> None:
    assert devices.start_all({}, _ctx(quotas=False)).rootfs is None
