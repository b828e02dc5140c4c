"""Operations on one real instance are serialized (lxmgr.instances.locks): two starts at
once boot one container whose supervisor stays reachable, a restore of a running ephemeral
instance keeps it, and the ephemeral reaper leaves a restarted instance alone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from lxmgr.errors import InvalidState
from tests.kernel.conftest import wait_running

pytestmark = pytest.mark.kernel
ROOT = str(Path(__file__).resolve().parents[2])


def test_two_starts_boot_one_container(manager) -> None:  # type: ignore[no-untyped-def]
    name = f"c{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian")
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def start() -> None:
        barrier.wait()
        try:
            results.append(manager.start(name))
        except InvalidState as err:
            results.append(str(err))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    pids = [r for r in results if isinstance(r, int)]
    assert len(pids) == 1, results
    assert f"Instance '{name}' is already running" in results
    state = manager.state(name)  # the control socket answers: the supervisor is the one
    assert state["status"] == "Running" and state["pid"] == pids[0]
    assert state["supervisor_protocol"] == 1  # lxmgr.supervisor.protocol.PROTOCOL_VERSION
    procs = manager.cgroups.procs_paths(name)
    assert procs  # one cgroup, holding that container's processes
    manager.stop(name, force=True)


def test_restore_keeps_a_running_ephemeral_instance(manager) -> None:  # type: ignore[no-untyped-def]
    name = f"e{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", ephemeral=True)
    manager.snapshot(name, "s0")
    manager.start(name)
    wait_running(manager, name)  # systemd handles the halt signal once it runs
    manager.restore(name, "s0")  # stops and starts it again, as LXD: not a delete
    assert manager.state(name)["status"] == "Running"
    manager.delete(name, ephemeral_stop=True)  # the reaper's call: it runs, so it stays
    assert manager.store.exists(name)
    manager.stop(name, force=True)  # now it goes, as an ephemeral instance does
    assert not manager.store.exists(name)


def test_a_second_supervisor_refuses_a_live_instance(manager, container) -> None:  # type: ignore[no-untyped-def]
    """Defence in depth beside the daemon's lock (two daemons on one state dir): a second
    supervisor started on a running instance's config says why in one line and leaves the
    first one's socket, cgroup and container alone."""
    from lxmgr import paths

    before = manager.state(container)
    config = paths.instance_dir(container) / "supervisor.json"
    second = subprocess.run([sys.executable, "-m", "lxmgr.supervisor", "start", str(config)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert second.returncode == 1
    assert second.stderr == ("Error: The instance's supervisor is already running (another "
                             "start won)\n")
    after = manager.state(container)
    assert (after["status"], after["pid"], after["supervisor_pid"]) == (
        "Running", before["pid"], before["supervisor_pid"])
