"""lxcfs in real containers: limits.memory and limits.cpu show in free, /proc/meminfo,
/proc/cpuinfo, /proc/stat and /sys/devices/system/cpu/online, /proc/uptime counts from the
container's boot; a container boots without lxcfs (none, or one that died); the daemon's
duty starts one, and restarts it after a crash (running containers keep ENOTCONN until they
restart, as with LXD).

The lxcfs these tests use is one private lxcfs for the session (under /tmp, stopped at the
end) and, for the supervision test, the one the daemon's duty starts in the test's own
LXMGR_DIR, stopped before the test ends; never the machine's.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxmgr import paths
from lxmgr.instances import lxcfs
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel

LIMITS = {"limits.memory": "512MiB", "limits.cpu": "1"}


@pytest.fixture(scope="session")
def session_lxcfs() -> Iterator[lxcfs.Lxcfs]:
    """One private lxcfs for the whole session, stopped (and its directory removed) at the
    end, even after failures."""
    if not os.access(lxcfs.LXCFS, os.X_OK) or not os.path.exists("/dev/fuse"):
        pytest.skip(f"needs {lxcfs.LXCFS} and /dev/fuse")
    root = Path(tempfile.mkdtemp(prefix="lxmgr-lxcfs-"))
    os.chmod(root, 0o755)  # containers' init reaches the files through it
    server = lxcfs.Lxcfs(root / "mnt", root / "lxcfs.pid", root / "lxcfs.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def host_value(path: str, key: str) -> str:
    return next(line.split()[1] for line in Path(path).read_text().splitlines()
                if line.startswith(key))


def inside(manager, name: str, command: str) -> str:  # type: ignore[no-untyped-def]
    code, out, err = exec_out(manager, name, ["sh", "-c", command])
    assert code == 0, (command, err)
    return out.strip()


def boot(manager, config: dict[str, str]) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    """A new container booted to systemd `running`; (name, monotonic time of its start)."""
    name = f"c{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", config=config)
    started = time.monotonic()
    manager.start(name)
    assert wait_running(manager, name) == "running"
    return name, started


def supervisor_log(name: str) -> str:
    return (paths.instance_dir(name) / "supervisor.log").read_text()


def test_limits_show_inside(manager, session_lxcfs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(lxcfs.ENV, str(session_lxcfs.mount))
    name, started = boot(manager, LIMITS)
    assert inside(manager, name, "free -m | awk '/^Mem:/ {print $2}'") == "512"
    assert inside(manager, name, "grep ^MemTotal: /proc/meminfo").split()[1:] == ["524288", "kB"]
    assert inside(manager, name, "nproc") == "1"
    assert inside(manager, name, "grep -c ^processor /proc/cpuinfo") == "1"
    assert inside(manager, name, "grep -c '^cpu[0-9]' /proc/stat") == "1"
    online = inside(manager, name, "cat /sys/devices/system/cpu/online")
    assert online.isdigit(), online  # one CPU, where the host has 0-N
    uptime = float(inside(manager, name, "cut -d' ' -f1 /proc/uptime"))
    elapsed = time.monotonic() - started
    assert uptime <= elapsed + 1, (uptime, elapsed)
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert host_uptime > elapsed + 1  # so the check above tells the two apart
    tasks = inside(manager, name, "cut -d' ' -f4 /proc/loadavg").split("/")[1]
    host_tasks = Path("/proc/loadavg").read_text().split()[3].split("/")[1]
    assert int(tasks) < int(host_tasks)  # lxcfs -l: the container's tasks only
    assert inside(manager, name, "head -1 /proc/swaps").startswith("Filename")
    assert inside(manager, name, "wc -l < /proc/diskstats").isdigit()
    binds = inside(manager, name, "grep ' - fuse.lxcfs ' /proc/self/mountinfo | cut -d' ' -f5")
    assert binds.split() == ["/proc/cpuinfo", "/proc/diskstats", "/proc/loadavg",
                             "/proc/meminfo", "/proc/slabinfo", "/proc/stat", "/proc/swaps",
                             "/proc/uptime", "/sys/devices/system/cpu"]
    assert "without lxcfs" not in supervisor_log(name)


def test_boots_without_lxcfs(manager, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(lxcfs.ENV, str(tmp_path))  # nothing mounted there
    assert manager.build_supervisor_config(manager.create("plain", "debian", config=LIMITS)) \
        .plan.lxcfs == []
    manager.start("plain")
    assert wait_running(manager, "plain") == "running"
    host_total = host_value("/proc/meminfo", "MemTotal:")
    assert inside(manager, "plain", "awk '/^MemTotal:/ {print $2}' /proc/meminfo") == host_total
    assert inside(manager, "plain", "nproc") == "1"  # the cpuset, lxcfs or not
    assert inside(manager, "plain", "grep -c fuse.lxcfs /proc/self/mountinfo || true") == "0"


def test_supervised_lxcfs_dies_and_comes_back(manager, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if not os.access(lxcfs.LXCFS, os.X_OK) or not os.path.exists("/dev/fuse"):
        pytest.skip(f"needs {lxcfs.LXCFS} and /dev/fuse")
    monkeypatch.delenv(lxcfs.ENV)
    monkeypatch.setattr(lxcfs, "FOREIGN", ())  # the machine's lxcfs, if any, stays out of it
    duty = lxcfs.Supervisor()
    own = lxcfs.own()
    try:
        report = duty.ensure()
        assert report is not None and report[1].startswith("lxcfs started (pid ")
        assert duty.ensure() is None  # it answers: nothing to do
        name, _ = boot(manager, {"limits.memory": "256MiB"})
        assert inside(manager, name, "grep ^MemTotal: /proc/meminfo").split()[1] == "262144"

        pid = own.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # ours, by the pid we started
        code, _, err = exec_out(manager, name, ["cat", "/proc/meminfo"])
        assert code != 0 and "Transport endpoint is not connected" in err
        check = lxcfs.check()
        assert not check.ok and check.detail.startswith(f"stale mount at {own.mount}")

        # A reboot from inside boots on the same plan: its binds would fail, so none.
        old = manager.state(name)["pid"]
        exec_out(manager, name, ["systemctl", "reboot"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and manager.state(name)["pid"] in (0, old):
            time.sleep(0.05)
        assert wait_running(manager, name) == "running"
        host_total = host_value("/proc/meminfo", "MemTotal:")
        assert inside(manager, name, "awk '/^MemTotal:/ {print $2}' /proc/meminfo") == \
            host_total
        assert f"Container {name} boots without lxcfs" in supervisor_log(name)

        report = duty.ensure()
        assert report is not None and report[1].startswith("lxcfs had died and was restarted")
        assert lxcfs.check().ok and own.pid() not in (None, pid)
        manager.stop(name, timeout=30)
        manager.start(name)
        assert wait_running(manager, name) == "running"
        assert inside(manager, name, "grep ^MemTotal: /proc/meminfo").split()[1] == "262144"
    finally:
        own.stop()
    assert not own.is_mounted() and own.pid() is None


def test_a_hung_lxcfs_is_replaced(manager, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A stopped (or deadlocked) lxcfs blocks every read of its files: the daemon's check
    gives up after PROBE_TIMEOUT, kills it and starts another, and its loop goes on."""
    if not os.access(lxcfs.LXCFS, os.X_OK) or not os.path.exists("/dev/fuse"):
        pytest.skip(f"needs {lxcfs.LXCFS} and /dev/fuse")
    monkeypatch.delenv(lxcfs.ENV)
    monkeypatch.setattr(lxcfs, "FOREIGN", ())
    duty = lxcfs.Supervisor()
    own = lxcfs.own()
    try:
        assert duty.ensure() is not None
        pid = own.pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        report = duty.ensure()
        assert report is not None and report[1].startswith("lxcfs stopped answering and was "
                                                           "restarted (pid ")
        assert time.monotonic() - started < lxcfs.PROBE_TIMEOUT + lxcfs.HUNG_STOP_TIMEOUT + 2
        assert own.pid() not in (None, pid) and lxcfs.check().ok
        assert not Path(f"/proc/{pid}/cmdline").exists() or \
            Path(f"/proc/{pid}/cmdline").read_bytes() == b""  # gone (or a zombie)
    finally:
        own.stop()
    assert not own.is_mounted() and own.pid() is None
