"""`lxmgr daemon start|status|stop` as a user runs them, from a directory holding a folder
named lxmgr (a checkout's parent, a project of the same name): nothing lxmgr starts may
import it (`python -m` puts the working directory first on sys.path); lxmgrd then boots and
execs into a container from there. `status` answers with LSB's codes all along (0 running,
1 dead with its pid file left, 3 stopped)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxmgr.cli import launcher
from tests.system.conftest import private_state

pytestmark = [pytest.mark.kernel, pytest.mark.system]

POISON = """\
import os, sys
with open(os.path.join(os.path.dirname(__file__), os.pardir, "imported"), "a") as f:
    f.write(" ".join(sys.argv) + "\\n")
raise ImportError("the lxmgr folder of the working directory was imported")
"""


class User:
    """The `lxmgr` command .ci/setup installs, run in one working directory."""

    def __init__(self, root: str, cwd: Path, cgroup_base: str) -> None:
        self.root, self.cwd = root, cwd
        self.command = str(launcher.write(Path(root) / "lxmgr"))
        self.env = {**os.environ, "LXMGR_DIR": root, "LXMGR_CGROUP_BASE": cgroup_base,
                    "LXMGR_DEFAULT_NETWORK": "none", "COLUMNS": "200"}
        self.env.pop("LXMGR_SOCKET", None)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.command, *args], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"lxmgr {' '.join(args)} exited {proc.returncode}: "
                                 f"{proc.stderr.strip()} (log: {self.log_tail()})")
        return proc

    def status(self) -> tuple[int, str]:
        proc = self.run("daemon", "status", check=False)
        return proc.returncode, proc.stdout.strip()

    def pid(self) -> int:
        return int(Path(self.root, "lxmgrd.pid").read_text())

    def log_tail(self) -> str:
        try:
            return " | ".join(Path(self.root, "logs/lxmgrd.log").read_text().splitlines()[-5:])
        except OSError:
            return ""


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    with private_state() as (root, base):
        (tmp_path / "lxmgr").mkdir()
        (tmp_path / "lxmgr" / "__init__.py").write_text(POISON)
        u = User(root, tmp_path, base)
        try:
            yield u
        finally:  # a daemon again (a failed test may have stopped or killed it) to delete c1
            if u.run("daemon", "start", check=False).returncode == 0:
                u.run("delete", "--force", "c1", check=False)
                u.run("daemon", "stop", check=False)


def test_daemon_from_a_directory_holding_an_lxmgr_folder(user: User) -> None:
    assert user.status() == (3, "stopped")
    started = user.run("daemon", "start")
    pid = user.pid()
    assert started.stdout == f"lxmgrd started (pid {pid})\n"
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    code, text = user.status()
    assert code == 0 and text.startswith(f"running (pid {pid}, ")
    user.run("launch", "debian", "c1")
    assert user.run("exec", "c1", "--", "cat", "/proc/1/comm").stdout == "systemd\n"
    assert "RUNNING" in user.run("list", "c1").stdout
    user.run("delete", "--force", "c1")
    assert not (user.cwd / "imported").exists(), (user.cwd / "imported").read_text()
    # killed: its pid file is left, status says dead (1); a start replaces it
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while user.status()[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert user.status() == (1, f"dead ({user.root}/lxmgrd.pid is left: pid {pid} is not "
                                "running)")
    user.run("daemon", "start")
    again = user.pid()
    assert again != pid and user.status()[0] == 0
    assert user.run("daemon", "stop").stdout == f"lxmgrd stopped (pid {again})\n"
    assert user.status() == (3, "stopped")
    assert not (user.cwd / "imported").exists()
