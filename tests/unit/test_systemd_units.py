"""The systemd units say what the README and the code promise: lxmgr-startup.service stops
the instances in order at host shutdown (ExecStop: `lxmgr daemon shutdown`, only while lxmgrd
runs, ordered before lxmgr.service stops), and lxmgr.service still stops only the daemon's
own process, so a plain restart leaves the supervisors and their containers running."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_startup_unit_shuts_the_instances_down() -> None:
    startup = unit("lxmgr-startup.service")
    assert "lxmgr.service" in startup["Unit"]["After"].split()
    stop = startup["Service"]["ExecStop"]
    assert "systemctl -q is-active lxmgr.service || exit 0" in stop
    assert stop.endswith("exec /usr/local/bin/lxmgr daemon shutdown'")
    assert int(startup["Service"]["TimeoutStopSec"].removesuffix("s")) >= 600
    assert startup["Service"]["RemainAfterExit"] == "yes"  # else ExecStop runs at once


def test_daemon_unit_leaves_containers_running_on_restart() -> None:
    service = unit("lxmgr.service")["Service"]
    assert service["KillMode"] == "process" and service["Delegate"] == "yes"
    assert "ExecStop" not in service  # a restart is SIGTERM to lxmgrd only


@pytest.mark.parametrize("active,runs", [(0, True), (3, False)])
def test_exec_stop_guard(tmp_path: Path, active: int, runs: bool) -> None:
    """The ExecStop line under sh with stand-ins for systemctl and lxmgr."""
    shutil.copy("/bin/true" if active == 0 else "/bin/false", tmp_path / "systemctl")
    (tmp_path / "lxmgr").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/ran\n")
    (tmp_path / "lxmgr").chmod(0o755)
    line = unit("lxmgr-startup.service")["Service"]["ExecStop"]
    command = line.split("-c ", 1)[1].strip("'").replace("/usr/local/bin/lxmgr",
                                                         str(tmp_path / "lxmgr"))
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    assert subprocess.run(["/bin/sh", "-c", command], env=env, timeout=10).returncode == 0
    assert (tmp_path / "ran").exists() == runs
    if runs:
        assert (tmp_path / "ran").read_text() == "daemon shutdown\n"
