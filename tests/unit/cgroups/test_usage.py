"""CPU time and memory figures of `lxmgr info` and GET /1.0/instances/NAME/state, read from
fake cgroup trees shaped like the kernel's: a hybrid host (v1 controllers, a cgroup2 tree
without controllers, as this host), a legacy one, and pure cgroup2 with and without
controllers."""

from __future__ import annotations

import os
from pathlib import Path

from lxmgr.cgroups import base as cgroup_base
from lxmgr.cgroups.detect import Hierarchy, Layout
from lxmgr.cgroups.v1 import V1Driver
from lxmgr.cgroups.v2 import V2Driver
from lxmgr.instances import metrics_cgroup as mcg
from tests.unit.cgroups.conftest import FakeCgroupFs, v1_layout, v2_layout

# cpu.stat of a container that busy-looped ~1.8 s, as a 6.x kernel writes it (controller-less
# cgroup2 directories have the first three lines only).
CPU_STAT = ("usage_usec 1854216\nuser_usec 1689736\nsystem_usec 164480\n"
            "core_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\n"
            "throttled_usec 0\nnr_bursts 0\nburst_usec 0\n")


def me() -> tuple[int, int]:
    return os.getuid(), os.getgid()


def test_read_cpu_stat_ns(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text(CPU_STAT)
    assert cgroup_base.read_cpu_stat_ns(str(tmp_path)) == 1_854_216_000
    (tmp_path / "cpu.stat").write_text("user_usec 5\n")
    assert cgroup_base.read_cpu_stat_ns(str(tmp_path)) is None
    assert cgroup_base.read_cpu_stat_ns(str(tmp_path / "gone")) is None


def test_v2_cpu_time_without_the_cpu_controller(fakefs: FakeCgroupFs) -> None:
    """A cgroup2 tree offering no controller (the unified tree of a hybrid host) still has
    cpu.stat: the v2 driver reports its time, in ns, and counts processes itself."""
    drv = V2Driver(v2_layout(fakefs, ()), "b")
    drv.create("c1", *me())
    drv.attach("c1", 5)
    (Path(drv.path(drv.hierarchies[0], "c1")) / "cpu.stat").write_text(CPU_STAT)
    usage = drv.usage("c1")
    assert (usage.cpu_ns, usage.processes, usage.memory_bytes) == (1_854_216_000, 1, 0)


def test_v2_usage_with_controllers(fakefs: FakeCgroupFs) -> None:
    drv = V2Driver(v2_layout(fakefs), "b")
    drv.create("c1", *me())
    path = Path(drv.path(drv.hierarchies[0], "c1"))
    (path / "cpu.stat").write_text(CPU_STAT)
    (path / "memory.current").write_text("44150784\n")
    (path / "memory.peak").unlink()  # kernels before 5.19 have no memory.peak
    (path / "pids.current").write_text("12\n")
    usage = drv.usage("c1")
    assert (usage.cpu_ns, usage.memory_bytes, usage.memory_peak_bytes, usage.processes) == \
        (1_854_216_000, 44150784, None, 12)


def test_v1_cpu_time_is_cpuacct_usage(fakefs: FakeCgroupFs) -> None:
    drv = V1Driver(v1_layout(fakefs), "b")
    drv.create("c1", *me())
    cpuacct = drv.layout.find("cpuacct")
    assert cpuacct is not None
    (Path(drv.path(cpuacct, "c1")) / "cpuacct.usage").write_text("1854316299\n")
    assert drv.usage("c1").cpu_ns == 1_854_316_299


def test_v1_without_cpuacct_reads_the_unified_tree(fakefs: FakeCgroupFs) -> None:
    layout = v1_layout(fakefs)
    drv = V1Driver(Layout(layout.mode, [h for h in layout.hierarchies
                                        if h.name != "cpuacct"]), "b")
    drv.create("c1", *me())
    assert drv.layout.unified is not None
    (Path(drv.path(drv.layout.unified, "c1")) / "cpu.stat").write_text(CPU_STAT)
    assert drv.usage("c1").cpu_ns == 1_854_216_000


def test_legacy_without_cpuacct_is_zero(fakefs: FakeCgroupFs) -> None:
    layout = v1_layout(fakefs, with_unified=False)
    drv = V1Driver(Layout(layout.mode, [h for h in layout.hierarchies
                                        if h.name != "cpuacct"]), "b")
    drv.create("c1", *me())
    assert drv.usage("c1").cpu_ns == 0


# -- memory.total and swap_usage_peak of the state ------------------------------------------

def _v1(tmp_path: Path, memory: bool = True) -> mcg.CgroupFiles:
    names = ("memory", "pids") if memory else ("pids",)
    hierarchies = [Hierarchy(c, str(tmp_path / c), (c,), 1) for c in names]
    for h in hierarchies:
        (Path(h.mountpoint) / "lxmgr" / "c1").mkdir(parents=True)
    return mcg.CgroupFiles(cgroup_base.load("v1", layout=Layout("legacy", hierarchies)), "c1")


def test_memory_state_v1(tmp_path: Path) -> None:
    files = _v1(tmp_path)
    mem = tmp_path / "memory/lxmgr/c1"
    (mem / "memory.limit_in_bytes").write_text("536870912\n")
    (mem / "memory.max_usage_in_bytes").write_text("3000\n")
    (mem / "memory.memsw.max_usage_in_bytes").write_text("3500\n")
    assert mcg.read_memory_state(files) == {"total": 512 << 20, "swap_usage_peak": 500}
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # unlimited
    (mem / "memory.memsw.max_usage_in_bytes").unlink()  # no swap accounting
    assert mcg.read_memory_state(files) == {"total": cgroup_base.host_memory_bytes(),
                                            "swap_usage_peak": 0}


def test_memory_state_without_memory_controller(tmp_path: Path) -> None:
    assert mcg.read_memory_state(_v1(tmp_path, memory=False)) == {}


def test_memory_state_v2(tmp_path: Path) -> None:
    top = tmp_path / "unified"
    (top / "lxmgr" / "c1").mkdir(parents=True)
    (top / "lxmgr/c1/cgroup.controllers").write_text("cpu memory pids\n")
    (top / "lxmgr/c1/memory.max").write_text("268435456\n")
    driver = cgroup_base.load("v2", layout=Layout("unified", [
        Hierarchy("", str(top), ("cpu", "memory", "pids"), 2)]))
    files = mcg.CgroupFiles(driver, "c1")
    assert mcg.read_memory_state(files) == {"total": 256 << 20, "swap_usage_peak": 0}
    (top / "lxmgr/c1/memory.swap.peak").write_text("8192\n")  # kernel 6.5+
    (top / "lxmgr/c1/memory.max").write_text("max\n")
    assert mcg.read_memory_state(files) == {"total": cgroup_base.host_memory_bytes(),
                                            "swap_usage_peak": 8192}
