"""The v1 driver on a fake hybrid/legacy cgroupfs under tmp_path."""

from __future__ import annotations

import os
import signal

import pytest

from lxmgr.cgroups.base import read_file
from lxmgr.cgroups.v1 import V1Driver
from lxmgr.errors import InvalidConfig, KernelError, NotSupported
from tests.unit.cgroups.conftest import FakeCgroupFs, v1_layout

ROOT = 1_000_000
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


@pytest.fixture
def drv(fakefs: FakeCgroupFs) -> V1Driver:
    return V1Driver(v1_layout(fakefs), "lxmgr-test")


def owner(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


def me() -> tuple[int, int]:
    return os.getuid(), os.getgid()


def test_create_makes_every_hierarchy(drv: V1Driver, fakefs: FakeCgroupFs) -> None:
    drv.create("c1", *me())
    assert len(drv.hierarchies) == 10
    for h in drv.hierarchies:
        assert os.path.isdir(os.path.join(h.mountpoint, "lxmgr-test", "c1"))
    assert drv.exists("c1") and not drv.exists("c2")


@needs_root
def test_create_delegates_only_procs_and_tasks(drv: V1Driver) -> None:
    drv.create("c1", ROOT, ROOT + 5)
    for h in drv.hierarchies:
        path = drv.path(h, "c1")
        assert owner(path) == (ROOT, ROOT + 5)
        assert owner(drv.path(h)) == (0, 0)
        delegated = ("cgroup.procs", "tasks") if h.version == 1 else (
            "cgroup.procs", "cgroup.subtree_control", "cgroup.threads")
        for file in os.listdir(path):
            expected = (ROOT, ROOT + 5) if file in delegated else (0, 0)
            assert owner(os.path.join(path, file)) == expected, (h.name, file)


def test_cpuset_copied_into_each_new_level(drv: V1Driver) -> None:
    drv.create("c1", *me())
    cpuset = drv.layout.find("cpuset")
    assert cpuset is not None
    for level in (drv.path(cpuset), drv.path(cpuset, "c1")):
        assert read_file(f"{level}/cpuset.cpus") == "0-3"
        assert read_file(f"{level}/cpuset.mems") == "0"


def test_create_is_idempotent(drv: V1Driver) -> None:
    drv.create("c1", *me())
    drv.create("c1", *me())
    drv.create("c2", *me())
    assert drv.exists("c1") and drv.exists("c2")


def test_create_reverts_on_failure(drv: V1Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    drv.create("old", *me())
    real_chown = os.chown

    def chown(path: str, uid: int, gid: int) -> None:
        if "pids" in str(path):
            raise PermissionError(1, "Operation not permitted", path)
        real_chown(path, uid, gid)

    monkeypatch.setattr(os, "chown", chown)
    with pytest.raises(KernelError, match="Failed to delegate"):
        drv.create("new", *me())
    assert not drv.exists("new")
    assert drv.exists("old")  # the shared base and other containers stay


def test_bad_names_are_rejected(drv: V1Driver) -> None:
    for bad in ("", "..", "../x", "/abs", "a b", "a/../b"):
        with pytest.raises(InvalidConfig):
            drv.create(bad, *me())
    with pytest.raises(InvalidConfig):
        V1Driver(drv.layout, "../escape")


def test_attach_writes_every_procs_file(drv: V1Driver) -> None:
    drv.create("c1", *me())
    drv.attach("c1", 4242)
    paths = drv.procs_paths("c1")
    assert len(paths) == 10 and all(p.endswith("/lxmgr-test/c1/cgroup.procs") for p in paths)
    assert all(read_file(p) == "4242" for p in paths)
    assert drv.pids("c1") == [4242]


def test_pids_are_recursive(drv: V1Driver, fakefs: FakeCgroupFs) -> None:
    drv.create("c1", *me())
    h = drv.hierarchies[0]
    os.mkdir(os.path.join(drv.path(h, "c1"), "init.scope"))
    fakefs.write(os.path.join(drv.path(h, "c1"), "init.scope"), "cgroup.procs", "7\n9\n")
    fakefs.write(drv.path(h, "c1"), "cgroup.procs", "3\n")
    assert drv.pids("c1") == [3, 7, 9]


def test_apply_limits(drv: V1Driver) -> None:
    drv.create("c1", *me())
    drv.apply_limits("c1", {"limits.cpu": "2", "limits.memory": "50%",
                            "limits.memory.swap": "false", "limits.processes": "20",
                            "limits.cpu.allowance": "25ms/100ms"}, host_memory=1 << 30)
    find = drv.layout.find

    def f(controller: str, file: str) -> str | None:
        h = find(controller)
        assert h is not None
        return read_file(os.path.join(drv.path(h, "c1"), file))

    assert f("cpuset", "cpuset.cpus") == "0-1"
    assert f("memory", "memory.limit_in_bytes") == str(512 << 20)
    assert f("memory", "memory.memsw.limit_in_bytes") == str(512 << 20)
    assert f("pids", "pids.max") == "20"
    assert f("cpu", "cpu.cfs_quota_us") == "25000"
    drv.apply_limits("c1", {}, host_cpus=2)
    assert f("cpuset", "cpuset.cpus") == "0-1"
    assert f("memory", "memory.limit_in_bytes") == "-1"
    assert f("pids", "pids.max") == "max"
    assert f("cpu", "cpu.cfs_quota_us") == "-1"
    assert f("cpu", "cpu.shares") == "1024"


def test_priorities_set_and_unset(drv: V1Driver) -> None:
    """limits.cpu.priority -> cpu.shares, limits.memory.swap.priority -> memory.swappiness
    (LXD 5.0's numbers); unsetting them writes the defaults back."""
    drv.create("c1", *me())
    cpu_h, memory_h = drv.layout.find("cpu"), drv.layout.find("memory")
    assert cpu_h is not None and memory_h is not None
    cpu, memory = drv.path(cpu_h, "c1"), drv.path(memory_h, "c1")
    drv.apply_limits("c1", {"limits.cpu.priority": "2",
                            "limits.memory.swap.priority": "4"})
    assert read_file(f"{cpu}/cpu.shares") == "1016"
    assert read_file(f"{memory}/memory.swappiness") == "66"
    drv.apply_limits("c1", {"limits.cpu.priority": "2", "limits.cpu.allowance": "50%",
                            "limits.memory.swap.priority": "4", "limits.memory.swap": "false"})
    assert read_file(f"{cpu}/cpu.shares") == "504"
    assert read_file(f"{memory}/memory.swappiness") == "0"
    drv.apply_limits("c1", {})
    assert read_file(f"{cpu}/cpu.shares") == "1024"
    assert read_file(f"{memory}/memory.swappiness") == "60"


def test_priority_without_its_controller(fakefs: FakeCgroupFs) -> None:
    layout = v1_layout(fakefs)
    drv = V1Driver(type(layout)(layout.mode, [h for h in layout.hierarchies
                                              if h.name not in ("cpu", "memory")]), "b")
    drv.create("c1", *me())
    drv.apply_limits("c1", {"limits.cpu.priority": "10"})  # the default needs nothing
    with pytest.raises(NotSupported, match="'limits.cpu.priority': the cpu controller"):
        drv.apply_limits("c1", {"limits.cpu.priority": "5"})
    with pytest.raises(NotSupported, match="'limits.memory.swap.priority': the memory"):
        drv.apply_limits("c1", {"limits.memory.swap.priority": "5"})


def test_apply_limits_default_cpus_come_from_base(drv: V1Driver, fakefs: FakeCgroupFs) -> None:
    drv.create("c1", *me())
    cpuset = drv.layout.find("cpuset")
    assert cpuset is not None
    fakefs.write(drv.path(cpuset), "cpuset.effective_cpus", "1-2")
    assert drv.available_cpus() == [1, 2]
    drv.apply_limits("c1", {"limits.cpu": "1"})
    assert read_file(f"{drv.path(cpuset, 'c1')}/cpuset.cpus") == "1"


def test_apply_limits_bad_value_names_key(drv: V1Driver) -> None:
    drv.create("c1", *me())
    with pytest.raises(InvalidConfig, match="limits.processes"):
        drv.apply_limits("c1", {"limits.processes": "lots"})


def test_missing_controller(fakefs: FakeCgroupFs) -> None:
    layout = v1_layout(fakefs)
    no_pids = type(layout)(layout.mode, [h for h in layout.hierarchies if h.name != "pids"])
    drv = V1Driver(no_pids, "b")
    drv.create("c1", *me())
    drv.apply_limits("c1", {})  # resets skip what is not there
    with pytest.raises(NotSupported, match="limits.processes"):
        drv.apply_limits("c1", {"limits.processes": "5"})
    assert drv.usage("c1").processes == 0  # counted from cgroup.procs


def test_write_failure_names_the_file(drv: V1Driver) -> None:
    drv.create("c1", *me())
    pids = drv.layout.find("pids")
    assert pids is not None
    os.unlink(os.path.join(drv.path(pids, "c1"), "pids.max"))
    with pytest.raises(KernelError, match="c1/pids.max"):
        drv.apply_limits("c1", {"limits.processes": "5"})


def test_usage(drv: V1Driver) -> None:
    drv.create("c1", *me())
    usage = drv.usage("c1")
    assert (usage.memory_bytes, usage.memory_peak_bytes, usage.swap_bytes) == (4096, 8192, 2048)
    assert (usage.cpu_ns, usage.processes) == (5000, 3)


def test_freeze_thaw(drv: V1Driver) -> None:
    drv.create("c1", *me())
    assert not drv.is_frozen("c1")
    drv.freeze("c1")
    assert drv.is_frozen("c1")
    drv.thaw("c1")
    assert not drv.is_frozen("c1")


def test_freeze_waits_for_freezing_to_settle(drv: V1Driver,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    drv.create("c1", *me())
    import lxmgr.cgroups.v1 as v1mod
    states = iter(["FREEZING", "FREEZING", "FROZEN"])
    monkeypatch.setattr(v1mod, "read_file", lambda path: next(states))
    drv.freeze("c1")
    monkeypatch.setattr(v1mod, "read_file", lambda path: "FREEZING")
    with pytest.raises(KernelError, match="Timed out"):
        drv.freeze("c1", timeout=0.05)


def test_kill_freezes_signals_thaws(drv: V1Driver, fakefs: FakeCgroupFs,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    drv.create("c1", *me())
    h, freezer = drv.hierarchies[0], drv.layout.find("freezer")
    assert freezer is not None
    fakefs.write(drv.path(h, "c1"), "cgroup.procs", "111\n222\n")
    killed: list[tuple[int, int, str | None]] = []

    def kill(pid: int, sig: int) -> None:
        state = read_file(os.path.join(drv.path(freezer, "c1"), "freezer.state"))
        killed.append((pid, sig, state))
        fakefs.write(drv.path(h, "c1"), "cgroup.procs", "")

    monkeypatch.setattr(os, "kill", kill)
    drv.kill("c1")
    assert killed[0] == (111, signal.SIGKILL, "FROZEN")
    assert not drv.is_frozen("c1")


def test_kill_times_out(drv: V1Driver, fakefs: FakeCgroupFs,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    drv.create("c1", *me())
    fakefs.write(drv.path(drv.hierarchies[0], "c1"), "cgroup.procs", "111\n")
    monkeypatch.setattr(os, "kill", lambda pid, sig: None)
    with pytest.raises(KernelError, match="1 processes left"):
        drv.kill("c1", timeout=0.05)


def test_delete_depth_first_and_tolerant(drv: V1Driver) -> None:
    drv.create("c1", *me())
    for h in drv.hierarchies[:3]:
        os.makedirs(os.path.join(drv.path(h, "c1"), "system.slice"))
        os.mkdir(os.path.join(drv.path(h, "c1"), "system.slice", "x.service"))
    os.rmdir(drv.path(drv.hierarchies[-1], "c1"))  # already gone in one hierarchy
    drv.delete("c1")
    assert not drv.exists("c1")
    drv.delete("c1")
    drv.delete_base()
    assert not any(os.path.exists(drv.path(h)) for h in drv.hierarchies)


def test_delete_busy_gives_up(drv: V1Driver, fakefs: FakeCgroupFs,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import lxmgr.cgroups.base as base
    monkeypatch.setattr(base, "RMDIR_TIMEOUT", 0.05)
    drv.create("c1", *me())
    fakefs.write(drv.path(drv.hierarchies[0], "c1"), "cgroup.procs", "5\n")
    with pytest.raises(KernelError, match="busy"):
        drv.delete("c1")
    assert drv.exists("c1")


def test_container_mounts_hybrid(drv: V1Driver) -> None:
    mounts = drv.container_mounts()
    assert mounts[:3] == [("", "tmpfs", "mode=755,size=4096k"), ("unified", "cgroup2", ""),
                          ("systemd", "cgroup", "none,name=systemd")]
    assert ("memory", "cgroup", "memory") in mounts
    assert ("cpuacct", "cgroup", "cpuacct") in mounts
    assert len(mounts) == 11


def test_legacy_has_no_unified(fakefs: FakeCgroupFs) -> None:
    drv = V1Driver(v1_layout(fakefs, with_unified=False), "b")
    assert len(drv.hierarchies) == 9
    assert all(m[1] != "cgroup2" for m in drv.container_mounts())
