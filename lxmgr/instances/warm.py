"""The pre-started supervisor: a start hands its config path to a Python already up.

Starting the supervisor's interpreter costs ~40-90 ms (more on a busy host), so one waits in
`warm` mode (lxmgr.supervisor.__main__) and a start only writes it a line. The next one is
not started at once: its start-up would compete for the CPU with the container that just
booted (measured: a boot on 2 CPUs is CPU-bound), so it comes REWARM_DELAY later, unless
starts arrive in a burst (then at once, as the next start is likely near).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from lxmgr import paths

REWARM_DELAY = 1.5  # seconds after a start before the next supervisor is pre-started


def spawn_supervisor() -> subprocess.Popen[str]:
    """A supervisor in `warm` mode, in its own session, waiting for a config path.

    -S skips site (and the .pth hooks of everything installed): the supervisor only needs
    lxmgr and pyseccomp, which PYTHONPATH names; it starts faster and stays smaller. -P keeps
    the working directory off sys.path (as for every Python lxmgr starts)."""
    env = {**os.environ, "PYTHONPATH": paths.child_pythonpath()}
    return subprocess.Popen(
        [sys.executable, "-P", "-S", "-m", "lxmgr.supervisor", "warm"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, close_fds=True, env=env,
        start_new_session=True, cwd="/")


class WarmSupervisor:
    """At most one pre-started supervisor; take() is safe from several threads."""

    def __init__(self, delay: float = REWARM_DELAY) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._timer: threading.Timer | None = None
        self._last_take = float("-inf")
        self._closed = False

    def prestart(self) -> None:
        """Start the waiting supervisor now (daemon start-up: the first start is quick)."""
        with self._lock:
            if self._proc is None and not self._closed:
                self._proc = spawn_supervisor()

    def take(self) -> subprocess.Popen[str]:
        """The waiting supervisor (or a fresh one); the next one is scheduled."""
        with self._lock:
            proc, self._proc = self._proc, None
            now = time.monotonic()
            burst, self._last_take = now - self._last_take < self.delay, now
            if not self._closed and (self._timer is None or burst):
                if self._timer is not None:  # a burst: no need to wait for the slow one
                    self._timer.cancel()
                self._timer = threading.Timer(0 if burst else self.delay, self._refill)
                self._timer.daemon = True
                self._timer.start()
        return proc or spawn_supervisor()

    def _refill(self) -> None:
        with self._lock:
            self._timer = None
            if self._proc is None and not self._closed:
                self._proc = spawn_supervisor()

    def close(self) -> None:
        """Cancel the refill; the waiting supervisor exits on EOF (reaped here)."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
            proc, self._proc = self._proc, None
        if timer is not None:
            timer.cancel()
            timer.join()
        if proc is not None:
            proc.communicate("", timeout=30)
