"""Long-running helper daemons we started (dnsmasq, lxcfs): reap them, signal them by pid,
wait until one is gone. A pid we did not start (adopted through a pid file after a daemon
restart) is waited for through /proc, since only our own children can be waited on.

Thin side effects; imports the stdlib only.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


class Children:
    """The processes one owner started and has not reaped yet."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        self._procs[proc.pid] = proc

    def forget(self, pid: int) -> None:
        self._procs.pop(pid, None)

    def reap(self) -> None:
        """Collect the exit status of those that ended (no zombies left behind)."""
        for pid, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[pid]

    def wait_gone(self, pid: int, timeout: float) -> bool:
        """Whether pid ended within timeout (a zombie of someone else's counts as gone)."""
        proc = self._procs.get(pid)
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            self._procs.pop(pid, None)
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return True
            if state in ("Z", "X"):
                return True
            time.sleep(0.02)
        return False


def read_from(path: str | os.PathLike[str], offset: int) -> str:
    """What a daemon wrote to its log file since offset ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def send_signal(pid: int, sig: int) -> None:
    """kill(pid, sig); a process already gone is not an error."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
