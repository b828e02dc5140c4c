"""What bench/noisy.py measures from the host while a phase runs: paced latency probes
(GET, API exec, CLI exec, a content check, a host fork+exec reference), a sampler of host
headroom and of the noisy container's cgroup, and the percentile summary.

Imports the stdlib, bench/api.py's RawHttp and api_exec, and lxmgr.client (lazily). Every
probe runs in its own thread with its own connection until stop() is called; the threads are
joined by stop(), never left behind. The cgroup reader only reads files under the cgroup of
an instance our private daemon made (`<hierarchy>/<base>/<name>`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from api import RawHttp, api_exec

CGROUP_ROOT = Path("/sys/fs/cgroup")
SAMPLE_INTERVAL = 0.25  # seconds between two headroom samples


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (pct in 0-100)."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize_latencies(values: list[float]) -> dict[str, float]:
    """n, p50, p95, p99, max, mean in ms of latencies in seconds (n 0: only n)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(ordered), "p50": percentile(ordered, 50) * 1000,
            "p95": percentile(ordered, 95) * 1000, "p99": percentile(ordered, 99) * 1000,
            "max": ordered[-1] * 1000, "mean": sum(ordered) / len(ordered) * 1000}


# -- the noisy container's cgroup -----------------------------------------------------------

class CgroupView:
    """Reads an instance's cgroup files, v1 (one dir per controller) or v2 (one dir)."""

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.v1 = (CGROUP_ROOT / "pids" / rel).is_dir()
        if not self.v1 and not (CGROUP_ROOT / rel / "cgroup.procs").is_file():
            raise RuntimeError(f"No cgroup '{rel}' under {CGROUP_ROOT}")

    def _read(self, v1: tuple[str, str], v2: str) -> str:
        path = CGROUP_ROOT / v1[0] / self.rel / v1[1] if self.v1 else CGROUP_ROOT / self.rel / v2
        return path.read_text().strip()

    def _keyed(self, v1: tuple[str, str], v2: str, key: str) -> int:
        for line in self._read(v1, v2).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
        return 0

    def limits(self) -> dict[str, str]:
        """pids.max, the memory limit in bytes and the effective CPU set, as the kernel has
        them."""
        return {"pids.max": self._read(("pids", "pids.max"), "pids.max"),
                "memory": self._read(("memory", "memory.limit_in_bytes"), "memory.max"),
                "cpus": self._read(("cpuset", "cpuset.effective_cpus"),
                                   "cpuset.cpus.effective")}

    def pids(self) -> int:
        return int(self._read(("pids", "pids.current"), "pids.current"))

    def memory(self) -> int:
        return int(self._read(("memory", "memory.usage_in_bytes"), "memory.current"))

    def counters(self) -> dict[str, int]:
        """Cumulative counters: forks refused at pids.max, OOM kills, CPU ns."""
        cpu = (int(self._read(("cpuacct", "cpuacct.usage"), "")) if self.v1 else
               self._keyed(("", ""), "cpu.stat", "usage_usec") * 1000)
        return {"fork_refused": self._keyed(("pids", "pids.events"), "pids.events", "max"),
                "oom_kill": self._keyed(("memory", "memory.oom_control"), "memory.events",
                                        "oom_kill"),
                "cpu_ns": cpu}


# -- host headroom and the noisy container's usage, sampled ---------------------------------

def host_memory_available() -> int:
    """MemAvailable in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def host_tasks() -> int:
    """Threads on the host (the second number of /proc/loadavg's 4th field)."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[1])


def host_task_limit() -> int:
    """The lower of kernel.pid_max and kernel.threads-max."""
    values = [int(Path(f"/proc/sys/kernel/{k}").read_text()) for k in ("pid_max", "threads-max")]
    return min(values)


@dataclass
class Sampler:
    """A thread that records min MemAvailable, max host tasks and the noisy cgroup's peak
    pids and memory every SAMPLE_INTERVAL."""

    cgroup: CgroupView
    mem_available_min: int = 1 << 62
    tasks_max: int = 0
    noisy_pids_max: int = 0
    noisy_memory_max: int = 0
    samples: int = 0
    errors: list[str] = field(default_factory=list)

    def sample(self) -> None:
        self.mem_available_min = min(self.mem_available_min, host_memory_available())
        self.tasks_max = max(self.tasks_max, host_tasks())
        try:
            self.noisy_pids_max = max(self.noisy_pids_max, self.cgroup.pids())
            self.noisy_memory_max = max(self.noisy_memory_max, self.cgroup.memory())
        except (OSError, ValueError) as err:
            if len(self.errors) < 3:
                self.errors.append(f"cgroup read: {err}")
        self.samples += 1


# -- probes -------------------------------------------------------------------------------

@dataclass
class Probe:
    """One paced probe: `call()` returns the seconds its request took and None when the
    answer was right, else why not (a raised exception is a failed round, timed whole)."""

    name: str
    interval: float
    call: Callable[[], tuple[float, str | None]]
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failed: int = 0

    def run(self, stop: threading.Event) -> None:
        next_at = time.perf_counter()
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                elapsed, why = self.call()
            except Exception as err:  # noqa: BLE001 - a failed round is a result
                elapsed, why = time.perf_counter() - t0, f"{type(err).__name__}: {err}"
            self.latencies.append(elapsed)
            if why is not None:
                self.failed += 1
                if len(self.failures) < 5:
                    self.failures.append(why)
            next_at = max(next_at + self.interval, time.perf_counter())
            stop.wait(next_at - time.perf_counter())


class ProbeSet:
    """Runs probes and a sampler in threads between start() and stop()."""

    def __init__(self, probes: list[Probe], sampler: Sampler) -> None:
        self.probes = probes
        self.sampler = sampler
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def _sample_loop(self) -> None:
        while not self.stop_event.is_set():
            self.sampler.sample()
            self.stop_event.wait(SAMPLE_INTERVAL)

    def start(self) -> None:
        targets = [(p.name, lambda p=p: p.run(self.stop_event)) for p in self.probes]
        targets.append(("sampler", self._sample_loop))
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"noisy-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout: float = 120.0) -> list[str]:
        """Stop and join every thread; names of those still running after timeout."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        return [t.name for t in self.threads if t.is_alive()]


def get_probe(socket_path: str, quiet: list[str], interval: float) -> tuple[Probe, RawHttp]:
    """GET /1.0/instances?recursion=1 on one kept-alive connection (timed: request and body
    read); right when every quiet instance is listed Running (checked untimed)."""
    raw = RawHttp(socket_path)

    def call() -> tuple[float, str | None]:
        t0 = time.perf_counter()
        body = raw.get("/1.0/instances?recursion=1")
        elapsed = time.perf_counter() - t0
        listed = {i["name"]: i.get("status") for i in json.loads(body)["metadata"]}
        bad = [n for n in quiet if listed.get(n) != "Running"]
        return elapsed, f"not Running: {', '.join(bad)}" if bad else None

    return Probe("get_r1", interval, call), raw


class ExecCaller:
    """API exec into one instance on a client of its own (one per probe thread)."""

    def __init__(self, socket_path: str) -> None:
        from lxmgr.client import Client

        self.client = Client(socket_path, timeout=60)
        self.null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)

    def run(self, name: str, command: list[str]) -> tuple[int, str]:
        """Exit status and stdout of command in name."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                status = api_exec(self.client, name, command, write_end, self.null)
            except BaseException:
                self.client.close()
                raise
            os.close(write_end)
            write_end = -1
            out = b""
            while chunk := os.read(read_end, 65536):
                out += chunk
            return status, out.decode(errors="replace")
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)

    def true(self, name: str) -> int:
        return api_exec(self.client, name, ["true"], self.null, self.null)

    def close(self) -> None:
        self.client.close()
        os.close(self.null)


def exec_probe(caller: ExecCaller, name: str, interval: float) -> Probe:
    """exec true into name (API, in-process)."""
    def call() -> tuple[float, str | None]:
        t0 = time.perf_counter()
        status = caller.true(name)
        return time.perf_counter() - t0, None if status == 0 else f"true exited {status}"

    return Probe("exec_api", interval, call)


def cli_probe(argv: list[str], env: dict[str, str], interval: float) -> Probe:
    """`lxmgr exec NAME -T -- true` (the real CLI, stdio /dev/null)."""
    def call() -> tuple[float, str | None]:
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            return elapsed, (f"exit {proc.returncode}: "
                             f"{proc.stderr.decode(errors='replace').strip()}")
        return elapsed, None

    return Probe("exec_cli", interval, call)


def host_probe(interval: float) -> Probe:
    """/bin/true run on the host (fork + exec, no container): what the kernel alone gives,
    to tell a host-wide slowdown (a fork storm stalls every fork) from the daemon's."""
    def call() -> tuple[float, str | None]:
        t0 = time.perf_counter()
        status = subprocess.run(["/bin/true"], stdin=subprocess.DEVNULL, timeout=60).returncode
        return time.perf_counter() - t0, None if status == 0 else f"exit {status}"

    return Probe("host_true", interval, call)


def content_probe(caller: ExecCaller, names: list[str], interval: float) -> Probe:
    """Each round, in the next quiet instance: write a fresh token to a file, read it back
    and print it (a process, the filesystem and the exec streams all work)."""
    turn = [0]

    def call() -> tuple[float, str | None]:
        name = names[turn[0] % len(names)]
        turn[0] += 1
        token = os.urandom(8).hex()
        t0 = time.perf_counter()
        status, out = caller.run(name, ["sh", "-c", f"echo {token} >/tmp/lxmgr-noisy-probe && "
                                        "cat /tmp/lxmgr-noisy-probe"])
        elapsed = time.perf_counter() - t0
        if status != 0 or out.strip() != token:
            return elapsed, f"{name}: exit {status}, printed '{out.strip()[:40]}'"
        return elapsed, None

    return Probe("content", interval, call)
