#!/usr/bin/env python3
"""Container lifecycle benchmark: lxmgr next to plain LXC on the same debian rootfs.

Run as root from the repository root:

    python3 bench/lifecycle.py --runs 5          # table
    python3 bench/lifecycle.py --runs 5 --json   # machine-readable
    python3 bench/lifecycle.py --no-install      # skip LXC if it is not installed

Per run and side: create from the cached image, start until `systemctl is-system-running`
inside says running or degraded (polled by exec every 10 ms; the poll itself costs an exec),
exec of `true` (median of 20 round trips), the supervisor/monitor RSS while running, graceful
stop to fully stopped, delete. The table shows median, min and max over the runs.

lxmgr runs in-process through Manager (exec is a control-socket call, no CLI start-up) in a
private LXMGR_DIR whose `images` links to the test image cache, cgroup base `lxmgr-bench`.
LXC runs with the lxc-* tools under a private lxcpath on a per-container `cp -a` of a shifted
copy of the same image rootfs (unprivileged idmap 0 1000000 65536, no network); LXC's create
is therefore the dir-backend copy. LXC is installed with apt-get if missing (lxc-net's bridge
disabled first) unless --no-install. LXD is only reported (installed or not).
Everything created is removed in `finally`, even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]

from bigimage import BigImage  # noqa: E402
from common import RunResult, print_report  # noqa: E402
from lxc_side import LxcBench, ensure_lxc, lxc_version  # noqa: E402
from lxmgr_side import LxmgrBench  # noqa: E402

# metric key -> (row label, unit); *_rss values are KiB, the rest seconds
ROWS = {
    "create": ("create", "ms"),
    "start_return": ("start (call returns)", "ms"),
    "start_running": ("start -> running", "ms"),
    "exec_true": ("exec true", "ms"),
    "stop": ("stop (graceful)", "ms"),
    "delete": ("delete", "ms"),
    "monitor_rss": ("supervisor / monitor RSS", "MiB"),
    "create_big": ("create, bigger image", "ms"),
}


def summarize(runs: list[RunResult], key: str) -> dict[str, float] | None:
    values = [r.metrics[key] for r in runs if key in r.metrics]
    if not values:
        return None
    scale = 1 / 1024 if ROWS[key][1] == "MiB" else 1000.0
    return {"median": statistics.median(values) * scale, "min": min(values) * scale,
            "max": max(values) * scale, "n": len(values)}


def side_report(runs: list[RunResult]) -> dict[str, object]:
    states: dict[str, int] = {}
    for r in runs:
        if r.boot_state:
            states[r.boot_state] = states.get(r.boot_state, 0) + 1
    return {"summary": {k: s for k in ROWS if (s := summarize(runs, k))},
            "boot_states": states,
            "runs": [{"metrics": r.metrics, "boot_state": r.boot_state,
                      "boot_polls": r.boot_polls, "notes": r.notes} for r in runs]}


def lxd_status() -> str:
    sockets = ["/var/snap/lxd/common/lxd/unix.socket", "/var/lib/lxd/unix.socket"]
    if shutil.which("lxc") and any(os.path.exists(s) for s in sockets):
        return "present (not measured)"
    return "not installed"


def run_side(label: str, cycle: Callable[[], RunResult], runs: int,
             notes: list[str]) -> list[RunResult]:
    """Run `runs` cycles; a failing cycle is reported and ends this side."""
    results = []
    for i in range(runs):
        try:
            results.append(cycle())
        except Exception as err:  # noqa: BLE001 - keep what was measured, clean up after
            notes.append(f"{label} run {i + 1} failed: {err}")
            traceback.print_exc(file=sys.stderr)
            break
        print(f"{label} run {i + 1}/{runs}: {results[-1].boot_state}", file=sys.stderr)
    return results


def measure_lxmgr(image_dir: Path, image_rootfs: Path, args: argparse.Namespace,
                  report: dict[str, object], notes: list[str]) -> None:
    bench = LxmgrBench(image_dir)
    try:
        runs = run_side("lxmgr", lambda: bench.run_cycle("debian"), args.runs, notes)
    finally:
        notes += bench.cleanup()
    report["lxmgr"] = side = side_report(runs)
    if args.big_factor > 1 and runs:
        big = BigImage()
        try:
            big.build(image_rootfs, args.big_factor)
            big_bench = LxmgrBench(big.store)
            try:
                times = [big_bench.create_only(big.alias) for _ in range(args.runs)]
            finally:
                notes += big_bench.cleanup()
            side["summary"]["create_big"] = summarize(  # type: ignore[index]
                [RunResult(metrics={"create_big": t}) for t in times], "create_big")
            report["big_image"] = big.describe()
        finally:
            notes += big.cleanup()


def measure_lxc(image_rootfs: Path, args: argparse.Namespace, report: dict[str, object],
                notes: list[str]) -> None:
    available, install_notes = ensure_lxc(not args.no_install)
    notes += install_notes
    if not available:
        report["lxc"] = "not installed"
        return
    report["lxc_version"] = lxc_version()
    bench = LxcBench(image_rootfs)
    try:
        runs = run_side("lxc", bench.run_cycle, args.runs, notes)
    finally:
        notes += bench.cleanup()
    report["lxc"] = side_report(runs)


def format_cell(summary: dict[str, float] | None) -> tuple[str, str]:
    if summary is None:
        return "-", ""
    return f"{summary['median']:.1f}", f"{summary['min']:.1f} / {summary['max']:.1f}"


def render_table(report: dict[str, object]) -> str:
    """Plain-text table: one row per metric, median and min/max per side."""
    sides = [("lxmgr", report.get("lxmgr")), ("LXC", report.get("lxc"))]
    header = ["metric", "unit"]
    for label, _ in sides:
        header += [f"{label} median", f"{label} min / max"]
    header.append("LXD")
    rows = [header]
    for key, (label, unit) in ROWS.items():
        row = [label, unit]
        for _, side in sides:
            summary = side["summary"].get(key) if isinstance(side, dict) else None
            row += format_cell(summary) if isinstance(side, dict) else [str(side or "-"), ""]
        row.append(str(report["lxd"]))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_footer(report: dict[str, object]) -> str:
    lines = [f"runs: {report['runs']}"]
    for label in ("lxmgr", "lxc"):
        side = report.get(label)
        if isinstance(side, dict):
            lines.append(f"{label} boot state reached: {side['boot_states']}")
    if "lxc_version" in report:
        lines.append(f"LXC version: {report['lxc_version']}")
    if "big_image" in report:
        lines.append(f"bigger image: {report['big_image']}")
    lines += [f"note: {n}" for n in report["notes"]]  # type: ignore[attr-defined]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cycles per side (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install lxc when it is missing")
    parser.add_argument("--no-lxc", action="store_true", help="measure lxmgr only")
    parser.add_argument("--no-lxmgr", action="store_true", help="measure LXC only")
    parser.add_argument("--big-factor", type=int, default=4,
                        help="bigger image = the image with this many copies of /usr plus a "
                             "1 GiB file, to show create is constant (0 or 1: skip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("Error: the benchmark needs root", file=sys.stderr)
        return 1
    from tests.image_cache import cached_debian_image

    image = cached_debian_image()
    notes: list[str] = []
    report: dict[str, object] = {"runs": args.runs, "lxd": lxd_status(), "notes": notes,
                                 "image": image.fingerprint,
                                 "units": {k: unit for k, (_, unit) in ROWS.items()}}
    try:
        if not args.no_lxmgr:
            measure_lxmgr(image.path.parent, Path(image.rootfs), args, report, notes)
        else:
            report["lxmgr"] = "skipped (--no-lxmgr)"
        if not args.no_lxc:
            measure_lxc(Path(image.rootfs), args, report, notes)
        else:
            report["lxc"] = "skipped (--no-lxc)"
    finally:
        print_report(report, args.json, lambda: render_table(report),
                     lambda: render_footer(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
