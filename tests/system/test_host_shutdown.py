"""`lxmgr daemon shutdown` (PUT /internal/shutdown, the ExecStop of lxmgr-startup.service)
on a real daemon with real containers: they stop in boot.stop.priority order (the order of
the instance-shutdown events on /1.0/events), those of equal priority in parallel, one that
ignores its halt signal is killed once its boot.host_shutdown_timeout passed; lxmgrd exits;
at the next start the ones that ran come back (boot.autostart unset), except
boot.autostart=false, and a stopped one stays stopped."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime

import pytest

from tests.system.conftest import Daemon

pytestmark = [pytest.mark.kernel, pytest.mark.system]

KILL_AFTER = 4  # boot.host_shutdown_timeout of the container that ignores its halt signal


def statuses(daemon: Daemon) -> dict[str, str]:
    return {i["name"]: i["status"]
            for i in daemon.api("GET", "/1.0/instances?recursion=1")["metadata"]}


def when(event: dict) -> float:  # type: ignore[type-arg]
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def boot(daemon: Daemon, name: str, *config: str) -> None:
    args = [arg for item in config for arg in ("-c", item)]
    daemon.cli("launch", "debian", name, *args)
    deadline = time.monotonic() + 60  # systemd's bus comes up a moment after PID 1
    while True:
        waited = daemon.cli("exec", name, "--", "systemctl", "is-system-running", "--wait",
                            check=False)
        if waited.stdout.strip() in ("running", "degraded") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert waited.stdout.strip() in ("running", "degraded"), waited


def test_shutdown_in_priority_order_then_restore(daemon: Daemon) -> None:
    boot(daemon, "sd-high", "boot.stop.priority=10")
    boot(daemon, "sd-mid", "boot.stop.priority=5")
    boot(daemon, "sd-low", f"boot.host_shutdown_timeout={KILL_AFTER}")
    boot(daemon, "sd-never", "boot.autostart=false")
    daemon.cli("init", "debian", "sd-off")
    # sd-low's systemd ignores SIGRTMIN+3 once halt.target is masked ("Unit halt.target is
    # masked"): only the kill at the end of its timeout stops it.
    daemon.cli("exec", "sd-low", "--", "sh", "-c",
               "ln -sf /dev/null /etc/systemd/system/halt.target && systemctl daemon-reload")

    monitor = subprocess.Popen([*daemon.cli_argv, "monitor", "--type", "lifecycle",
                                "--format", "json", "--count", "4"], env=daemon.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # connected before the events happen
        began = time.monotonic()
        done = daemon.cli("daemon", "shutdown")
        took = time.monotonic() - began
        out, err = monitor.communicate(timeout=30)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["metadata"]["action"] for e in events] == ["instance-shutdown"] * 4, err
    order = [e["metadata"]["name"] for e in events]
    # sd-never and sd-low (priority 0) stop together: sd-never, clean, is done long before
    # sd-low is killed, although sd-low comes first by name.
    assert order == ["sd-high", "sd-mid", "sd-never", "sd-low"]
    assert done.stdout == ("Stopped 4 instance(s): sd-high, sd-mid, sd-never, sd-low; "
                           "lxmgrd exits\n")
    at = {e["metadata"]["name"]: when(e) for e in events}
    assert at["sd-never"] - at["sd-mid"] < KILL_AFTER
    assert KILL_AFTER - 0.5 <= at["sd-low"] - at["sd-mid"] < KILL_AFTER + 10
    assert took < 30  # the clean ones did not wait for their 30 s timeout

    assert daemon.proc is not None and daemon.proc.wait(timeout=30) == 0  # lxmgrd exited
    for name in ("sd-high", "sd-mid", "sd-low", "sd-never", "sd-off"):
        assert not os.path.exists(f"{daemon.root}/instances/{name}/supervisor.sock"), name
    again = daemon.cli("daemon", "shutdown", check=False)
    assert again.returncode == 1
    assert again.stderr == (f"Error: lxmgrd is not running (socket {daemon.socket}): "
                            "nothing was stopped\n")

    daemon.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = statuses(daemon)
        if all(now[n] == "Running" for n in ("sd-high", "sd-mid", "sd-low")):
            break
        time.sleep(0.2)
    assert statuses(daemon) == {"sd-high": "Running", "sd-mid": "Running",
                                "sd-low": "Running", "sd-never": "Stopped",
                                "sd-off": "Stopped"}
    configs = [daemon.api("GET", f"/1.0/instances/{n}")["metadata"]["config"]
               for n in statuses(daemon)]
    assert not any("volatile.last_state.power" in c for c in configs)  # consumed
