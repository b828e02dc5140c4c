"""lxmgr side of the storage benchmark: pools and instances through an in-process Manager.

Imports lxmgr.instances.manager (after LXMGR_DIR is set) and bench/common.py. Everything lives
in a private LXMGR_DIR under /var/tmp whose `images` is a symlink to the test image cache
(read-only for us), with the cgroup base `lxmgr-bench-storage` (a create makes no cgroup; the
base is removed anyway). Pools are `bench-<driver>`; a btrfs pool is lxmgr's own loop file
($LXMGR_DIR/storage/disks/bench-btrfs.img, mounted at storage/pools/bench-btrfs in the host's
mount namespace). cleanup() deletes every instance this object created, then its pools
(unmount, loop detach by autoclear, file removed), the cgroup base and the dir, and returns
warnings for anything left behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from common import make_private_dir, remove_private_dir

CGROUP_BASE = "lxmgr-bench-storage"
IMAGE = "debian"
STATE_DIRS = {"overlay": "upper", "dir": "rootfs", "btrfs": "rootfs"}  # writable state


class LxmgrStorage:
    """A Manager on a private LXMGR_DIR; pool() makes a pool and its Backend."""

    label = "lxmgr"

    def __init__(self, image_dir: Path) -> None:
        self.dir = make_private_dir("lxmgr-bench-storage-")
        (self.dir / "images").symlink_to(image_dir)
        os.environ["LXMGR_DIR"] = str(self.dir)
        from lxmgr.instances.manager import Manager  # after LXMGR_DIR is set

        self.manager = Manager(cgroup_base_name=CGROUP_BASE)
        self.tag = os.urandom(3).hex()
        self.created: list[str] = []  # created and not deleted yet
        self.pools: list[str] = []

    def version(self) -> str:
        from lxmgr import __version__

        return str(__version__)

    def pool(self, driver: str, size: str) -> LxmgrPool:
        name = f"bench-{driver}"
        self.manager.pools.create(name, driver, {"size": size} if driver == "btrfs" else {})
        self.pools.append(name)
        return LxmgrPool(self, name, driver)

    def drop_pool(self, name: str) -> None:
        self.manager.pools.delete(name, [])
        self.pools.remove(name)

    def cleanup(self) -> list[str]:
        """Delete our instances (force), pools, the cgroup base and the private dir."""
        warnings = []
        for name in list(self.created):
            try:
                if self.manager.store.exists(name):
                    self.manager.delete(name, force=True)
                self.created.remove(name)
            except Exception as err:  # noqa: BLE001 - report and go on cleaning
                warnings.append(f"Failed to delete lxmgr instance '{name}': {err}")
        for pool in list(self.pools):
            try:
                self.drop_pool(pool)
            except Exception as err:  # noqa: BLE001
                warnings.append(f"Failed to delete lxmgr pool '{pool}': {err}")
        try:
            self.manager.cgroups.delete_base()
        except Exception as err:  # noqa: BLE001
            warnings.append(f"Failed to remove cgroup base '{CGROUP_BASE}': {err}")
        self.manager.close()
        if self.created or self.pools:
            warnings.append(f"Left {self.dir} for inspection")
            return warnings
        warning = remove_private_dir(self.dir)
        return warnings + ([warning] if warning else [])


class LxmgrPool:
    """One lxmgr pool as a storage_util.Backend."""

    def __init__(self, side: LxmgrStorage, pool: str, driver: str) -> None:
        self.side, self.pool, self.driver = side, pool, driver
        self.label = f"lxmgr {driver}"
        self.disk_method = "btrfs" if driver == "btrfs" else "du"
        self._driver = side.manager.pools.driver(pool)

    def pool_dir(self) -> Path:
        return self._driver.pool_dir()

    def new_name(self, index: int) -> str:
        return f"lxmbs-{self.side.tag}-{self.driver}-{index}"

    def create(self, name: str) -> None:
        self.side.created.append(name)
        self.side.manager.create(name, IMAGE, storage=self.pool)

    def volume_dir(self, name: str) -> Path:
        return self._driver.volume_dir(name)

    def state_dir(self, name: str) -> Path:
        return self.volume_dir(name) / STATE_DIRS[self.driver]

    def snapshot(self, name: str, snap: str) -> None:
        self.side.manager.snapshot(name, snap)

    def restore(self, name: str, snap: str) -> None:
        self.side.manager.restore(name, snap)

    def delete_snapshot(self, name: str, snap: str) -> None:
        self.side.manager.delete_snapshot(name, snap)

    def delete(self, name: str) -> bool:
        existed = self.side.manager.store.exists(name)
        if existed:
            self.side.manager.delete(name)
        self.side.created.remove(name)
        return existed
