#!/usr/bin/env python3
"""Storage benchmark: create-from-cached-image time and disk per instance, snapshot and
restore time, for lxmgr's dir, overlay and btrfs pools beside a private LXD's dir and btrfs.

Run as root from the repository root:

    python3 bench/storage.py                     # table (progress on stderr)
    python3 bench/storage.py --json              # machine-readable (ms, MiB), every sample
    python3 bench/storage.py --no-lxd            # lxmgr only (or --no-lxmgr)
    python3 bench/storage.py --counts 1,10,50 --dir-count 10 --runs 5

Per pool: create --counts' largest number of instances in a row from the cached debian image
(dir pools: --dir-count, as each create copies ~170 MB), each create timed, the disk used per
instance at each count; then --runs snapshot/restore cycles on the last (stopped) instance,
each after writing a --state-mib random file into its writable state from the host; then
every instance is deleted (timed). lxmgr runs in-process (Manager, storage_lxmgr.py), LXD
through `lxc` against a private daemon (storage_lxd.py). Everything created is removed in
`finally`, even on failure or Ctrl-C, and the host's loop devices and mounts are checked for
leftovers of ours afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]

from api_lxd import lxd_column  # noqa: E402
from common import align, cleanup_side, print_report, root_and_signals  # noqa: E402
from storage_util import (  # noqa: E402
    MIB,
    HostState,
    Series,
    delete_all,
    host_check,
    progress,
    run_series,
)

LXMGR_DRIVERS = ("dir", "overlay", "btrfs")
LXD_DRIVERS = ("dir", "btrfs")
TARGET_MS = 100.0
TARGET_DRIVERS = ("lxmgr overlay", "lxmgr btrfs")
CONSTANT_RATIO = 1.5  # late creates within this factor of early ones count as constant


# -- measuring ---------------------------------------------------------------------------------

def checkpoints(counts: list[int], count: int) -> list[int]:
    return sorted({c for c in counts if c <= count} | {count})


def measure_pools(side: Any, drivers: tuple[str, ...], args: argparse.Namespace,
                  report: dict[str, Any], notes: list[str]) -> None:
    """Each driver in turn: pool, series, deletes, pool gone (before the next one)."""
    for driver in drivers:
        count = min(args.dir_count, args.counts[-1]) if driver == "dir" else args.counts[-1]
        label = f"{side.label} {driver}"
        series = Series(label, "btrfs" if driver == "btrfs" else "du", count)
        report["pools"][label] = series
        names: list[str] = []
        backend = None
        try:
            backend = side.pool(driver, args.pool_size)
            run_series(backend, series, names, checkpoints(args.counts, count), args.runs,
                       args.state_mib * MIB)
        except Exception as err:  # noqa: BLE001 - keep what was measured, clean up after
            series.error = str(err)
            notes.append(f"{label} failed: {err}")
            traceback.print_exc(file=sys.stderr)
        finally:
            if backend is not None:
                progress(f"[{label}] deleting {len(names)} instances")
                notes += delete_all(backend, names, series)
                try:
                    side.drop_pool(backend.pool)
                except Exception as err:  # noqa: BLE001 - the side's cleanup retries
                    notes.append(f"{label}: pool delete failed: {err}")


def measure_lxmgr(image_dir: Path, args: argparse.Namespace, report: dict[str, Any],
                  notes: list[str]) -> None:
    from storage_lxmgr import LxmgrStorage

    side = LxmgrStorage(image_dir)
    report["roots"].append(side.dir)
    try:
        report["lxmgr_version"] = side.version()
        measure_pools(side, args.drivers, args, report, notes)
    finally:
        cleanup_side(side, notes)


def measure_lxd(image_dir: Path, args: argparse.Namespace, report: dict[str, Any],
                notes: list[str]) -> str:
    from storage_lxd import LxdStorage

    side = LxdStorage()
    report["roots"].append(side.dir)
    try:
        progress("[LXD] starting a private lxd and importing the image")
        side.start(image_dir)
        report["lxd_version"] = side.version()
        report["lxc_round_trip_ms"] = side.client_round_trip_ms()
        measure_pools(side, tuple(d for d in LXD_DRIVERS if d in args.drivers), args,
                      report, notes)
    except Exception as err:  # noqa: BLE001 - keep what was measured, clean up after
        notes.append(f"LXD failed: {err}")
        traceback.print_exc(file=sys.stderr)
        return f"failed: {err}"
    finally:
        cleanup_side(side, notes)
    return "measured"


# -- rendering ---------------------------------------------------------------------------------

def stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def num(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def spread(values: list[float]) -> str:
    s = stats(values)
    return "-" if s is None else f"{num(s['median'])} ({num(s['min'])}-{num(s['max'])})"


def rows(counts: list[int], runs: int, state_mib: int) \
        -> list[tuple[str, str, Callable[[Series], str]]]:
    """(label, unit, cell) per table row."""
    out: list[tuple[str, str, Callable[[Series], str]]] = [
        ("instances created", "", lambda s: str(len(s.create_ms)))]
    for c in counts:
        out.append((f"create #{c}", "ms", lambda s, c=c:  # type: ignore[misc]
                    num(s.create_ms[c - 1]) if len(s.create_ms) >= c else "-"))
    out.append(("create, all: median (min-max)", "ms", lambda s: spread(s.create_ms)))
    for c in counts:
        out.append((f"disk per instance at {c}", "MiB", lambda s, c=c:  # type: ignore[misc]
                    num(s.disk[c]["per_instance_mib"]) if c in s.disk else "-"))
    out += [(f"snapshot ({state_mib} MiB state), x{runs}", "ms", lambda s: spread(s.snapshot_ms)),
            (f"restore, x{runs}", "ms", lambda s: spread(s.restore_ms)),
            ("delete, each", "ms", lambda s: spread(s.delete_ms))]
    return out


def render_table(report: dict[str, Any]) -> str:
    pools: dict[str, Series] = report["pools"]
    if not pools:
        return "(nothing measured)"
    table = [["metric", "unit", *pools]]
    for label, unit, cell in rows(report["counts"], report["runs"], report["state_mib"]):
        table.append([label, unit, *(cell(s) for s in pools.values())])
    return align(table)


def constant_check(series: Series) -> tuple[bool, str]:
    """Late creates (the last fifth, at most 10) against early ones (#2 on: #1 may import
    the image into a btrfs pool), by median."""
    n = len(series.create_ms)
    window = max(1, min(10, n // 5))
    if n < 2 + window:
        return True, f"only {n} creates"
    early = statistics.median(series.create_ms[1:1 + window])
    late = statistics.median(series.create_ms[-window:])
    ok = late <= CONSTANT_RATIO * early
    return ok, (f"#2-#{1 + window} median {num(early)} ms, #{n - window + 1}-#{n} median "
                f"{num(late)} ms (ratio {late / early:.2f}, limit {CONSTANT_RATIO:g})")


def targets(report: dict[str, Any]) -> list[str]:
    """Create and snapshot constant and under TARGET_MS on lxmgr's overlay and btrfs."""
    lines = []
    for label in TARGET_DRIVERS:
        series = report["pools"].get(label)
        if series is None or not series.create_ms:
            continue
        constant, how = constant_check(series)
        create = statistics.median(series.create_ms)
        ok = constant and create < TARGET_MS
        lines.append(f"target {label} create constant and < {TARGET_MS:g} ms: median "
                     f"{num(create)} ms, #1 {num(series.create_ms[0])} ms; {how}: "
                     f"{'met' if ok else 'MISSED'}")
        if series.snapshot_ms:
            snap = stats(series.snapshot_ms)
            assert snap is not None
            lines.append(f"target {label} snapshot < {TARGET_MS:g} ms: median "
                         f"{num(snap['median'])} ms, max {num(snap['max'])} ms: "
                         f"{'met' if snap['median'] < TARGET_MS else 'MISSED'}")
    return lines


def render_footer(report: dict[str, Any]) -> str:
    args = report["args"]
    lxmgr = report.get("lxmgr") or f"lxmgr {report.get('lxmgr_version', '?')}"
    lines = [f"{lxmgr} (git {report['git']}); LXD: {report['lxd']} "
             f"{report.get('lxd_version', '')}".rstrip(),
             f"counts {args['counts']}; dir pools create {args['dir_count']} instances "
             f"(--dir-count: each create copies the ~170 MB rootfs), the others "
             f"{args['counts'][-1]}",
             f"snapshot/restore: {args['runs']} cycles on the last instance (stopped, never "
             f"started); before each snapshot a {args['state_mib']} MiB random file is "
             "written from the host into its writable state (lxmgr overlay: upper/, dir: "
             "rootfs/, btrfs: containers/<name>/rootfs; LXD: storage-pools/<pool>/"
             "containers/<name>/rootfs), fsynced and synced; it is deleted before the "
             "restore, which must bring it back",
             "disk per instance: dir/overlay = allocated blocks (du) of the volume dir, "
             "mean over the instances; btrfs = pool bytes used (`btrfs filesystem df`: data + "
             "metadata x copies, DUP = 2, after syncfs) from instance #1 to #N over N-1; at #1 "
             "from the empty pool, so it includes the image copied into the pool "
             "(JSON: statvfs delta too; quotas are off)",
             f"btrfs pools: loop file of {args['pool_size']}; load average (1/5/15 min) "
             f"before {report['load_before']}, after {report.get('load_after')}"]
    if "lxc_round_trip_ms" in report:
        lines.append(f"LXD rows are `lxc` calls: each includes the client round trip "
                     f"(`lxc query /1.0` median {num(report['lxc_round_trip_ms'])} ms)")
    lines += targets(report)
    check = report.get("host_check")
    if check:
        verdict = "clean" if check["clean"] else "LEFTOVERS"
        lines.append(f"host check: {verdict}: our loop devices left {check['loops_left']}, "
                     f"mounts left {check['mounts_left']}, dirs left {check['dirs_left']} "
                     f"(loop/mount changes by others meanwhile, untouched: "
                     f"{check['other_loop_changes']}/{check['other_mount_changes']})")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def to_json(report: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in report.items() if k not in ("pools", "roots")}
    out["pools"] = {label: s.to_dict() for label, s in report["pools"].items()}
    out["roots"] = [str(r) for r in report["roots"]]
    out["targets"] = targets(report)
    return out


# -- main --------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--counts", default="1,10,50",
                        help="instance counts reported (default 1,10,50; the largest is "
                             "created per pool)")
    parser.add_argument("--dir-count", type=int, default=10,
                        help="instances per dir pool (default 10: each copies the image)")
    parser.add_argument("--runs", type=int, default=5,
                        help="snapshot/restore cycles per pool (default 5)")
    parser.add_argument("--state-mib", type=int, default=10,
                        help="MiB written into the state before each snapshot (default 10)")
    parser.add_argument("--pool-size", default="4GiB", help="btrfs loop file size")
    parser.add_argument("--drivers", default=",".join(LXMGR_DRIVERS),
                        help="drivers to measure (default dir,overlay,btrfs)")
    parser.add_argument("--no-lxd", action="store_true", help="measure lxmgr only")
    parser.add_argument("--no-lxmgr", action="store_true", help="measure LXD only")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install lxd lxd-client when missing")
    args = parser.parse_args(argv)
    args.counts = sorted({int(c) for c in args.counts.split(",") if c.strip()})
    args.drivers = tuple(d for d in LXMGR_DRIVERS if d in args.drivers.split(","))
    if not args.counts or args.counts[0] < 1 or args.dir_count < 1 or args.runs < 0:
        parser.error("--counts, --dir-count need positive integers, --runs >= 0")
    return args


def git_head() -> str:
    proc = subprocess.run(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not root_and_signals():
        return 1
    from tests.image_cache import cached_debian_image

    image = cached_debian_image()
    notes: list[str] = []
    report: dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k != "json"}, "counts": args.counts,
        "runs": args.runs, "state_mib": args.state_mib, "image": image.fingerprint,
        "git": git_head(), "pools": {}, "roots": [], "lxd": "not run", "notes": notes,
        "units": {"create": "ms", "snapshot": "ms", "restore": "ms", "delete": "ms",
                  "disk": "MiB"}}
    before = HostState.now()
    report["load_before"] = [round(x, 2) for x in os.getloadavg()]
    try:
        if args.no_lxmgr:
            report["lxmgr"] = "lxmgr: skipped (--no-lxmgr)"
        else:
            measure_lxmgr(image.path.parent, args, report, notes)
        report["lxd"] = lxd_column(args.no_lxd, args.no_install, notes,
                                   lambda: measure_lxd(image.path, args, report, notes))
    except KeyboardInterrupt:
        notes.append("interrupted (Ctrl-C or SIGTERM): partial figures")
        report["interrupted"] = True
        if report["lxd"] == "not run" and "lxd_version" in report:
            report["lxd"] = "interrupted"
    finally:
        report["load_after"] = [round(x, 2) for x in os.getloadavg()]
        report["host_check"] = host_check(before, report["roots"])
        print_report(to_json(report) if args.json else report, args.json,
                     lambda: render_table(report), lambda: render_footer(report))
    if not report["host_check"]["clean"]:
        return 2
    return 130 if report.get("interrupted") else 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
