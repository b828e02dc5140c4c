"""A fake cgroupfs under tmp_path: mkdir fills in control files the way the kernel would."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lxmgr.cgroups.detect import Hierarchy, Layout

V1_FILES: dict[str, dict[str, str]] = {
    "": {"cgroup.procs": "", "tasks": "", "notify_on_release": "0"},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"},
    "cpuacct": {"cpuacct.usage": "5000"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.effective_cpus": ""},
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.soft_limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.swappiness": "60",
        "memory.usage_in_bytes": "4096",
        "memory.max_usage_in_bytes": "8192",
        "memory.memsw.usage_in_bytes": "6144",
    },
    "pids": {"pids.max": "max", "pids.current": "3"},
    "freezer": {"freezer.state": "THAWED"},
}
V2_FILES = {
    "": {"cgroup.procs": "", "cgroup.threads": "", "cgroup.subtree_control": "",
         "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0", "cgroup.kill": "",
         "cpu.stat": "usage_usec 7\nuser_usec 5\n"},
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "cpuset": {"cpuset.cpus": "", "cpuset.cpus.effective": "0-3"},
    "memory": {"memory.max": "max", "memory.high": "max", "memory.swap.max": "max",
               "memory.current": "4096", "memory.peak": "8192", "memory.swap.current": "0"},
    "pids": {"pids.max": "max", "pids.current": "2"},
    "io": {},
}
ALL_V1 = ("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids")


class FakeCgroupFs:
    """Hierarchies under `root`; `mkdir` and `rmdir` below it behave like cgroupfs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kinds: dict[str, Hierarchy] = {}

    def add(self, h: Hierarchy, **root_files: str) -> Hierarchy:
        self.kinds[h.mountpoint] = h
        os.makedirs(h.mountpoint)
        self.populate(h, h.mountpoint)
        for file, value in root_files.items():
            self.write(h.mountpoint, file.replace("__", "."), value)
        return h

    def hierarchy_of(self, path: str) -> Hierarchy | None:
        for mount, h in self.kinds.items():
            if path == mount or path.startswith(mount + "/"):
                return h
        return None

    def populate(self, h: Hierarchy, path: str) -> None:
        if h.version == 1:
            groups = ["", *h.controllers]
            files = {k: v for g in groups for k, v in V1_FILES.get(g, {}).items()}
        else:
            parent = os.path.dirname(path)
            offered = [c.lstrip("+") for c in self.read(parent, "cgroup.subtree_control").split()]
            if path == h.mountpoint:
                offered = list(h.controllers)
            files = {k: v for g in ["", *offered] for k, v in V2_FILES.get(g, {}).items()}
            files["cgroup.controllers"] = " ".join(offered)
        for file, value in files.items():
            self.write(path, file, value)

    @staticmethod
    def write(path: str, file: str, value: str) -> None:
        Path(path, file).write_text(value)

    @staticmethod
    def read(path: str, file: str) -> str:
        p = Path(path, file)
        return p.read_text().strip() if p.exists() else ""


def v1_layout(fs: FakeCgroupFs, with_unified: bool = True) -> Layout:
    """A hybrid (or legacy) layout like this host's, rooted in the fake tree."""
    root = fs.root
    for c in ALL_V1:
        extra = {"cpuset__cpus": "0-3", "cpuset__mems": "0",
                 "cpuset__effective_cpus": "0-3"} if c == "cpuset" else {}
        fs.add(Hierarchy(c, str(root / c), (c,), 1), **extra)
    fs.add(Hierarchy("name=systemd", str(root / "systemd"), (), 1))
    if with_unified:
        fs.add(Hierarchy("unified", str(root / "unified"), (), 2))
    return Layout("hybrid" if with_unified else "legacy", list(fs.kinds.values()))


def v2_layout(fs: FakeCgroupFs, controllers: tuple[str, ...] = ("cpu", "cpuset", "io",
                                                                  "memory", "pids")) -> Layout:
    """A pure cgroup2 layout whose root offers `controllers`."""
    h = fs.add(Hierarchy("unified", str(fs.root / "cg2"), controllers, 2))
    return Layout("unified", [h])


@pytest.fixture
def fakefs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCgroupFs]:
    fs = FakeCgroupFs(tmp_path)
    real_mkdir: Callable[..., None] = os.mkdir
    real_rmdir: Callable[..., None] = os.rmdir

    def mkdir(path: str, mode: int = 0o777, *args: object, **kw: object) -> None:
        real_mkdir(path, mode)
        h = fs.hierarchy_of(str(path))
        if h is not None:
            fs.populate(h, str(path))

    def rmdir(path: str, *args: object, **kw: object) -> None:
        if fs.hierarchy_of(str(path)) is None:
            real_rmdir(path)
            return
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        entries = os.listdir(path)
        if any(os.path.isdir(os.path.join(path, e)) for e in entries):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        if FakeCgroupFs.read(path, "cgroup.procs"):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for e in entries:
            os.unlink(os.path.join(path, e))
        real_rmdir(path)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "rmdir", rmdir)
    yield fs
