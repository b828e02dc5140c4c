"""Lifecycle events come from the engine, once per change, whoever caused it: a reboot, a
poweroff and a crash inside the container, a killed supervisor, an ephemeral instance that
stops, and changes that happened while the daemon was down (it announces them at its next
start and cleans what a lost supervisor left). Listened to as a user would, with
`lxmgr monitor`."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]
QUIET = 2.5  # more than a watch interval: no further event arrives after this


class Listener:
    """`lxmgr monitor --type lifecycle --format json`, its events in a queue."""

    def __init__(self, daemon: Any) -> None:
        self.proc = subprocess.Popen(
            [*daemon.cli_argv, "monitor", "--type", "lifecycle", "--format", "json"],
            env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        time.sleep(0.7)  # connected before the events happen

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line)["metadata"])

    def expect(self, *wanted: tuple[str, str], timeout: float = 30) -> None:
        """Exactly these (action, instance) events, in this order, then QUIET s of none."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < len(wanted):
            try:
                event = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            got.append((event["action"], event["name"]))
        try:
            got.append(self.events.get(timeout=QUIET))
        except queue.Empty:
            pass
        assert got == list(wanted)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@contextmanager
def listening(daemon: Any) -> Iterator[Listener]:
    listener = Listener(daemon)
    try:
        yield listener
    finally:
        listener.close()


def state(daemon: Any, name: str) -> dict[str, Any]:
    return dict(json.loads(Path(daemon.root, "instances", name, "state.json").read_text()))


def wait_booted(daemon: Any, name: str) -> None:
    """Until systemd inside is up (so that it handles poweroff and reboot)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = daemon.cli("exec", name, "--", "systemctl", "is-system-running", check=False)
        if out.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} did not boot")


def status(daemon: Any, name: str) -> str:
    return str(daemon.api("GET", f"/1.0/instances/{name}")["metadata"]["status"])


def wait_status(daemon: Any, name: str, wanted: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while status(daemon, name) != wanted:
        assert time.monotonic() < deadline, f"{name} is not {wanted}"
        time.sleep(0.2)


def cgroup_procs(daemon: Any, name: str) -> list[str]:
    """Processes in the instance's cgroup and below (pids controller, v1 or v2), [] when it
    is gone."""
    base = daemon.env["LXMGR_CGROUP_BASE"]
    for top in (f"/sys/fs/cgroup/pids/{base}/{name}", f"/sys/fs/cgroup/{base}/{name}"):
        if os.path.isdir(top):
            return [pid for path, _, _ in os.walk(top)
                    for pid in Path(path, "cgroup.procs").read_text().split()]
    return []


def nspid(pid: str) -> list[str]:
    """A process's pids from the host's namespace down ([] once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return []
    return next((line.split()[1:] for line in lines if line.startswith("NSpid:")), [])


def test_changes_from_inside_and_lost_supervisors(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "ev1")
    wait_booted(daemon, "ev1")
    with listening(daemon) as events:
        # Reboot inside: LXD's onStop for an instance-initiated reboot.
        pid = state(daemon, "ev1")["pid"]
        daemon.cli("exec", "ev1", "--", "systemctl", "reboot", check=False)
        events.expect(("instance-shutdown", "ev1"), ("instance-restarted", "ev1"))
        assert state(daemon, "ev1")["pid"] != pid and state(daemon, "ev1")["boots"] == 2
        wait_booted(daemon, "ev1")
        # Poweroff inside.
        daemon.cli("exec", "ev1", "--", "systemctl", "poweroff", check=False)
        events.expect(("instance-shutdown", "ev1"))
        assert state(daemon, "ev1")["exit"] == "poweroff" and status(daemon, "ev1") == "Stopped"
        # A crash: init killed (from the host, the only one who can).
        daemon.cli("start", "ev1")
        events.expect(("instance-started", "ev1"))
        os.kill(state(daemon, "ev1")["pid"], signal.SIGKILL)
        events.expect(("instance-shutdown", "ev1"))
        assert state(daemon, "ev1")["exit"] == "crash"
        # A killed supervisor: its container is taken away, announced as stopped.
        daemon.cli("start", "ev1")
        events.expect(("instance-started", "ev1"))
        os.kill(state(daemon, "ev1")["supervisor_pid"], signal.SIGKILL)
        events.expect(("instance-stopped", "ev1"))
        assert status(daemon, "ev1") == "Stopped" and cgroup_procs(daemon, "ev1") == []
        assert state(daemon, "ev1")["exit"] == "lost"
        assert not Path(daemon.root, "instances", "ev1", "supervisor.sock").exists()
        # The stops the daemon makes are announced once, by the stop itself.
        daemon.cli("start", "ev1")
        daemon.cli("stop", "ev1")
        events.expect(("instance-started", "ev1"), ("instance-shutdown", "ev1"))
        daemon.cli("start", "ev1")
        daemon.cli("restart", "ev1", "--force")
        events.expect(("instance-started", "ev1"), ("instance-restarted", "ev1"))
        # An ephemeral instance stopped from inside is deleted.
        daemon.cli("launch", "debian", "eph", "--ephemeral")
        wait_booted(daemon, "eph")
        daemon.cli("exec", "eph", "--", "systemctl", "poweroff", check=False)
        events.expect(("instance-created", "eph"), ("instance-started", "eph"),
                      ("instance-shutdown", "eph"), ("instance-deleted", "eph"))
        # ... and one stopped through the API too.
        daemon.cli("launch", "debian", "eph", "--ephemeral")
        daemon.cli("stop", "eph", "--force")
        events.expect(("instance-created", "eph"), ("instance-started", "eph"),
                      ("instance-stopped", "eph"), ("instance-deleted", "eph"))
        assert not Path(daemon.root, "instances", "eph").exists()


def test_daemon_restart_finds_what_happened(daemon) -> None:  # type: ignore[no-untyped-def]
    """While the daemon is down, one container crashes and another loses its supervisor
    (as after a host crash, its processes survive in the cgroup): the next daemon start
    announces nothing twice, kills the orphaned container and brings back the one that
    was running (LXD's last-state autostart); exactly one PID 1 each."""
    daemon.cli("launch", "debian", "dn1")
    daemon.cli("launch", "debian", "dn2")
    daemon.cli("config", "set", "dn1", "boot.autostart", "false")
    crashed, orphaned = state(daemon, "dn1"), state(daemon, "dn2")
    daemon.stop(signal.SIGKILL)
    try:
        os.kill(crashed["pid"], signal.SIGKILL)
        os.kill(orphaned["supervisor_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while state(daemon, "dn1")["status"] != "Stopped":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert cgroup_procs(daemon, "dn2")  # the orphan still runs
    finally:
        daemon.start()
    wait_status(daemon, "dn2", "Running")
    assert state(daemon, "dn1")["exit"] == "crash" and status(daemon, "dn1") == "Stopped"
    new = state(daemon, "dn2")
    assert new["supervisor_pid"] != orphaned["supervisor_pid"] and new["pid"] != orphaned["pid"]
    gone = Path(f"/proc/{orphaned['pid']}/status")
    assert not gone.exists() or "zombie" in gone.read_text(), gone.read_text()  # killed
    assert len(cgroup_procs(daemon, "dn2")) >= 1
    init = [p for p in cgroup_procs(daemon, "dn2") if nspid(p)[1:] == ["1"]]
    assert init == [str(new["pid"])]
    with listening(daemon) as events:
        events.expect()  # what happened while it was down is not announced again
