"""Shared helpers of the lifecycle benchmark: timing, boot polling, RSS, safe temp dirs.

Imports only the stdlib; both sides (bench/lxmgr_side.py, bench/lxc_side.py) use it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

POLL_INTERVAL = 0.010  # seconds between two boot-state queries
BOOT_TIMEOUT = 120.0
EXEC_SAMPLES = 20
BOOTED = ("running", "degraded")


@dataclass
class RunResult:
    """One create..delete cycle: metric -> value (seconds, or KiB for *_rss)."""

    metrics: dict[str, float] = field(default_factory=dict)
    boot_state: str = ""
    boot_polls: int = 0
    notes: list[str] = field(default_factory=list)


def timed(fn: Callable[[], object]) -> float:
    """Seconds fn() took."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def wait_booted(query: Callable[[], str], t0: float,
                timeout: float = BOOT_TIMEOUT) -> tuple[float, str, int]:
    """Poll query() (the `systemctl is-system-running` word) every POLL_INTERVAL until it
    says running or degraded; returns (seconds since t0, state, polls)."""
    polls = 0
    state = ""
    while True:
        state = query()
        polls += 1
        elapsed = time.perf_counter() - t0
        if state in BOOTED:
            return elapsed, state, polls
        if elapsed > timeout:
            raise TimeoutError(f"Boot did not reach running/degraded in {timeout:.0f}s "
                               f"(last state '{state or 'none'}')")
        time.sleep(POLL_INTERVAL)


def exec_median(run_true: Callable[[], int], samples: int = EXEC_SAMPLES) -> float:
    """Median seconds of `samples` round trips of `true`; each must exit 0."""
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        status = run_true()
        times.append(time.perf_counter() - t0)
        if status != 0:
            raise RuntimeError(f"`true` exited with {status}")
    return statistics.median(times)


def rss_kib(pid: int) -> float:
    """VmRSS of pid in KiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1])
    except FileNotFoundError:
        pass
    return 0.0


def mounts_under(path: Path) -> list[str]:
    """Mount points (host mount namespace) at or below path."""
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix[:-1] or point.startswith(prefix):
                found.append(point)
    return found


def remove_private_dir(path: Path) -> str | None:
    """rm -rf a temp dir we made, unless something is still mounted below it (then a
    warning is returned and the dir is left for inspection). Symlinks are not followed."""
    if not path.exists():
        return None
    busy = mounts_under(path)
    if busy:
        return f"Left {path} in place: still mounted below it: {', '.join(busy)}"
    shutil.rmtree(path)
    return None


def make_private_dir(prefix: str) -> Path:
    """A fresh dir under /var/tmp (same filesystem as the image cache, not tmpfs), 0711 so
    the container's shifted root can traverse it."""
    path = Path(os.path.realpath("/var/tmp")) / f"{prefix}{os.urandom(4).hex()}"
    path.mkdir(mode=0o711)
    os.chmod(path, 0o711)
    return path
