"""lxcfs as a user meets it, through a real daemon and the CLI: lxmgrd starts its lxcfs (or uses
the one the host runs), `lxmgr doctor` says where, `free -m` in a container shows its
limits.memory, a daemon restart keeps the same lxcfs under the running container, and the
daemon stops its lxcfs at exit once no instance runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lxmgr.instances import lxcfs
from tests.system.conftest import running_daemon

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def doctor_line(daemon) -> str:  # type: ignore[no-untyped-def]
    out = daemon.cli("doctor", check=False).stdout
    return next(line for line in out.splitlines() if " lxcfs: " in line)


def test_the_daemon_runs_lxcfs_and_free_shows_the_limit() -> None:
    if not os.access(lxcfs.LXCFS, os.X_OK) or not os.path.exists("/dev/fuse"):
        pytest.skip(f"needs {lxcfs.LXCFS} and /dev/fuse")
    foreign = [p for p in lxcfs.FOREIGN if str(p) in lxcfs.mounted()]
    with running_daemon("lxfs", env={lxcfs.ENV: ""}) as d:  # as on a user's host
        mount = Path(d.root) / "lxcfs"
        line = doctor_line(d)
        if foreign:  # the host's lxcfs serves: lxmgrd starts none
            assert line == f"[ OK ] lxcfs: mounted at {foreign[0]} (not started by lxmgr)"
        else:
            assert line.startswith("[ OK ] lxcfs: running, pid ")
            assert line.endswith(f", mounted at {mount} (started by lxmgr)")
        d.cli("launch", "debian", "c1", "-c", "limits.memory=512MiB")
        free = d.cli("exec", "c1", "--", "free", "-m").stdout
        assert next(row for row in free.splitlines() if row.startswith("Mem:")).split()[1] \
            == "512"
        d.stop()  # the running container keeps its lxcfs: the next daemon adopts it
        d.start()
        assert doctor_line(d) == line
        free = d.cli("exec", "c1", "--", "free", "-m").stdout
        assert "Mem:" in free and " 512 " in free
        d.cli("delete", "c1", "--force")
        d.stop()  # no instance runs: its lxcfs goes with it
        assert not _running(mount)
        d.start()  # for the fixture's cleanup
    assert not _running(mount)


def _running(mount: Path) -> bool:
    """An lxcfs mounted at, or a process naming, mount."""
    return str(mount) in lxcfs.mounted() or \
        any(str(mount).encode() in _cmdline(pid) for pid in _pids())


def _pids() -> list[str]:
    return [p for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
