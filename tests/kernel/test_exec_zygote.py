"""exec through the supervisor's exec zygote (lxmgr.supervisor.zygote): the command lands in
exactly the container's cgroups without a cgroup migration per exec, execs survive the
zygote's death, a reboot gets a new zygote, and an exec into a quiet container completes next
to a fork bomb.

Latency figures are bench/noisy.py's job; the bounds here are only there so a hang fails."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from lxmgr.supervisor.zygote import can_host
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel

BOMB_SECONDS = 15  # the fork bomb's own deadline (the container's stop kills it anyway)
GENEROUS = 30.0  # seconds an exec may take before the test calls it hung


def boot(manager, config: dict[str, str] | None = None) -> str:  # type: ignore[no-untyped-def]
    name = f"z{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", config=config or {})
    manager.start(name)
    assert wait_running(manager, name) == "running"
    return name


def zygote_of(manager, name: str) -> int:  # type: ignore[no-untyped-def]
    """The pid of the container's zygote: the child named lxmgr-zygote of its supervisor
    (PID 1's parent: the supervisor is its subreaper)."""
    with open(f"/proc/{manager.state(name)['pid']}/stat") as f:
        sup = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{sup}/task/{sup}/children") as f:
        for pid in f.read().split():
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() == "lxmgr-zygote":
                    return int(pid)
    raise AssertionError(f"No exec zygote under supervisor {sup}")


def start(manager, name: str, argv: list[str]):  # type: ignore[no-untyped-def]
    """exec_start with /dev/null as stdio: (handle, the command's host pid)."""
    null = os.open("/dev/null", os.O_RDWR)
    try:
        handle, pid, _ = manager.exec_start(name, argv, [null, null, null])
    finally:
        os.close(null)
    return handle, pid


def own_cgroups(manager, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The cgroup.procs an exec'd process must be listed in: the container's, every
    hierarchy (its .lxmgr-exec leaf where the root may not hold processes)."""
    paths = []
    for path in manager.cgroups.procs_paths(name):
        leaf = os.path.join(os.path.dirname(path), ".lxmgr-exec", "cgroup.procs")
        paths.append(leaf if os.path.exists(leaf) else path)
    return paths


def test_exec_lands_in_exactly_the_container_cgroups(manager, container) -> None:  # type: ignore[no-untyped-def]
    handle, pid = start(manager, container, ["sleep", "60"])
    try:
        procs = own_cgroups(manager, container)
        for path in procs:
            with open(path) as f:
                assert str(pid) in f.read().split(), path
        with open(f"/proc/{pid}/cgroup") as f:
            lines = [line for line in f.read().splitlines() if line]
        assert len(lines) == len(procs)  # one line per hierarchy, each checked above
        if can_host(manager.cgroups.procs_paths(container)):
            zygote = zygote_of(manager, container)
            for path in procs:
                with open(path) as f:
                    assert str(zygote) in f.read().split(), path
    finally:
        os.kill(pid, signal.SIGKILL)
    assert manager.exec_wait(handle) == 128 + signal.SIGKILL


def test_a_reboot_from_inside_gets_a_new_zygote(manager, container) -> None:  # type: ignore[no-untyped-def]
    if not can_host(manager.cgroups.procs_paths(container)):
        pytest.skip("No exec zygote on a cgroup2 tree with controllers")
    old_init, old_zygote = manager.state(container)["pid"], zygote_of(manager, container)
    exec_out(manager, container, ["systemctl", "reboot"])
    deadline = time.monotonic() + GENEROUS
    while manager.state(container)["pid"] in (0, old_init) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wait_running(manager, container) == "running"
    zygote = zygote_of(manager, container)
    assert zygote != old_zygote  # the old one went with the old boot's cgroups
    for path in own_cgroups(manager, container):  # the new boot's cgroups
        with open(path) as f:
            assert str(zygote) in f.read().split(), path


def test_exec_survives_the_zygote_dying(manager, container) -> None:  # type: ignore[no-untyped-def]
    if not can_host(manager.cgroups.procs_paths(container)):
        pytest.skip("No exec zygote on a cgroup2 tree with controllers")
    handle, pid = start(manager, container, ["sleep", "60"])
    os.kill(zygote_of(manager, container), signal.SIGKILL)
    # The running command's status still comes back, from its orphaned helper...
    os.kill(pid, signal.SIGTERM)
    assert manager.exec_wait(handle) == 128 + signal.SIGTERM
    # ... and the next exec gets a new zygote.
    assert exec_out(manager, container, ["sh", "-c", "exit 3"])[0] == 3
    zygote_of(manager, container)


def test_exec_completes_next_to_a_fork_bomb(manager, container) -> None:  # type: ignore[no-untyped-def]
    noisy = boot(manager, {"limits.processes": "200", "limits.cpu": "1"})
    # Every process forks until its deadline; pids.max refuses the rest (EAGAIN).
    bomb = (f"setsid -f perl -e '$e = time + {BOMB_SECONDS}; while (time < $e) {{ fork }}' "
            "</dev/null >/dev/null 2>&1")
    assert exec_out(manager, noisy, ["sh", "-c", bomb])[0] == 0
    h = manager.cgroups.layout.find("pids")
    events = os.path.join(manager.cgroups.path(h, noisy), "pids.events")
    deadline = time.monotonic() + GENEROUS
    while time.monotonic() < deadline:
        with open(events) as f:
            if int(f.read().split()[1]) > 0:  # "max N": forks refused, the bomb is at its limit
                break
        time.sleep(0.1)
    else:
        pytest.fail("The fork bomb never reached pids.max")
    for _ in range(10):
        begun = time.monotonic()
        assert exec_out(manager, container, ["true"])[0] == 0
        assert time.monotonic() - begun < GENEROUS
    manager.stop(noisy, force=True)
