"""Shared helpers of the benchmarks: timing, boot polling, RSS, safe temp dirs, timed CLI
runs, summaries and side cleanup.

Imports only the stdlib; lifecycle.py (lxmgr_side.py, lxc_side.py), api.py and network.py
(api_lxmgr.py, api_lxd.py) use it.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def run_checked(argv: list[str], env: dict[str, str], *, input: str | None = None,
                timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run argv with captured text output; raises RuntimeError (with stderr) when it fails
    and check is set."""
    proc = subprocess.run(argv, env=env, input=input, capture_output=True, text=True,
                          timeout=timeout, stdin=None if input is not None else
                          subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Seconds argv took (stdin and stdout /dev/null); raises when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return elapsed


def summarize(samples: dict[str, list[float]], keys: dict[str, Any], scale: float = 1000.0) \
        -> dict[str, dict[str, float]]:
    """key -> median/min/max (times scale: seconds -> ms by default) and n, for each key of
    `keys` that has samples."""
    out = {}
    for key in keys:
        values = samples.get(key)
        if values:
            out[key] = {"median": statistics.median(values) * scale,
                        "min": min(values) * scale, "max": max(values) * scale,
                        "n": len(values)}
    return out


def format_cell(summary: dict[str, float] | None) -> tuple[str, str]:
    """(median, 'min / max') with 2, 1 or 0 decimals by magnitude; ('-', '') when missing."""
    if summary is None:
        return "-", ""
    digits = 2 if summary["median"] < 10 else 1 if summary["median"] < 1000 else 0
    return (f"{summary['median']:.{digits}f}",
            f"{summary['min']:.{digits}f} / {summary['max']:.{digits}f}")


def align(rows: list[list[str]]) -> str:
    """Left-aligned plain-text table; a dashed line under the first (header) row."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def raise_interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM handler: raise KeyboardInterrupt so the finally blocks run, as on Ctrl-C."""
    raise KeyboardInterrupt


def cleanup_side(side: Any, notes: list[str]) -> None:
    """side.cleanup() with a second Ctrl-C ignored meanwhile; its warnings become notes."""
    print(f"[{side.label}] cleaning up", file=sys.stderr, flush=True)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        notes += [f"{side.label} cleanup: {w}" for w in side.cleanup()]
    finally:
        signal.signal(signal.SIGINT, previous)


def root_and_signals() -> bool:
    """False (with a message) unless root; else SIGTERM is made to run finally blocks."""
    if os.geteuid() != 0:
        print("Error: the benchmark needs root", file=sys.stderr)
        return False
    signal.signal(signal.SIGTERM, raise_interrupt)
    return True


def print_report(report: dict[str, object], as_json: bool, *render: Callable[[], str]) -> None:
    """The report as JSON, else each render() (table, footer) in turn."""
    import json

    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for part in render:
            print(part())


def side_summary(report: dict[str, object], side: str, key: str) -> dict[str, float] | None:
    """report[side]['summary'][key] when that side was measured, else None."""
    data = report.get(side)
    if isinstance(data, dict):
        return data.get("summary", {}).get(key)  # type: ignore[no-any-return]
    return None
