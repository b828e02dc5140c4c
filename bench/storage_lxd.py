"""LXD side of the storage benchmark: dir and btrfs pools in a private LXD (api_lxd.LxdSide).

Imports bench/api_lxd.py and storage_util.py. The daemon is api_lxd's: private LXD_DIR under
/var/tmp, its own network namespace, proxies pointing at a discard port (nothing leaves the
host), the cached debian rootfs imported as `lxmbench-debian`. Pools are `benchdir` (dir, in
LXD_DIR/storage-pools) and `benchbtrfs` (btrfs on LXD's own loop file LXD_DIR/disks/
benchbtrfs.img of --pool-size, mounted at LXD_DIR/storage-pools/benchbtrfs in the host's mount
namespace: lxd is not given a mount namespace here). Every step is an `lxc` call, so LXD's
times include the client. cleanup() deletes our containers, the pools' image volumes and the
pools while lxd runs, then runs LxdSide.cleanup() (daemon stopped by pid, mounts under its dir
unmounted, dir removed), and detaches, by device, any loop device still backed by a file in
that dir (LXD attaches with autoclear, so this should never happen; it is reported if it does).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from api_lxd import IMAGE_ALIAS, LxdSide
from storage_util import loop_devices


class LxdStorage:
    """A private LXD; pool() makes a pool and its Backend."""

    label = "LXD"

    def __init__(self) -> None:
        self.side = LxdSide(prefix="lxd-bench-storage-")
        self.dir = self.side.dir
        self.tag = os.urandom(3).hex()
        self.pools: list[str] = []
        self.fingerprint = ""

    def start(self, image_dir: Path) -> None:
        self.side.start(image_dir)
        alias = self.side.cli("query", f"/1.0/images/aliases/{IMAGE_ALIAS}").stdout
        self.fingerprint = json.loads(alias)["target"]

    def version(self) -> str:
        return self.side.version()

    def client_round_trip_ms(self, samples: int = 5) -> float:
        """Median ms of `lxc query /1.0`: what every timed `lxc` step pays besides its work."""
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            self.side.cli("query", "/1.0")
            times.append((time.perf_counter() - t0) * 1000)
        return sorted(times)[len(times) // 2]

    def pool(self, driver: str, size: str) -> LxdPool:
        name = f"bench{driver}"
        extra = [f"size={size}"] if driver == "btrfs" else []
        self.pools.append(name)  # before: a half-made pool is still LXD's to delete
        self.side.cli("storage", "create", name, driver, *extra)
        return LxdPool(self, name, driver)

    def drop_pool(self, name: str) -> None:
        """Delete the pool's image volume (the unpacked image LXD keeps on btrfs), then it."""
        self.side.cli("storage", "volume", "delete", name, f"image/{self.fingerprint}",
                      check=False)
        gone = self.side.cli("storage", "delete", name, check=False)
        if gone.returncode != 0 and "not found" not in gone.stderr.lower():
            raise RuntimeError(f"lxc storage delete {name}: {gone.stderr.strip()}")
        self.pools.remove(name)

    def cleanup(self) -> list[str]:
        warnings = []
        if self.side.proc is not None and self.side.proc.poll() is None:
            # The daemon is private, so every instance it has is ours; this also catches one
            # whose interrupted `lxc init` the daemon finished after the client died.
            listed = self.side.cli("list", "--format", "csv", "-c", "n", check=False)
            for name in [*self.side.created, *listed.stdout.split()]:
                gone = self.side.cli("delete", "--force", name, check=False)
                if (gone.returncode == 0 or "not found" in gone.stderr.lower()) and \
                        name in self.side.created:
                    self.side.created.remove(name)
            for pool in list(self.pools):
                try:
                    self.drop_pool(pool)
                except Exception as err:  # noqa: BLE001 - report and go on cleaning
                    warnings.append(f"Failed to delete LXD pool '{pool}': {err}")
        warnings += self.side.cleanup()
        prefix = str(self.dir) + "/"
        for device, backing in loop_devices().items():
            if backing.startswith(prefix):
                subprocess.run(["losetup", "-d", device], check=False)
                warnings.append(f"loop device {device} was still backed by {backing}: "
                                "detached")
        return warnings


class LxdPool:
    """One LXD pool as a storage_util.Backend."""

    def __init__(self, owner: LxdStorage, pool: str, driver: str) -> None:
        self.owner, self.side, self.pool, self.driver = owner, owner.side, pool, driver
        self.label = f"LXD {driver}"
        self.disk_method = "btrfs" if driver == "btrfs" else "du"

    def pool_dir(self) -> Path:
        return self.side.lxd_dir / "storage-pools" / self.pool

    def new_name(self, index: int) -> str:
        return f"lxmbs-{self.owner.tag}-{self.driver}-{index}"

    def create(self, name: str) -> None:
        self.side.track(name)
        self.side.cli("init", IMAGE_ALIAS, name, "--storage", self.pool)

    def volume_dir(self, name: str) -> Path:
        return self.pool_dir() / "containers" / name

    def state_dir(self, name: str) -> Path:
        return self.volume_dir(name) / "rootfs"

    def snapshot(self, name: str, snap: str) -> None:
        self.side.cli("snapshot", name, snap)

    def restore(self, name: str, snap: str) -> None:
        self.side.cli("restore", name, snap)

    def delete_snapshot(self, name: str, snap: str) -> None:
        self.side.cli("delete", f"{name}/{snap}")

    def delete(self, name: str) -> bool:
        gone = self.side.cli("delete", name, check=False)
        missing = gone.returncode != 0 and "not found" in gone.stderr.lower()
        if gone.returncode != 0 and not missing:
            raise RuntimeError(f"lxc delete {name}: {gone.stderr.strip()}")
        self.side.created.remove(name)
        return not missing
