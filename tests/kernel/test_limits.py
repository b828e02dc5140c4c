"""cgroup limits from config and profiles on a real container: applied at start, changed
live, read back as usage; a fork bomb and a memory hog stay inside their container."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from lxmgr.errors import InvalidConfig
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


def cgroup_file(manager, name: str, controller: str, filename: str) -> str:  # type: ignore[no-untyped-def]
    h = manager.cgroups.layout.find(controller)
    with open(os.path.join(manager.cgroups.path(h, name), filename)) as f:
        return f.read().strip()


def boot(manager, **kwargs) -> str:  # type: ignore[no-untyped-def]
    name = f"l{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", **kwargs)
    manager.start(name)
    assert wait_running(manager, name) == "running"
    return name


def test_limits_apply_at_start_and_live(manager) -> None:  # type: ignore[no-untyped-def]
    name = boot(manager, config={"limits.memory": "256MiB", "limits.processes": "300",
                                 "limits.cpu.allowance": "25ms/100ms", "limits.cpu": "1"})
    assert cgroup_file(manager, name, "memory", "memory.limit_in_bytes") == str(256 << 20)
    assert cgroup_file(manager, name, "pids", "pids.max") == "300"
    assert cgroup_file(manager, name, "cpu", "cpu.cfs_quota_us") == "25000"
    assert cgroup_file(manager, name, "cpuset", "cpuset.cpus") in ("0", "1")
    _, nproc, _ = exec_out(manager, name, ["nproc"])
    assert nproc.strip() == "1"
    # Live change, effective at once, no restart needed.
    assert manager.update_config(name, {"limits.memory": "300MiB"}) == []
    assert cgroup_file(manager, name, "memory", "memory.limit_in_bytes") == str(300 << 20)
    manager.update_config(name, {}, unset=["limits.processes"])
    assert cgroup_file(manager, name, "pids", "pids.max") == "max"
    usage = manager.state(name)
    assert usage["memory"]["usage"] > 1 << 20 and usage["cpu"]["usage"] > 0
    assert usage["processes"] >= 3
    # The container's root cannot raise its own limit.
    code, _, _ = exec_out(manager, name, ["sh", "-c", "echo -1 > "
                                          "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
    assert code != 0
    assert cgroup_file(manager, name, "memory", "memory.limit_in_bytes") == str(300 << 20)


def test_profile_limits_stack_under_instance_config(manager) -> None:  # type: ignore[no-untyped-def]
    name = boot(manager, profiles=["default", "small"], config={"limits.processes": "600"})
    assert cgroup_file(manager, name, "memory", "memory.limit_in_bytes") == str(256 << 20)
    assert cgroup_file(manager, name, "pids", "pids.max") == "600"  # instance config wins


def test_fork_bomb_is_contained(manager) -> None:  # type: ignore[no-untyped-def]
    name = boot(manager, config={"limits.processes": "200"})
    exec_out(manager, name, ["sh", "-c", "for i in $(seq 400); do sleep 60 & done 2>/dev/null"])
    assert int(cgroup_file(manager, name, "pids", "pids.current")) <= 200
    deadline = time.monotonic() + 10
    while True:  # on a busy host forked children may not have exec'd sleep yet
        sleepers = []
        for pid in manager.cgroups.pids(name):  # processes of our own container only
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "sleep":
                        sleepers.append(pid)
            except FileNotFoundError:
                pass
        if len(sleepers) > 100 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 100 < len(sleepers) < 200
    for pid in sleepers:
        os.kill(pid, signal.SIGKILL)
    assert manager.state(name)["status"] == "Running"
    assert exec_out(manager, name, ["true"])[0] == 0


def test_memory_hog_is_oom_killed_inside_its_cgroup(manager) -> None:  # type: ignore[no-untyped-def]
    name = boot(manager, config={"limits.memory": "128MiB", "limits.memory.swap": "false"})
    pid = manager.state(name)["pid"]
    code, _, _ = exec_out(manager, name, ["perl", "-e", "my $x = 'x' x (400*1024*1024); "
                                          "print length($x)"])
    assert code == 137  # SIGKILL from the OOM killer
    oom = cgroup_file(manager, name, "memory", "memory.oom_control")
    assert "oom_kill 0" not in oom
    assert os.path.exists(f"/proc/{pid}")  # PID 1 survived
    assert exec_out(manager, name, ["true"])[0] == 0


def test_invalid_limits_name_the_key(manager) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match="limits.memory"):
        manager.create("badlimit", "debian", config={"limits.memory": "lots"})
    with pytest.raises(InvalidConfig, match="limits.cpu.allowance"):
        manager.create("badlimit", "debian", config={"limits.cpu.allowance": "150%"})
    assert manager.list() == []
