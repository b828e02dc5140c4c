"""`lxmgr monitor` prints the daemon's events as they happen."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def test_monitor_sees_lifecycle_events(daemon) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen([*daemon.cli_argv, "monitor", "--type", "lifecycle", "--format",
                             "json", "--count", "2"], env=daemon.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # connected before the events happen
        daemon.cli("init", "debian", "mon1")
        daemon.cli("delete", "mon1")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["metadata"]["action"] for e in events] == ["instance-created",
                                                         "instance-deleted"]
    assert all(e["type"] == "lifecycle" and e["metadata"]["source"] == "/1.0/instances/mon1"
               for e in events)
    bad = daemon.cli("monitor", "--type", "bogus", check=False)
    assert bad.returncode == 2
