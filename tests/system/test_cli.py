"""The installed CLI against a real lxmgrd booting real containers: the quick-start path,
bad input, and a daemon killed with SIGKILL while containers run."""

from __future__ import annotations

import json
import signal

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def states(daemon) -> dict[str, tuple[str, int]]:  # type: ignore[no-untyped-def]
    rows = json.loads(daemon.cli("list", "--format", "json").stdout)
    return {r["name"]: (r["status"], r["state"]["pid"]) for r in rows}


def test_launch_exec_stop_delete(daemon) -> None:  # type: ignore[no-untyped-def]
    out = daemon.cli("launch", "debian", "web1").stdout
    assert "Creating web1" in out and "Starting web1" in out
    table = daemon.cli("list").stdout
    assert "web1" in table and "RUNNING" in table
    run = daemon.cli("exec", "web1", "--", "sh", "-c", "hostname; exit 4", check=False)
    assert (run.returncode, run.stdout.strip()) == (4, "web1")
    piped = daemon.cli("exec", "web1", "-T", "--", "cat", input="through stdin\n")
    assert piped.stdout == "through stdin\n"
    env = daemon.cli("exec", "web1", "--env", "FOO=bar", "--cwd", "/tmp", "--user", "65534",
                     "--", "sh", "-c", "echo $FOO $(pwd) $(id -u)").stdout
    assert env.split() == ["bar", "/tmp", "65534"]
    info = daemon.cli("info", "web1").stdout
    assert "RUNNING" in info.upper() and "PID" in info
    daemon.cli("config", "set", "web1", "limits.memory=300MiB")
    assert daemon.cli("config", "get", "web1", "limits.memory").stdout.strip() == "300MiB"
    assert "limits.memory" in daemon.cli("config", "show", "web1").stdout
    daemon.cli("stop", "web1")
    assert states(daemon)["web1"][0] == "Stopped"
    daemon.cli("start", "web1")
    daemon.cli("restart", "web1")
    daemon.cli("delete", "web1", "--force")
    assert states(daemon) == {}


@pytest.mark.parametrize("args,message", [
    (("launch", "debian", "bad_name"), "name"),
    (("launch", "nosuchimage", "c1"), "nosuchimage"),
    (("launch", "debian", "c1", "-p", "nosuchprofile"), "nosuchprofile"),
    (("launch", "debian", "c1", "-c", "bogus.key=1"), "bogus.key"),
    (("launch", "debian", "c1", "-c", "limits.memory=lots"), "limits.memory"),
    (("stop", "nosuchinstance"), "not found"),
    (("exec", "nosuchinstance", "--", "true"), "not found"),
])
def test_bad_input_is_one_line_and_exit_1(daemon, args, message) -> None:  # type: ignore[no-untyped-def]
    proc = daemon.cli(*args, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr
    assert states(daemon) == {}


def test_state_errors(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "s1")
    again = daemon.cli("launch", "debian", "s1", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    started = daemon.cli("start", "s1", check=False)
    assert started.returncode == 1 and "already running" in started.stderr
    busy = daemon.cli("delete", "s1", check=False)
    assert busy.returncode == 1 and "running" in busy.stderr
    daemon.cli("stop", "s1")
    stopped = daemon.cli("stop", "s1", check=False)
    assert stopped.returncode == 1 and "not running" in stopped.stderr
    assert states(daemon)["s1"][0] == "Stopped"


def test_profiles_and_ephemeral(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("profile", "create", "tight")
    daemon.cli("profile", "set", "tight", "limits.processes=300")
    daemon.cli("launch", "debian", "p1", "-p", "default", "-p", "tight")
    assert "p1" in daemon.cli("profile", "show", "tight").stdout
    in_use = daemon.cli("profile", "delete", "tight", check=False)
    assert in_use.returncode == 1 and "in use" in in_use.stderr
    default = daemon.cli("profile", "delete", "default", check=False)
    assert default.returncode == 1
    daemon.cli("launch", "debian", "e1", "--ephemeral")
    daemon.cli("stop", "e1")
    assert "e1" not in states(daemon)
    gen = daemon.cli("launch", "debian").stdout
    assert "Creating " in gen


def test_daemon_sigkill_keeps_containers(daemon) -> None:  # type: ignore[no-untyped-def]
    for name in ("k1", "k2", "k3"):
        daemon.cli("launch", "debian", name)
    before = states(daemon)
    assert all(status == "Running" for status, _ in before.values())
    daemon.stop(signal.SIGKILL)
    daemon.start()
    after = states(daemon)
    assert after == before  # same containers, Running, same PIDs
    assert daemon.cli("exec", "k2", "--", "true").returncode == 0
    daemon.cli("stop", "k3")
    assert states(daemon)["k3"][0] == "Stopped"


def test_daemon_restart_applies_autostart(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "auto1", "-c", "boot.autostart=true")
    daemon.cli("launch", "debian", "manual1")
    daemon.cli("stop", "auto1")
    daemon.cli("stop", "manual1")
    daemon.stop(signal.SIGTERM)  # a clean stop leaves running containers alone too
    daemon.start()
    for _ in range(100):
        if states(daemon)["auto1"][0] == "Running":
            break
        import time
        time.sleep(0.1)
    assert states(daemon)["auto1"][0] == "Running"
    assert states(daemon)["manual1"][0] == "Stopped"
