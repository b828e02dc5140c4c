"""Named storage pools: a btrfs pool on a loop file and a dir pool, with real containers;
everything (instances, snapshots, mount, loop device, image file) gone at the end."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotFound
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel
needs_btrfs = pytest.mark.skipif(shutil.which("mkfs.btrfs") is None,
                                 reason="btrfs-progs is not installed")


def mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def loops_backed_by(path: str) -> list[str]:
    found = []
    for dev in os.listdir("/sys/block"):
        backing = f"/sys/block/{dev}/loop/backing_file"
        if os.path.exists(backing):
            with open(backing) as f:
                if f.read().strip() == path:
                    found.append(dev)
    return found


@needs_btrfs
def test_btrfs_loop_pool_with_instances(manager) -> None:  # type: ignore[no-untyped-def]
    pool = manager.pools.create("bt", "btrfs", {"size": "1GiB"})
    image_file = pool["config"]["source"]
    mount_dir = str(paths.storage_dir() / "pools" / "bt")
    try:
        assert mounted(mount_dir) and loops_backed_by(image_file)
        started = time.monotonic()
        manager.create("b1", "debian", storage="bt")  # copies the image in once
        first = time.monotonic() - started
        started = time.monotonic()
        manager.create("b2", "debian", storage="bt", devices={
            "root": {"type": "disk", "path": "/", "pool": "bt", "size": "400MiB"}})
        assert time.monotonic() - started < max(first, 0.5)  # a snapshot, not a copy
        manager.start("b2")  # the image's ~170 MiB count against the 400 MiB (referenced)
        code, _, err = exec_out(manager, "b2", ["dd", "if=/dev/zero", "of=/root/big",
                                                "bs=1M", "count=400", "conv=fsync"])
        assert code != 0 and "quota" in err.lower(), err
        manager.stop("b2", force=True)
        assert manager.get("b1").storage_pool == "bt"
        manager.start("b1")
        assert wait_running(manager, "b1") == "running"
        exec_out(manager, "b1", ["sh", "-c", "echo keep > /root/f"])
        manager.snapshot("b1", "s0")
        exec_out(manager, "b1", ["sh", "-c", "echo lost > /root/f"])
        manager.restore("b1", "s0")
        assert wait_running(manager, "b1") == "running"
        assert exec_out(manager, "b1", ["cat", "/root/f"])[1] == "keep\n"
        usage = manager.pools.usage("bt")
        assert 0 < usage["used"] < usage["total"] <= 1024**3
        with pytest.raises(Conflict, match="used by"):
            manager.pools.delete("bt", ["b1"])
        manager.delete("b1", force=True)
        manager.delete("b2")
    finally:
        for name in ("b1", "b2"):
            if name in manager.list():
                manager.delete(name, force=True)
        manager.pools.delete("bt", [])
    assert not mounted(mount_dir) and not loops_backed_by(image_file)
    assert not os.path.exists(image_file)


def test_dir_pool_and_bad_input(manager, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "pool"
    manager.pools.create("fast", "dir", {"source": str(source)}, description="scratch")
    assert [p["name"] for p in manager.pools.list()] == ["default", "fast"]
    manager.create("d1", "debian", storage="fast")
    assert (source / "d1" / "rootfs" / "etc" / "os-release").exists()
    with pytest.raises(Conflict):
        manager.pools.create("fast", "dir")
    with pytest.raises(InvalidConfig, match="size"):
        manager.pools.create("x", "dir", {"size": "1GiB"})
    with pytest.raises(InvalidConfig, match="zfs"):
        manager.pools.create("x", "zfs")
    with pytest.raises(InvalidConfig, match="pool name"):
        manager.pools.create("../x", "dir")
    with pytest.raises(NotFound, match="nowhere"):
        manager.create("d2", "debian", storage="nowhere")
    with pytest.raises(Conflict, match="default"):
        manager.pools.delete("default", [])
    manager.delete("d1")
    manager.pools.delete("fast", [])
    assert not source.exists()
    assert "d2" not in manager.list()
