#!/usr/bin/env python3
"""Noisy neighbours: API and exec latency while one container runs hogs within its limits.

Run as root from the repository root:

    python3 bench/noisy.py                  # table on stdout, progress on stderr (~3 min)
    python3 bench/noisy.py --json           # the same as JSON (ms), with every sample
    python3 bench/noisy.py --duration 5     # quick

A private lxmgrd (bench/api_lxmgr.py) gets a btrfs pool (its own loop file) and a `noisy`
container with limits.processes, limits.memory, limits.cpu and a root disk `size` on that pool
(a btrfs quota), plus `--quiet` containers without limits. Phase by phase (idle, then each hog
alone, then all hogs together), the noisy container runs the hogs of bench/noisy_payload.py
for `--duration` seconds while the host measures, paced: GET /1.0/instances?recursion=1 on a
kept-alive unix-socket connection, `exec true` into the first quiet container through the API
(in-process) and through the `lxmgr` CLI, and a content check (a token written and read back
by exec in each quiet container in turn); `/bin/true` run on the host is the reference for
what the kernel alone gives. The table gives n, p50, p95, p99 and max per phase
and probe against the goal p99 < 200 ms; a second table says whether the other containers
kept working (every probe right, their systemd still running or degraded, host memory and
task headroom) and what the hogs got (peak pids and memory against the limits, forks refused,
OOM kills, CPU time, MiB written). Everything created is removed in `finally`, hogs first
(the noisy container is force-deleted), even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]

from api_lxmgr import LxmgrSide  # noqa: E402
from common import cleanup_side, print_report, root_and_signals  # noqa: E402
from noisy_payload import ROLES, done_argv, parse_stats, payload_argv, stats_argv  # noqa: E402
from noisy_probe import (  # noqa: E402
    CgroupView,
    ExecCaller,
    ProbeSet,
    Sampler,
    cli_probe,
    content_probe,
    exec_probe,
    get_probe,
    host_memory_available,
    host_probe,
    host_task_limit,
    summarize_latencies,
)
from noisy_report import render_footer, render_tables  # noqa: E402

CGROUP_BASE = "lxmgr-bench-noisy"
POOL = "bench-noisy"
PHASE_ROLES = {"idle": [], "cpu": ["cpu"], "memory": ["memory"], "disk": ["disk"],
               "fork": ["fork"], "all": list(ROLES)}
BOOTED = ("running", "degraded")
BOOT_TIMEOUT = 120.0
SETTLE_SLACK = 5  # pids above the phase's starting count that still count as settled
MAX_PROCESSES = 4096  # the bomb is refused above this limits.processes


class NoisyBench:
    """The scenario on one side: setup(), run_phase() per phase; samples survive a failure."""

    def __init__(self, side: LxmgrSide, args: argparse.Namespace, notes: list[str]) -> None:
        from lxmgr.client import Client

        self.side = side
        self.args = args
        self.notes = notes
        self.client = Client(side.socket_path, timeout=180)
        self.tag = os.urandom(3).hex()
        self.noisy = f"lxmbn-{self.tag}-noisy"
        self.quiet = [f"lxmbn-{self.tag}-quiet{i + 1}" for i in range(args.quiet)]
        self.pool: str | None = None
        self.disk = "no quota"
        self.admin = ExecCaller(side.socket_path)  # starts hogs, reads stats and states
        self.callers: list[ExecCaller] = []
        self.limits_seen: dict[str, str] = {}
        self.cgroup: CgroupView | None = None

    def log(self, message: str) -> None:
        print(f"[noisy] {message}", file=sys.stderr, flush=True)

    # -- set-up ------------------------------------------------------------------------------

    def make_pool(self) -> dict[str, str]:
        """A btrfs pool (loop file in LXMGR_DIR) so the root disk `size` is a quota; without
        btrfs, the default pool and a note (the disk filler is then bounded by --disk-mib)."""
        try:
            self.client.operate("POST", "/1.0/storage-pools", body={
                "name": POOL, "driver": "btrfs", "config": {"size": self.args.pool_size}})
        except Exception as err:  # noqa: BLE001 - no btrfs here: measure without a quota
            self.notes.append(f"no btrfs pool ({err}): the noisy root disk has no quota, the "
                              f"disk filler stops at {self.args.disk_mib} MiB a round")
            return {}
        self.pool = POOL
        self.disk = f"btrfs quota {self.args.disk_size} (pool {self.args.pool_size})"
        return {"root": {"type": "disk", "path": "/", "pool": POOL,
                         "size": self.args.disk_size}}

    def launch(self, name: str, config: dict[str, str], devices: dict[str, Any]) -> None:
        self.side.track(name)
        self.client.operate("POST", "/1.0/instances", body={
            "name": name, "source": {"type": "image", "alias": self.side.image},
            "config": config, "devices": devices})
        self.client.operate("PUT", f"/1.0/instances/{name}/state",
                            body={"action": "start", "timeout": 60})

    def system_state(self, name: str) -> str:
        """What `systemctl is-system-running` prints in name ('' when exec fails)."""
        try:
            return self.admin.run(name, ["systemctl", "is-system-running"])[1].strip()
        except Exception:  # noqa: BLE001 - not up yet, or the exec was refused
            return ""

    def wait_booted(self, name: str) -> str:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while (state := self.system_state(name)) not in BOOTED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"'{name}' did not boot in {BOOT_TIMEOUT:.0f} s "
                                   f"(last state '{state or 'none'}')")
            time.sleep(0.1)
        return state

    def setup(self) -> None:
        args = self.args
        devices = self.make_pool()
        self.log(f"launching {self.noisy} (processes {args.processes}, memory "
                 f"{args.memory}, cpu {args.cpu}, root disk: {self.disk}) and "
                 f"{len(self.quiet)} quiet")
        self.launch(self.noisy, {"limits.processes": str(args.processes),
                                 "limits.memory": args.memory, "limits.cpu": args.cpu}, devices)
        for name in self.quiet:
            self.launch(name, {}, {})
        for name in [self.noisy, *self.quiet]:
            self.log(f"{name}: {self.wait_booted(name)}")
        self.cgroup = CgroupView(self.side.cgroup_rel(self.noisy))
        self.check_limits()
        self.callers = [ExecCaller(self.side.socket_path) for _ in range(2)]

    def check_limits(self) -> None:
        """The kernel has the noisy container's limits (pids, memory, CPUs) before any hog
        starts; else refuse to start them."""
        from lxmgr.model.units import parse_cpuset, parse_size

        assert self.cgroup is not None
        seen = self.cgroup.limits()
        cpus = len(parse_cpuset(seen["cpus"]))
        wrong = []
        if seen["pids.max"] != str(self.args.processes):
            wrong.append(f"pids.max {seen['pids.max']}")
        if seen["memory"] == "max" or int(seen["memory"]) > parse_size(self.args.memory):
            wrong.append(f"memory limit {seen['memory']}")
        if cpus > int(self.args.cpu):
            wrong.append(f"{cpus} CPUs ({seen['cpus']})")
        if wrong:
            raise RuntimeError(f"Refusing to start the hogs: the noisy container's cgroup "
                               f"has {', '.join(wrong)}")
        self.limits_seen = seen

    # -- a phase -----------------------------------------------------------------------------

    def probes(self) -> tuple[ProbeSet, Any]:
        args, first = self.args, self.quiet[0]
        get, raw = get_probe(self.side.socket_path, self.quiet, args.get_interval)
        probes = [get, exec_probe(self.callers[0], first, args.exec_interval)]
        if not args.no_cli:
            probes.append(cli_probe(self.side.exec_argv(first, ["true"]), self.side.env,
                                    args.cli_interval))
        probes.append(content_probe(self.callers[1], self.quiet, args.content_interval))
        probes.append(host_probe(args.host_interval))
        assert self.cgroup is not None
        return ProbeSet(probes, Sampler(self.cgroup)), raw

    def start_hogs(self, roles: list[str]) -> None:
        self.check_limits()
        argv = payload_argv(self.args.duration, roles, cpu_hogs=self.args.cpu_hogs,
                            disk_mib=self.args.disk_mib)
        status, _ = self.admin.run(self.noisy, argv)
        if status != 0:
            raise RuntimeError(f"Starting the hogs in '{self.noisy}' exited {status}")

    def hogs_done(self) -> bool:
        """The payload wrote its done file (an exec refused meanwhile, by the bomb: not)."""
        try:
            return self.admin.run(self.noisy, done_argv())[0] == 0
        except Exception:  # noqa: BLE001 - no pid left for the exec: still running
            return False

    def wait_settled(self, start_pids: int) -> float:
        """Seconds until the hogs ended (done file written and the noisy cgroup back to its
        phase-start pid count); past their SIGKILL grace, the container is force-stopped and
        started again."""
        from noisy_payload import GRACE

        assert self.cgroup is not None
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.args.duration + GRACE + 20:
            if self.cgroup.pids() <= start_pids + SETTLE_SLACK and self.hogs_done():
                return time.monotonic() - t0
            time.sleep(0.2)
        self.notes.append(f"the hogs outlived their deadline: {self.cgroup.pids()} pids; "
                          f"force-stopped '{self.noisy}' and started it again")
        self.client.operate("PUT", f"/1.0/instances/{self.noisy}/state",
                            body={"action": "stop", "force": True})
        self.client.operate("PUT", f"/1.0/instances/{self.noisy}/state",
                            body={"action": "start"})
        self.wait_booted(self.noisy)
        return time.monotonic() - t0

    def run_phase(self, phase: str) -> dict[str, Any]:
        roles = PHASE_ROLES[phase]
        assert self.cgroup is not None
        self.log(f"phase {phase}: {', '.join(roles) or 'noisy idle'} for "
                 f"{self.args.duration} s")
        start_pids, before = self.cgroup.pids(), self.cgroup.counters()
        probe_set, raw = self.probes()
        t0 = time.monotonic()
        probe_set.start()
        try:
            if roles:
                self.start_hogs(roles)
            time.sleep(max(t0 + self.args.duration - time.monotonic(), 0))
        finally:
            stuck = probe_set.stop()
            raw.close()
        result: dict[str, Any] = {"roles": roles, "stuck_probes": stuck}
        result["settle_s"] = self.wait_settled(start_pids) if roles else 0.0
        after = self.cgroup.counters()
        result["noisy_counters"] = {k: after[k] - before[k] for k in after}
        result["hog_stats"] = (parse_stats(self.admin.run(self.noisy, stats_argv())[1])
                               if roles else {})
        result["quiet_states"] = {n: self.system_state(n) for n in self.quiet}
        result["noisy_state"] = self.system_state(self.noisy)
        sampler = probe_set.sampler
        result["host"] = {"mem_available_min": sampler.mem_available_min,
                          "tasks_max": sampler.tasks_max, "samples": sampler.samples}
        result["noisy_peak"] = {"pids": sampler.noisy_pids_max,
                                "memory": sampler.noisy_memory_max}
        result["probes"] = {p.name: {**summarize_latencies(p.latencies), "failed": p.failed,
                                     "failures": p.failures,
                                     "samples_ms": [round(v * 1000, 3) for v in p.latencies]}
                            for p in probe_set.probes}
        self.log(f"phase {phase}: " + ", ".join(
            f"{name} p99 {data.get('p99', 0):.1f} ms ({data['n']})"
            for name, data in result["probes"].items()))
        return result

    def close(self) -> None:
        for caller in [self.admin, *self.callers]:
            caller.close()
        self.client.close()

    def drop_pool(self) -> None:
        """Delete the btrfs pool once the instances are gone (the side's cleanup does not
        know it)."""
        if self.pool is not None:
            self.side.delete_instances()
            self.client.operate("DELETE", f"/1.0/storage-pools/{self.pool}")
            self.pool = None


class NoisySide(LxmgrSide):
    """api_lxmgr's private lxmgrd with the cgroup base of this benchmark."""

    def __init__(self, image_dir: Path) -> None:
        super().__init__(image_dir, prefix="lxmgr-bench-noisy-", cgroup_base=CGROUP_BASE)

    def cgroup_rel(self, name: str) -> str:
        """The instance's cgroup below each hierarchy's mount point."""
        return f"{self.cgroup_base}/{name}"


def measure(args: argparse.Namespace, image_dir: Path, report: dict[str, Any],
            notes: list[str]) -> None:
    """Set up, run every phase, clean up; fills report (partial on failure or Ctrl-C)."""
    side = NoisySide(image_dir)
    bench: NoisyBench | None = None
    report["phases"] = {}
    try:
        side.start()
        report["version"] = side.version()
        bench = NoisyBench(side, args, notes)
        bench.setup()
        report.update(noisy=bench.noisy, quiet=bench.quiet, disk=bench.disk,
                      limits_seen=bench.limits_seen)
        for phase in args.phases:
            report["phases"][phase] = bench.run_phase(phase)
    except Exception as err:  # noqa: BLE001 - keep what was measured, clean up after
        notes.append(f"lxmgr failed: {err}")
        report["error"] = str(err)
        traceback.print_exc(file=sys.stderr)
    finally:
        if bench is not None:
            try:
                bench.drop_pool()
            except Exception as err:  # noqa: BLE001 - the side's cleanup retries
                notes.append(f"pool cleanup: {err}")
            bench.close()
        cleanup_side(side, notes)  # force-deletes the noisy container: every hog dies


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--json", action="store_true", help="print JSON instead of a table")
    add("--duration", type=int, default=20, help="seconds per phase (default 20)")
    add("--phases", default=",".join(PHASE_ROLES),
        help=f"comma-separated, from {', '.join(PHASE_ROLES)} (default: all, in that order)")
    add("--quiet", type=int, default=2, help="quiet containers (default 2)")
    add("--processes", type=int, default=500, help="noisy limits.processes (default 500)")
    add("--memory", default="256MiB", help="noisy limits.memory (default 256MiB)")
    add("--cpu", default="1", help="noisy limits.cpu, a count (default 1)")
    add("--disk-size", default="1GiB", help="noisy root disk size (default 1GiB)")
    add("--pool-size", default="3GiB", help="btrfs pool loop file size (default 3GiB)")
    add("--disk-mib", type=int, default=2048,
        help="MiB the disk filler writes per round at most (default 2048)")
    add("--cpu-hogs", type=int, default=4, help="busy loops of the CPU hog (default 4)")
    add("--get-interval", type=float, default=0.05, help="seconds between GETs (0.05)")
    add("--exec-interval", type=float, default=0.1, help="seconds between API execs (0.1)")
    add("--cli-interval", type=float, default=0.5, help="seconds between CLI execs (0.5)")
    add("--content-interval", type=float, default=1.0,
        help="seconds between content checks (1.0)")
    add("--host-interval", type=float, default=0.25,
        help="seconds between host /bin/true runs (0.25)")
    add("--no-cli", action="store_true", help="no CLI exec probe")
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in args.phases if p not in PHASE_ROLES]
    if unknown or not args.phases:
        parser.error(f"unknown phase '{unknown[0] if unknown else ''}'")
    if not 1 <= args.processes <= MAX_PROCESSES:
        parser.error(f"--processes must be 1-{MAX_PROCESSES} (it bounds the fork bomb)")
    if not args.cpu.isdigit() or int(args.cpu) < 1:
        parser.error("--cpu must be a CPU count")
    if args.quiet < 1 or args.duration < 1:
        parser.error("--quiet and --duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not root_and_signals():
        return 1
    from tests.image_cache import cached_debian_image

    image = cached_debian_image()
    notes: list[str] = []
    report: dict[str, Any] = {
        "duration_s": args.duration, "phases": args.phases, "quiet": args.quiet,
        "limits": {"processes": args.processes, "memory": args.memory, "cpu": args.cpu,
                   "disk_size": args.disk_size},
        "intervals_s": {"get_r1": args.get_interval, "exec_api": args.exec_interval,
                        "exec_cli": None if args.no_cli else args.cli_interval,
                        "content": args.content_interval, "host_true": args.host_interval},
        "host": {"mem_total": _mem_total(), "mem_available_start": host_memory_available(),
                 "task_limit": host_task_limit(), "cpus": os.cpu_count(),
                 "loadavg_start": os.getloadavg()},
        "image": image.fingerprint, "notes": notes}
    status = 0
    report["lxmgr"] = {}
    try:
        measure(args, image.path.parent, report["lxmgr"], notes)
    except KeyboardInterrupt:
        notes.append("interrupted: the phase under way is not reported")
        status = 130
    finally:
        report["host"]["loadavg_end"] = os.getloadavg()
        print_report(report, args.json, lambda: render_tables(report),
                     lambda: render_footer(report))
    return status


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) * 1024


if __name__ == "__main__":
    sys.exit(main())
