"""Kernel tests for lxmgr.cgroups on the real hierarchies, each under a unique base.

Everything a test creates (cgroups, processes) is removed in teardown, even on failure: the
`harness` fixture kills only the processes it started (by pid), then deletes its cgroups.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from lxmgr.cgroups import Layout, detect, load
from lxmgr.cgroups.base import CgroupDriver, read_file, read_keyed

pytestmark = pytest.mark.kernel

ROOT_UID = 1_000_000  # host uid of a container root


class Harness:
    """A driver under a unique base plus the processes and cgroups a test made."""

    def __init__(self, driver: CgroupDriver) -> None:
        self.driver = driver
        self.names: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def create(self, uid: int = ROOT_UID) -> str:
        name = f"c{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        self.driver.create(name, uid, uid)
        return name

    def spawn_inside(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start argv already inside the container cgroup: the shell joins, then execs."""
        paths = " ".join(self.driver.procs_paths(name))
        script = f'for p in {paths}; do echo $$ > "$p" || exit 99; done; exec "$@"'
        proc = subprocess.Popen(["sh", "-c", script, "sh", *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        errors: list[str] = []
        for name in self.names:
            try:
                if self.driver.exists(name):
                    self.driver.kill(name)
            except Exception as err:  # keep cleaning; report at the end
                errors.append(f"kill {name}: {err}")
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for name in self.names:
            try:
                self.driver.delete(name)
            except Exception as err:
                errors.append(f"delete {name}: {err}")
        try:
            self.driver.delete_base()
        except Exception as err:
            errors.append(f"delete base: {err}")
        left = [self.driver.path(h) for h in self.driver.hierarchies
                if os.path.exists(self.driver.path(h))]
        assert not errors and not left, (errors, left)


def _unique_base() -> str:
    return f"lxmgr-test-{uuid.uuid4().hex}"


@pytest.fixture
def layout() -> Layout:
    return detect()


@pytest.fixture
def v1(layout: Layout) -> Iterator[Harness]:
    if layout.driver_name != "v1":
        pytest.skip("host has no cgroup v1 controllers")
    harness = Harness(load("v1", _unique_base(), layout))
    try:
        yield harness
    finally:
        harness.cleanup()


@pytest.fixture
def unified(layout: Layout) -> Iterator[Harness]:
    if layout.unified is None:
        pytest.skip("no cgroup2 mount")
    harness = Harness(load("v2", _unique_base(), Layout("unified", [layout.unified])))
    try:
        yield harness
    finally:
        harness.cleanup()


def _owner(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


def _dir(drv: CgroupDriver, controller: str, name: str | None = None) -> str:
    h = drv.layout.find(controller)
    assert h is not None, f"{controller} is not mounted"
    return drv.path(h, name)


def _state(pid: int) -> str:
    status = read_keyed(f"/proc/{pid}/status")
    return status["State:"].split()[0]


def _cgroup_lines(pid: int) -> list[str]:
    return (read_file(f"/proc/{pid}/cgroup") or "").splitlines()


def test_create_delegates_only_procs_files(v1: Harness) -> None:
    name = v1.create()
    for h in v1.driver.hierarchies:
        path = v1.driver.path(h, name)
        assert _owner(path) == (ROOT_UID, ROOT_UID)
        assert _owner(os.path.join(path, "cgroup.procs")) == (ROOT_UID, ROOT_UID)
        assert _owner(v1.driver.path(h)) == (0, 0)
        if h.version == 2:
            assert _owner(os.path.join(path, "cgroup.subtree_control")) == (ROOT_UID, ROOT_UID)
        else:
            assert _owner(os.path.join(path, "tasks")) == (ROOT_UID, ROOT_UID)
    memory = _dir(v1.driver, "memory", name)
    assert _owner(os.path.join(memory, "memory.limit_in_bytes")) == (0, 0)
    v1.driver.create(name, ROOT_UID, ROOT_UID)  # idempotent


def test_limits_attach_usage_freeze_kill(v1: Harness) -> None:
    drv = v1.driver
    name = v1.create()
    drv.apply_limits(name, {"limits.memory": "128MiB", "limits.processes": "50",
                            "limits.cpu.allowance": "25ms/100ms", "limits.cpu": "1"})
    mem, pids, cpu, cpuset = (_dir(drv, c, name) for c in ("memory", "pids", "cpu", "cpuset"))
    assert read_file(f"{mem}/memory.limit_in_bytes") == str(128 << 20)
    assert read_file(f"{pids}/pids.max") == "50"
    assert read_file(f"{cpu}/cpu.cfs_quota_us") == "25000"
    assert read_file(f"{cpuset}/cpuset.cpus") == "0"

    proc = v1.spawn(["sleep", "30"])
    drv.attach(name, proc.pid)
    assert all(line.endswith(f"/{drv.base}/{name}") for line in _cgroup_lines(proc.pid))
    assert drv.pids(name) == [proc.pid]
    usage = drv.usage(name)
    assert usage.processes == 1 and usage.memory_peak_bytes is not None

    drv.freeze(name)
    assert drv.is_frozen(name)
    assert _state(proc.pid) == "D"  # frozen tasks sit in the refrigerator
    drv.thaw(name)
    assert not drv.is_frozen(name)
    assert _state(proc.pid) == "S"

    drv.apply_limits(name, {})  # every key unset -> defaults, live
    assert read_file(f"{pids}/pids.max") == "max"
    assert read_file(f"{cpu}/cpu.cfs_quota_us") == "-1"
    assert int(read_file(f"{mem}/memory.limit_in_bytes") or 0) > 1 << 60
    assert read_file(f"{cpuset}/cpuset.cpus") == read_file(f"{_dir(drv, 'cpuset')}/cpuset.cpus")

    drv.kill(name)
    assert proc.wait(timeout=10) == -9
    assert drv.pids(name) == []
    drv.delete(name)
    assert not drv.exists(name)


def test_fork_bomb_is_contained(v1: Harness) -> None:
    drv = v1.driver
    name = v1.create()
    drv.apply_limits(name, {"limits.processes": "20"})
    loop = "while :; do (sleep 60 &) 2>/dev/null; done"
    v1.spawn_inside(name, ["sh", "-c", loop])
    pids_dir = _dir(drv, "pids", name)
    deadline = time.monotonic() + 10
    while int(read_keyed(f"{pids_dir}/pids.events").get("max", "0")) == 0:
        assert time.monotonic() < deadline, "the loop never hit pids.max"
        time.sleep(0.05)
    assert int(read_file(f"{pids_dir}/pids.current") or 0) <= 20
    seen = drv.pids(name)
    assert len(seen) > 10
    drv.kill(name)
    assert drv.pids(name) == []
    assert all(not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z" for pid in seen)


def test_memory_hog_is_oom_killed_inside_its_cgroup(v1: Harness) -> None:
    drv = v1.driver
    name = v1.create()
    drv.apply_limits(name, {"limits.memory": "64MiB", "limits.memory.swap": "false"})
    hog = v1.spawn_inside(name, [sys.executable, "-c", "x = b'x' * (200 << 20)"])
    assert hog.wait(timeout=60) == -9
    mem = _dir(drv, "memory", name)
    assert int(read_keyed(f"{mem}/memory.oom_control")["oom_kill"]) >= 1
    assert (drv.usage(name).memory_peak_bytes or 0) <= 64 << 20


def test_v2_core_files_on_unified_mount(unified: Harness) -> None:
    drv = unified.driver
    name = unified.create()
    path = drv.path(drv.hierarchies[0], name)
    assert _owner(os.path.join(path, "cgroup.threads")) == (ROOT_UID, ROOT_UID)
    proc = unified.spawn(["sleep", "30"])
    drv.attach(name, proc.pid)
    assert f"0::/{drv.base}/{name}" in _cgroup_lines(proc.pid)
    drv.freeze(name)
    assert read_keyed(f"{path}/cgroup.events")["frozen"] == "1"
    assert drv.is_frozen(name)
    drv.thaw(name)
    assert not drv.is_frozen(name)
    drv.kill(name)
    assert proc.wait(timeout=10) == -9
    drv.delete(name)
    assert not os.path.exists(path)
