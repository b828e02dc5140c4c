"""The v2 driver on a fake cgroup2 tree under tmp_path."""

from __future__ import annotations

import os

import pytest

from lxmgr.cgroups.base import read_file
from lxmgr.cgroups.v2 import V2Driver
from lxmgr.errors import KernelError, NotSupported
from tests.unit.cgroups.conftest import FakeCgroupFs, v2_layout

ROOT = 1_000_000
DELEGATED = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


@pytest.fixture
def drv(fakefs: FakeCgroupFs) -> V2Driver:
    return V2Driver(v2_layout(fakefs), "lxmgr-test")


def me() -> tuple[int, int]:
    return os.getuid(), os.getgid()


def test_create_enables_controllers_down_to_base(drv: V2Driver) -> None:
    drv.create("c1", *me())
    root = drv.hierarchies[0].mountpoint
    want = "+cpu +cpuset +io +memory +pids"
    assert read_file(f"{root}/cgroup.subtree_control") == want
    assert read_file(f"{drv.path(drv.hierarchies[0])}/cgroup.subtree_control") == want
    # the container's own subtree_control belongs to the container
    assert read_file(f"{drv.path(drv.hierarchies[0], 'c1')}/cgroup.subtree_control") == ""
    assert read_file(f"{drv.path(drv.hierarchies[0], 'c1')}/cgroup.controllers") == \
        "cpu cpuset io memory pids"


def test_enabled_controllers_are_not_rewritten(drv: V2Driver, fakefs: FakeCgroupFs) -> None:
    root = drv.hierarchies[0].mountpoint
    fakefs.write(root, "cgroup.subtree_control", "cpu io memory pids cpuset")
    drv.create("c1", *me())
    assert read_file(f"{root}/cgroup.subtree_control") == "cpu io memory pids cpuset"


def test_only_offered_controllers_are_enabled(fakefs: FakeCgroupFs) -> None:
    drv = V2Driver(v2_layout(fakefs, ("memory", "hugetlb")), "b")
    drv.create("c1", *me())
    assert read_file(f"{drv.hierarchies[0].mountpoint}/cgroup.subtree_control") == "+memory"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_create_delegates(drv: V2Driver) -> None:
    drv.create("c1", ROOT, ROOT)
    path = drv.path(drv.hierarchies[0], "c1")
    for file in ["", *os.listdir(path)]:
        st = os.stat(os.path.join(path, file))
        expected = ROOT if file in ("", *DELEGATED) else 0
        assert (st.st_uid, st.st_gid) == (expected, expected), file


def test_nested_base_creates_every_level(fakefs: FakeCgroupFs) -> None:
    drv = V2Driver(v2_layout(fakefs), "lxmgr.slice/payload")
    drv.create("c1", *me())
    assert drv.exists("c1")
    top = os.path.join(drv.hierarchies[0].mountpoint, "lxmgr.slice")
    assert "+memory" in (read_file(f"{top}/cgroup.subtree_control") or "")


def test_attach_and_procs_paths(drv: V2Driver) -> None:
    drv.create("c1", *me())
    drv.attach("c1", 99)
    assert drv.procs_paths("c1") == [f"{drv.path(drv.hierarchies[0], 'c1')}/cgroup.procs"]
    assert drv.pids("c1") == [99]


def test_apply_limits(drv: V2Driver) -> None:
    drv.create("c1", *me())
    path = drv.path(drv.hierarchies[0], "c1")
    drv.apply_limits("c1", {"limits.cpu": "1", "limits.cpu.allowance": "50%",
                            "limits.memory": "1GiB", "limits.memory.swap": "false",
                            "limits.processes": "20"})
    assert read_file(f"{path}/cpuset.cpus") == "0"
    assert read_file(f"{path}/cpu.weight") == "50"
    assert read_file(f"{path}/memory.max") == str(1 << 30)
    assert read_file(f"{path}/memory.swap.max") == "0"
    assert read_file(f"{path}/pids.max") == "20"
    drv.apply_limits("c1", {"limits.memory": "1GiB", "limits.memory.enforce": "soft"})
    assert read_file(f"{path}/memory.max") == "max"
    assert read_file(f"{path}/memory.high") == str(1 << 30)
    assert read_file(f"{path}/cpuset.cpus") == ""
    assert read_file(f"{path}/pids.max") == "max"


def test_priorities_set_and_unset(drv: V2Driver) -> None:
    """limits.cpu.priority -> cpu.weight (LXD 5.0's numbers); unset writes 100 back. The
    swap priority has no cgroup2 file: its default and a moot value (no swap) are accepted."""
    drv.create("c1", *me())
    path = drv.path(drv.hierarchies[0], "c1")
    drv.apply_limits("c1", {"limits.cpu.priority": "2", "limits.memory.swap.priority": "10"})
    assert read_file(f"{path}/cpu.weight") == "92"
    drv.apply_limits("c1", {"limits.cpu.priority": "2", "limits.cpu.allowance": "50%",
                            "limits.memory.swap.priority": "3", "limits.memory.swap": "false"})
    assert read_file(f"{path}/cpu.weight") == "42"
    assert read_file(f"{path}/memory.swap.max") == "0"
    assert not os.path.exists(f"{path}/memory.swappiness")
    drv.apply_limits("c1", {})
    assert read_file(f"{path}/cpu.weight") == "100"
    assert read_file(f"{path}/memory.swap.max") == "max"


def test_swap_priority_refused_before_any_write(drv: V2Driver) -> None:
    drv.create("c1", *me())
    path = drv.path(drv.hierarchies[0], "c1")
    with pytest.raises(NotSupported, match="^Cannot apply 'limits.memory.swap.priority': "
                                           "cgroup2 has no memory.swappiness"):
        drv.apply_limits("c1", {"limits.cpu.priority": "0", "limits.processes": "5",
                                "limits.memory.swap.priority": "9"})
    assert read_file(f"{path}/cpu.weight") == "100"
    assert read_file(f"{path}/pids.max") == "max"


def test_apply_limits_without_controller(fakefs: FakeCgroupFs) -> None:
    drv = V2Driver(v2_layout(fakefs, ()), "b")  # like /sys/fs/cgroup/unified on hybrid
    drv.create("c1", *me())
    drv.apply_limits("c1", {})
    with pytest.raises(NotSupported, match="limits.memory"):
        drv.apply_limits("c1", {"limits.memory": "1GiB"})
    with pytest.raises(NotSupported, match="'limits.cpu.priority': the cpu controller"):
        drv.apply_limits("c1", {"limits.cpu.priority": "5"})


def test_usage(drv: V2Driver) -> None:
    drv.create("c1", *me())
    usage = drv.usage("c1")
    assert (usage.memory_bytes, usage.memory_peak_bytes, usage.swap_bytes) == (4096, 8192, 0)
    assert (usage.cpu_ns, usage.processes) == (7000, 2)


def test_usage_without_controllers_counts_procs(fakefs: FakeCgroupFs) -> None:
    drv = V2Driver(v2_layout(fakefs, ()), "b")
    drv.create("c1", *me())
    drv.attach("c1", 5)
    usage = drv.usage("c1")
    assert (usage.memory_bytes, usage.memory_peak_bytes, usage.processes) == (0, None, 1)


def test_freeze_waits_for_events(drv: V2Driver, fakefs: FakeCgroupFs) -> None:
    drv.create("c1", *me())
    path = drv.path(drv.hierarchies[0], "c1")
    with pytest.raises(KernelError, match="to freeze"):
        drv.freeze("c1", timeout=0.05)  # the fake never reports frozen by itself
    assert read_file(f"{path}/cgroup.freeze") == "1"
    fakefs.write(path, "cgroup.events", "populated 1\nfrozen 1\n")
    drv.freeze("c1")
    assert drv.is_frozen("c1")
    fakefs.write(path, "cgroup.events", "populated 1\nfrozen 0\n")
    drv.thaw("c1")
    assert read_file(f"{path}/cgroup.freeze") == "0"
    assert not drv.is_frozen("c1")


def test_kill_uses_cgroup_kill(drv: V2Driver) -> None:
    drv.create("c1", *me())
    drv.kill("c1")
    assert read_file(f"{drv.path(drv.hierarchies[0], 'c1')}/cgroup.kill") == "1"


def test_delete(drv: V2Driver) -> None:
    drv.create("c1", *me())
    os.makedirs(os.path.join(drv.path(drv.hierarchies[0], "c1"), "init.scope"))
    drv.delete("c1")
    drv.delete_base()
    assert not os.path.exists(drv.path(drv.hierarchies[0]))


def test_container_mounts(drv: V2Driver) -> None:
    assert drv.container_mounts() == [("", "cgroup2", "nsdelegate")]
