"""Helpers of the storage benchmark: disk usage, the timed create/snapshot/restore series run
on one pool (any side), and the host check of loop devices and mounts.

Imports only the stdlib and bench/common.py. A Backend is one pool of one side (lxmgr's
storage_lxmgr.py, LXD's storage_lxd.py); run_series() drives it the same way for both.
"""

from __future__ import annotations

import os
import stat
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MIB = 1024 * 1024
STATE_FILE = "lxmbench-state-{run}.bin"


class Backend(Protocol):
    """One pool on one side; names are made by the caller and tracked by the backend."""

    label: str  # "lxmgr overlay", "LXD btrfs"
    disk_method: str  # "du" (blocks of the volume dirs) or "btrfs" (pool space delta)

    def pool_dir(self) -> Path: ...
    def new_name(self, index: int) -> str: ...
    def create(self, name: str) -> None: ...
    def volume_dir(self, name: str) -> Path: ...
    def state_dir(self, name: str) -> Path: ...
    def snapshot(self, name: str, snap: str) -> None: ...
    def restore(self, name: str, snap: str) -> None: ...
    def delete_snapshot(self, name: str, snap: str) -> None: ...
    def delete(self, name: str) -> bool: ...  # False: it did not exist


@dataclass
class Series:
    """What run_series() measured on one pool (ms, bytes); partial when it failed."""

    label: str
    disk_method: str
    count: int
    create_ms: list[float] = field(default_factory=list)
    disk: dict[int, dict[str, float]] = field(default_factory=dict)
    snapshot_ms: list[float] = field(default_factory=list)
    restore_ms: list[float] = field(default_factory=list)
    delete_ms: list[float] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "disk_method": self.disk_method, "count": self.count,
                "create_ms": _rounded(self.create_ms), "disk": self.disk,
                "snapshot_ms": _rounded(self.snapshot_ms),
                "restore_ms": _rounded(self.restore_ms), "delete_ms": _rounded(self.delete_ms),
                **({"error": self.error} if self.error else {})}


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- disk usage ----------------------------------------------------------------------------------

def du_bytes(path: Path) -> int:
    """Bytes of the blocks allocated below path (st_blocks, hard links once, symlinks not
    followed, other filesystems included): `du -s --block-size=1` without --apparent-size."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(path)]
    while stack:
        current = stack.pop()
        st = os.lstat(current)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        total += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(current) as entries:
                stack.extend(e.path for e in entries)
    return total


def syncfs(path: Path) -> None:
    """Write back the filesystem holding path (`sync -f`), so space accounting is current."""
    subprocess.run(["sync", "-f", str(path)], check=True)


def btrfs_used(pool: Path) -> dict[str, int]:
    """Bytes used on the btrfs at pool after a syncfs: `btrfs filesystem df --raw` data,
    metadata and system `used`, each times its copies (DUP: 2), and statvfs' used."""
    syncfs(pool)
    out = subprocess.run(["btrfs", "filesystem", "df", "--raw", str(pool)], check=True,
                         capture_output=True, text=True).stdout
    used = {"data": 0, "metadata": 0, "system": 0}
    for line in out.splitlines():
        kind, _, rest = line.partition(",")
        profile, _, values = rest.partition(":")
        fields = dict(v.split("=", 1) for v in values.split() if "=" in v)
        if kind.lower() in used and "used" in fields:
            used[kind.lower()] += int(fields["used"]) * _copies(profile.strip())
    st = os.statvfs(pool)
    used["statvfs"] = (st.f_blocks - st.f_bfree) * st.f_frsize
    used["total"] = used["data"] + used["metadata"] + used["system"]
    return used


def _copies(profile: str) -> int:
    return {"DUP": 2, "RAID1": 2, "RAID10": 2, "RAID1C3": 3, "RAID1C4": 4}.get(profile.upper(), 1)


# -- the series ---------------------------------------------------------------------------------

def run_series(backend: Backend, series: Series, names: list[str], checkpoints: list[int],
               runs: int, state_bytes: int) -> None:
    """Create series.count instances in a row (each timed), disk use at each checkpoint,
    then `runs` snapshot/restore cycles on the last one; fills series as it goes and appends
    each name to names before creating it (the caller deletes them, timed, in its finally)."""
    base = btrfs_used(backend.pool_dir()) if backend.disk_method == "btrfs" else None
    first: dict[str, int] = {}
    for index in range(1, series.count + 1):
        name = backend.new_name(index)
        names.append(name)
        t0 = time.perf_counter()
        backend.create(name)
        series.create_ms.append((time.perf_counter() - t0) * 1000)
        if base is not None and index == 1:
            first = btrfs_used(backend.pool_dir())
        if index in checkpoints:
            series.disk[index] = disk_at(backend, names, base, first)
        if index in checkpoints or index % 10 == 0:
            progress(f"[{backend.label}] {index}/{series.count} created, last "
                     f"{series.create_ms[-1]:.1f} ms")
    for run in range(runs):
        snap, restore = snapshot_cycle(backend, names[-1], run, state_bytes)
        series.snapshot_ms.append(snap)
        series.restore_ms.append(restore)
    progress(f"[{backend.label}] {runs} snapshot/restore cycles done")


def disk_at(backend: Backend, names: list[str], base: dict[str, int] | None,
            first: dict[str, int]) -> dict[str, float]:
    """MiB per instance with len(names) instances. du: the mean over the volume dirs. btrfs:
    the pool's used delta from instance #1 to now over the instances after #1; at #1, the
    delta from the empty pool (the image copied into the pool included)."""
    count = len(names)
    if base is None:
        sizes = [du_bytes(backend.volume_dir(n)) for n in names]
        return {"per_instance_mib": statistics.mean(sizes) / MIB}
    now = btrfs_used(backend.pool_dir())
    if count == 1:
        delta = {k: now[k] - base[k] for k in now}
    else:
        delta = {k: (now[k] - first[k]) / (count - 1) for k in now}
    return {"per_instance_mib": delta["total"] / MIB,
            "statvfs_mib": delta["statvfs"] / MIB, "metadata_mib": delta["metadata"] / MIB,
            "data_mib": delta["data"] / MIB}


def snapshot_cycle(backend: Backend, name: str, run: int, state_bytes: int) -> tuple[float, float]:
    """Write a state file (fsynced, filesystem synced), time the snapshot, remove the file,
    time the restore, check the file came back, then drop it and the snapshot (untimed)."""
    state = backend.state_dir(name) / STATE_FILE.format(run=run)
    _write_random(state, state_bytes)
    syncfs(state.parent)
    snap = f"bench{run}"
    t0 = time.perf_counter()
    backend.snapshot(name, snap)
    snap_ms = (time.perf_counter() - t0) * 1000
    state.unlink()
    syncfs(state.parent)
    t0 = time.perf_counter()
    backend.restore(name, snap)
    restore_ms = (time.perf_counter() - t0) * 1000
    state = backend.state_dir(name) / state.name
    size = state.stat().st_size if state.exists() else -1
    if size != state_bytes:
        raise RuntimeError(f"{backend.label}: restore of '{name}/{snap}' did not bring back "
                           f"{state.name} ({size} bytes)")
    state.unlink()
    backend.delete_snapshot(name, snap)
    return snap_ms, restore_ms


def _write_random(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        left = size
        while left:
            left -= os.write(fd, os.urandom(min(left, MIB)))
        os.fsync(fd)
    finally:
        os.close(fd)


def delete_all(backend: Backend, names: list[str], series: Series) -> list[str]:
    """Delete each instance (timed into series.delete_ms; one whose create was interrupted
    may not exist); warnings for those that failed."""
    warnings = []
    for name in names:
        t0 = time.perf_counter()
        try:
            existed = backend.delete(name)
        except Exception as err:  # noqa: BLE001 - report and go on cleaning
            warnings.append(f"{backend.label}: failed to delete '{name}': {err}")
            continue
        if existed:
            series.delete_ms.append((time.perf_counter() - t0) * 1000)
    return warnings


# -- host check ----------------------------------------------------------------------------------

def loop_devices() -> dict[str, str]:
    """Attached loop device -> backing file (what `losetup -a` lists)."""
    found = {}
    for entry in Path("/sys/block").glob("loop*"):
        try:
            found[f"/dev/{entry.name}"] = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
    return found


def mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4].replace("\\040", " ") for line in f}


@dataclass
class HostState:
    """Loop devices and mount points at one moment."""

    loops: dict[str, str]
    mounts: set[str]

    @classmethod
    def now(cls) -> HostState:
        return cls(loop_devices(), mount_points())


def host_check(before: HostState, roots: list[Path]) -> dict[str, Any]:
    """After cleanup: loop devices backed by files under roots, mounts under roots, roots
    still present (ours: leftovers); and how many loop/mount changes were made by others."""
    after = HostState.now()
    prefixes = [str(r).rstrip("/") + "/" for r in roots]

    def ours(path: str) -> bool:
        return any(path.startswith(p) or path == p[:-1] for p in prefixes)

    loops = [f"{dev} -> {back}" for dev, back in after.loops.items() if ours(back)]
    mounts = sorted(m for m in after.mounts if ours(m))
    dirs = [str(r) for r in roots if r.exists()]
    changed = set(after.loops.items()) ^ set(before.loops.items())
    other_loops = len({d for d, b in changed if not ours(b)})
    other_mounts = len({m for m in after.mounts ^ before.mounts if not ours(m)})
    return {"loops_left": loops, "mounts_left": mounts, "dirs_left": dirs,
            "clean": not (loops or mounts or dirs),
            "other_loop_changes": other_loops, "other_mount_changes": other_mounts}
