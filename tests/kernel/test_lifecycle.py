"""Lifecycle of real containers: stop, force stop, restart, freeze, reboot and poweroff from
inside, the supervisor outliving its caller, and nothing left behind afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


def leftovers(manager, name: str, pid: int, ns_inodes: set[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Anything of the container still on the host: process, mount, cgroup, namespace."""
    found = []
    if os.path.exists(f"/proc/{pid}"):
        found.append(f"process {pid}")
    with open("/proc/self/mountinfo") as f:
        found += [ln.split()[4] for ln in f if f"/{name}/" in ln or ln.split()[4].endswith(name)]
    if manager.cgroups.exists(name):
        found.append("cgroup")
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                if os.readlink(f"/proc/{proc}/ns/mnt") in ns_inodes or \
                        os.readlink(f"/proc/{proc}/ns/user") in ns_inodes:
                    found.append(f"namespace held by {proc}")
            except OSError:
                pass
    return found


def namespaces(pid: int) -> set[str]:
    return {os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("mnt", "user")}


def test_graceful_stop_leaves_nothing(manager, container) -> None:  # type: ignore[no-untyped-def]
    state = manager.state(container)
    pid, sup = state["pid"], state["supervisor_pid"]
    ns = namespaces(pid)
    manager.stop(container, timeout=30)
    assert manager.state(container)["status"] == "Stopped"
    assert "Reached target" in manager.console_log(container)  # kept after stop
    time.sleep(0.1)
    assert leftovers(manager, container, pid, ns) == []
    deadline = time.monotonic() + 5  # it replies to stop, then saves the console and exits
    while os.path.exists(f"/proc/{sup}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{sup}")


def test_force_stop_and_restart(manager, container) -> None:  # type: ignore[no-untyped-def]
    pid = manager.state(container)["pid"]
    ns = namespaces(pid)
    manager.stop(container, force=True)
    assert leftovers(manager, container, pid, ns) == []
    new_pid = manager.start(container)
    assert new_pid != pid
    assert wait_running(manager, container) == "running"
    third = manager.restart(container)
    assert third != new_pid and wait_running(manager, container) == "running"


def test_stop_timeout_kills_the_cgroup(manager, container) -> None:  # type: ignore[no-untyped-def]
    # An init that ignores the halt signal: block SIGRTMIN+3 in systemd by freezing it?
    # Simpler: stop with a zero timeout kills at once after signalling.
    pid = manager.state(container)["pid"]
    ns = namespaces(pid)
    start = time.monotonic()
    manager.stop(container, timeout=0)
    assert time.monotonic() - start < 10
    assert leftovers(manager, container, pid, ns) == []


def test_freeze_and_unfreeze(manager, container) -> None:  # type: ignore[no-untyped-def]
    manager.freeze(container)
    assert manager.state(container)["status"] == "Frozen"
    pid = manager.state(container)["pid"]
    with open(f"/proc/{pid}/status") as f:
        assert "State:\tD" in f.read() or manager.cgroups.is_frozen(container)
    manager.unfreeze(container)
    assert manager.state(container)["status"] == "Running"
    assert exec_out(manager, container, ["true"])[0] == 0
    # A frozen container can still be stopped.
    manager.freeze(container)
    manager.stop(container, timeout=10)
    assert manager.state(container)["status"] == "Stopped"


def test_reboot_from_inside_restarts(manager, container) -> None:  # type: ignore[no-untyped-def]
    old = manager.state(container)["pid"]
    exec_out(manager, container, ["systemctl", "reboot"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = manager.state(container)
        if state["status"] == "Running" and state["pid"] not in (0, old):
            break
        time.sleep(0.05)
    assert state["pid"] != old and state["status"] == "Running"
    assert wait_running(manager, container) == "running"


def test_poweroff_from_inside_stops_cleanly(manager, container) -> None:  # type: ignore[no-untyped-def]
    pid = manager.state(container)["pid"]
    ns = namespaces(pid)
    exec_out(manager, container, ["systemctl", "poweroff"])
    deadline = time.monotonic() + 30
    while manager.state(container)["status"] != "Stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert manager.state(container)["status"] == "Stopped"
    time.sleep(0.1)
    assert leftovers(manager, container, pid, ns) == []


def test_supervisor_survives_its_starter_being_killed(manager, debian_image) -> None:  # type: ignore[no-untyped-def]
    name = "survivor"
    manager.create(name, "debian")
    code = ("import os, sys, time\n"
            "from lxmgr.instances.manager import Manager\n"
            f"Manager(cgroup_base_name={manager.cgroup_base!r}).start({name!r})\n"
            "print('started', flush=True)\n"
            "time.sleep(60)\n")
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               text=True, env=os.environ | {"PYTHONPATH": os.getcwd()})
    try:
        assert starter.stdout is not None
        assert starter.stdout.readline().strip() == "started"
        sup = manager.state(name)["supervisor_pid"]
        with open(f"/proc/{sup}/status") as f:
            ppid = int(next(ln for ln in f if ln.startswith("PPid:")).split()[1])
        assert ppid != starter.pid
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        assert manager.state(name)["status"] == "Running"
        assert wait_running(manager, name) == "running"
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        if starter.stdout:
            starter.stdout.close()


def test_watcher_finds_an_ephemeral_that_powered_off(manager, container) -> None:  # type: ignore[no-untyped-def]
    """The engine's watch (lxmgr.instances.observer) tells a running instance from an
    ephemeral one that powered off from inside, which it then deletes."""
    name = "eph-poweroff"
    manager.create(name, "debian", ephemeral=True)
    manager.start(name)
    assert wait_running(manager, name) == "running"
    manager.observer.observe_all(manager.list())
    assert sorted(manager.list()) == sorted([container, name])
    exec_out(manager, name, ["systemctl", "poweroff"])
    deadline = time.monotonic() + 30
    while manager.status(name) != "Stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    manager.observer.observe_all(manager.list())
    assert manager.list() == [container]
