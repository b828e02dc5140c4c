"""Snapshots through the CLI against a real lxmgrd: snapshot, change a file, restore, the
file is back; copy from a snapshot, rename, delete; a scheduled snapshot appears and expires."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def snapshots(daemon, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [s["name"] for s in daemon.api("GET", f"/1.0/instances/{name}/snapshots"
                                                 "?recursion=1")["metadata"]]


def sh(daemon, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    return daemon.cli("exec", name, "-T", "--", "sh", "-c", script).stdout


def test_snapshot_restore_copy_move(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "sv1")
    sh(daemon, "sv1", "echo original > /etc/motd; sync")
    daemon.cli("snapshot", "sv1", "clean")
    daemon.cli("snapshot", "sv1")  # pattern: snap0
    assert snapshots(daemon, "sv1") == ["clean", "snap0"]
    sh(daemon, "sv1", "echo broken > /etc/motd; rm -f /usr/bin/less")
    daemon.cli("restore", "sv1", "clean")
    assert sh(daemon, "sv1", "cat /etc/motd; test -x /usr/bin/less && echo less") == \
        "original\nless\n"
    info = daemon.cli("info", "sv1").stdout
    assert "Snapshots:" in info and "| clean" in info
    daemon.cli("copy", "sv1/clean", "sv2", "--start")
    assert sh(daemon, "sv2", "cat /etc/motd; hostname") == "original\nsv2\n"
    daemon.cli("stop", "sv2", "--force")
    daemon.cli("move", "sv2", "sv3")
    rows = json.loads(daemon.cli("list", "--format", "json").stdout)
    assert sorted(r["name"] for r in rows) == ["sv1", "sv3"]
    assert {r["name"]: len(r["snapshots"]) for r in rows} == {"sv1": 2, "sv3": 0}
    daemon.cli("delete", "sv1/snap0")
    assert snapshots(daemon, "sv1") == ["clean"]
    bad = daemon.cli("restore", "sv1", "nope", check=False)
    assert bad.returncode == 1 and "nope" in bad.stderr and "Traceback" not in bad.stderr
    taken = daemon.cli("move", "sv1", "sv3", check=False)
    assert taken.returncode == 1 and "already exists" in taken.stderr
    daemon.cli("delete", "-f", "sv1", "sv3")


def test_scheduled_snapshot_appears_and_expires(daemon) -> None:  # type: ignore[no-untyped-def]
    """The daemon's loop takes the scheduled snapshots and deletes the expired ones each
    minute, the first time as it starts (a restart stands in for the next minute: the
    test need not wait for one)."""
    daemon.cli("init", "debian", "sch1", "-c", "snapshots.schedule=* * * * *",
               "-c", "snapshots.schedule.stopped=true", "-c", "snapshots.expiry=1M",
               "-c", "snapshots.pattern=auto%d")
    daemon.stop()
    daemon.start()  # its first minute: every minute is due
    deadline = time.monotonic() + 30
    while not snapshots(daemon, "sch1"):
        assert time.monotonic() < deadline, "no scheduled snapshot within 30 s"
        time.sleep(0.2)
    first = snapshots(daemon, "sch1")[0]
    assert first.startswith("auto")
    snap = daemon.api("GET", f"/1.0/instances/sch1/snapshots/{first}")["metadata"]
    assert not snap["expires_at"].startswith("0001")  # snapshots.expiry applied
    daemon.cli("config", "unset", "sch1", "snapshots.schedule")
    daemon.api("PUT", f"/1.0/instances/sch1/snapshots/{first}",
               {"expires_at": "2001-01-01T00:00:00Z"})
    daemon.stop()
    daemon.start()
    deadline = time.monotonic() + 30
    while first in snapshots(daemon, "sch1"):
        assert time.monotonic() < deadline, f"{first} did not expire within 30 s"
        time.sleep(0.2)
    daemon.cli("delete", "sch1")
