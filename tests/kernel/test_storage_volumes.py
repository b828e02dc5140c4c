"""Custom storage volumes on real containers, on overlay (the default pool), dir and btrfs
(loop-backed) pools: one volume mounted by two running containers with different idmaps (at
boot in one, hot-plugged in the other), a file written in each seen by the other and owned by
root on both sides, delete and rename refused while attached, detach, delete; on btrfs the
volume's `size` is a quota inside the container. Everything (instances, volumes, pool, its
mount and loop file) is gone at the end, even after a failure."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxmgr.errors import InvalidConfig
from tests.kernel.conftest import exec_out, wait_running

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(300)]


@contextlib.contextmanager
def pool_of(manager, driver: str, tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A pool of driver (overlay: the default pool); instances, volumes and the pool are
    deleted on the way out."""
    name = "default"
    if driver == "dir":
        name = "pdir"
        manager.pools.create(name, "dir", {"source": str(tmp_path / "pdir")})
    elif driver == "btrfs":
        if shutil.which("mkfs.btrfs") is None:
            pytest.skip("btrfs-progs is not installed")
        name = "pbtrfs"
        manager.pools.create(name, "btrfs", {"size": "1GiB"})
    try:
        yield name
    finally:
        for inst in manager.list():
            with contextlib.suppress(Exception):
                manager.delete(inst, force=True)
        for record in manager.volumes.list(name):
            if "/" not in record["name"]:
                with contextlib.suppress(Exception):
                    manager.volumes.delete(name, record["name"])
        if name != "default":
            manager.pools.delete(name, [])


def disk(pool: str, volume: str = "shared") -> dict[str, str]:
    return {"type": "disk", "pool": pool, "source": volume, "path": "/shared"}


def sh(manager, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    code, out, err = exec_out(manager, name, ["sh", "-c", script])
    assert code == 0, err
    return out


@pytest.mark.parametrize("driver", ["overlay", "dir", "btrfs"])
def test_volume_shared_by_two_running_containers(manager, driver: str,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    with pool_of(manager, driver, tmp_path) as pool:
        manager.volumes.create(pool, "shared")
        host = Path(manager.volumes.host_path(pool, "shared"))
        a, b = (f"v{uuid.uuid4().hex[:8]}" for _ in range(2))
        manager.create(a, "debian", devices={"shared": disk(pool)})
        manager.create(b, "debian", config={"security.idmap.isolated": "true"})
        assert manager._idmap(manager.get(a)) != manager._idmap(manager.get(b))
        for name in (a, b):
            manager.start(name)
            assert wait_running(manager, name) in ("running", "degraded")
        manager.update(b, devices={**manager.get(b).devices, "vol": disk(pool)})  # hot-plug
        # A fresh volume's root is the container's root's, in both maps.
        assert sh(manager, a, "stat -c %u:%g:%a /shared") == "0:0:711\n"
        assert sh(manager, b, "stat -c %u:%g:%a /shared") == "0:0:711\n"
        sh(manager, a, "echo from-a > /shared/a && mkdir /shared/dir && chown 1000 /shared/dir")
        assert sh(manager, b, "cat /shared/a; stat -c %u /shared/a /shared/dir") == \
            "from-a\n0\n1000\n"
        sh(manager, b, "echo from-b > /shared/dir/b")
        assert sh(manager, a, "cat /shared/dir/b") == "from-b\n"
        assert (host / "a").stat().st_uid == 0 and (host / "dir").stat().st_uid == 1000
        assert manager.volumes.used_by(pool, "shared") == sorted(
            [f"/1.0/instances/{a}", f"/1.0/instances/{b}"])
        with pytest.raises(InvalidConfig, match="^The storage volume is still in use$"):
            manager.volumes.delete(pool, "shared")
        with pytest.raises(InvalidConfig, match="still in use by running instances"):
            manager.volumes.rename(pool, "shared", "other")
        for name, dev in ((a, "shared"), (b, "vol")):  # detach (hot-unplug)
            devices = dict(manager.get(name).devices)
            devices.pop(dev)
            manager.update(name, devices=devices)
            code, _, _ = exec_out(manager, name, ["mountpoint", "-q", "/shared"])
            assert code == 32  # util-linux: not a mountpoint
        manager.volumes.delete(pool, "shared")
        assert not host.exists()


def test_btrfs_volume_size_is_a_quota_inside(manager, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pool_of(manager, "btrfs", tmp_path) as pool:
        manager.volumes.create(pool, "small", {"size": "32MiB"})
        name = f"v{uuid.uuid4().hex[:8]}"
        manager.create(name, "debian", devices={"small": disk(pool, "small")})
        manager.start(name)
        code, _, err = exec_out(manager, name, [
            "dd", "if=/dev/zero", "of=/shared/big", "bs=1M", "count=64", "conv=fsync"])
        assert code != 0 and "quota" in err.lower(), err
        manager.stop(name, force=True)
        manager.volumes.update(pool, "small", {})  # the limit goes with the key
        manager.start(name)
        sh(manager, name, "dd if=/dev/zero of=/shared/big bs=1M count=64 conv=fsync 2>&1")


def test_btrfs_snapshots_are_read_only_subvolumes(manager, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from lxmgr.linux import btrfs
    from lxmgr.storage import btrfs_utils

    with pool_of(manager, "btrfs", tmp_path) as pool:
        vols = manager.volumes
        vols.create(pool, "data", {"size": "64MiB"})
        host = Path(vols.host_path(pool, "data"))
        assert btrfs.is_subvolume(host) and host.stat().st_mode & 0o7777 == 0o711
        (host / "f").write_text("one\n")
        vols.snapshot(pool, "data", "s0")
        snap = vols.storage(pool).existing("data", "s0")
        assert btrfs.is_subvolume(snap) and btrfs_utils.is_readonly(snap)
        with pytest.raises(OSError):
            (snap / "g").write_text("no\n")
        (host / "f").write_text("two\n")
        vols.restore(pool, "data", "s0")
        host = Path(vols.host_path(pool, "data"))
        assert (host / "f").read_text() == "one\n" and not btrfs_utils.is_readonly(host)
        assert btrfs_utils.limit_of(vols.storage(pool).pool_dir, host) == 64 << 20
        vols.copy(pool, "copy", pool, "data")  # within the pool: snapshots of subvolumes
        copy = Path(vols.host_path(pool, "copy"))
        assert btrfs.is_subvolume(copy) and (copy / "f").read_text() == "one\n"
        assert btrfs_utils.is_readonly(vols.storage(pool).existing("copy", "s0"))
        vols.create("default", "plain")  # from another pool: a new subvolume, filled
        Path(vols.host_path("default", "plain"), "p").write_text("p\n")
        vols.copy(pool, "imported", "default", "plain")
        imported = Path(vols.host_path(pool, "imported"))
        assert btrfs.is_subvolume(imported) and (imported / "p").read_text() == "p\n"
        assert imported.stat().st_mode & 0o7777 == 0o711
        for name in ("data", "copy", "imported"):
            vols.delete(pool, name)
        vols.delete("default", "plain")
        left = sorted(p.name for p in (vols.storage(pool).pool_dir / "custom").iterdir())
        assert left == [] and not (vols.storage(pool).pool_dir / "custom-snapshots" /
                                   "data").exists()
