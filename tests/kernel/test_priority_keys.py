"""limits.cpu.priority and limits.memory.swap.priority on real cgroups: a booted container
gets LXD 5.0's cpu.shares and memory.swappiness at start, live changes and resets (v1, the
driver of this hybrid host); the v2 driver on the host's controller-less cgroup2 mount
refuses what it cannot apply and applies the defaults."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from lxmgr.cgroups import Layout, detect, load
from lxmgr.errors import NotSupported
from tests.kernel.conftest import exec_out, wait_running
from tests.kernel.test_cgroups import Harness

pytestmark = pytest.mark.kernel


def cgroup_file(manager, name: str, controller: str, filename: str) -> str:  # type: ignore[no-untyped-def]
    h = manager.cgroups.layout.find(controller)
    with open(os.path.join(manager.cgroups.path(h, name), filename)) as f:
        return f.read().strip()


def test_priorities_at_start_live_and_unset(manager) -> None:  # type: ignore[no-untyped-def]
    if manager.cgroups.name != "v1":
        pytest.skip("the booted-container checks read v1 files (cpu.shares, memory.swappiness)")
    name = f"p{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", config={"limits.cpu.priority": "3",
                                           "limits.memory.swap.priority": "2"})
    manager.start(name)
    assert wait_running(manager, name) == "running"
    assert cgroup_file(manager, name, "cpu", "cpu.shares") == "1017"  # 1024 - (10 - 3)
    assert cgroup_file(manager, name, "memory", "memory.swappiness") == "68"  # 70 - 2
    # What the container itself sees through its cgroup namespace.
    _, seen, _ = exec_out(manager, name, ["cat", "/sys/fs/cgroup/cpu/cpu.shares",
                                          "/sys/fs/cgroup/memory/memory.swappiness"])
    assert seen.split() == ["1017", "68"]

    # Live: no restart needed, the files change at once.
    assert manager.update_config(name, {"limits.cpu.priority": "0",
                                        "limits.cpu.allowance": "50%",
                                        "limits.memory.swap.priority": "0"}) == []
    assert cgroup_file(manager, name, "cpu", "cpu.shares") == "502"  # 512 - 10
    assert cgroup_file(manager, name, "memory", "memory.swappiness") == "70"
    manager.update_config(name, {"limits.memory.swap": "false"})
    assert cgroup_file(manager, name, "memory", "memory.swappiness") == "0"

    manager.update_config(name, {}, unset=["limits.cpu.priority", "limits.cpu.allowance",
                                           "limits.memory.swap.priority",
                                           "limits.memory.swap"])
    assert cgroup_file(manager, name, "cpu", "cpu.shares") == "1024"
    assert cgroup_file(manager, name, "memory", "memory.swappiness") == "60"
    assert manager.state(name)["status"] == "Running"


@pytest.fixture
def unified() -> Iterator[Harness]:
    """The v2 driver on the host's cgroup2 mount (controller-less on a hybrid host)."""
    layout = detect()
    if layout.unified is None:
        pytest.skip("no cgroup2 mount")
    base = f"lxmgr-test-{uuid.uuid4().hex}"
    harness = Harness(load("v2", base, Layout("unified", [layout.unified])))
    try:
        yield harness
    finally:
        harness.cleanup()


def test_v2_refuses_what_it_cannot_apply(unified: Harness) -> None:
    drv = unified.driver
    name = unified.create()
    drv.apply_limits(name, {"limits.cpu.priority": "10",
                            "limits.memory.swap.priority": "10"})  # the defaults: nothing to do
    with pytest.raises(NotSupported, match="^Cannot apply 'limits.memory.swap.priority': "
                                           "cgroup2 has no memory.swappiness"):
        drv.apply_limits(name, {"limits.memory.swap.priority": "4"})
    path = drv.path(drv.hierarchies[0], name)
    assert not os.path.exists(f"{path}/memory.swappiness")
    if "cpu" not in drv.layout.unified.controllers:  # type: ignore[union-attr]
        with pytest.raises(NotSupported, match="'limits.cpu.priority': the cpu controller"):
            drv.apply_limits(name, {"limits.cpu.priority": "4"})
    else:  # a pure cgroup2 host: the weight lands
        drv.apply_limits(name, {"limits.cpu.priority": "4"})
        with open(f"{path}/cpu.weight") as f:
            assert f.read().strip() == "94"
