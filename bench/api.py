#!/usr/bin/env python3
"""API and CLI benchmark: lxmgrd + `lxmgr` next to LXD's daemon + `lxc` on the same rootfs.

Run as root from the repository root:

    python3 bench/api.py                 # table (progress on stderr)
    python3 bench/api.py --json          # machine-readable (ms)
    python3 bench/api.py --no-install    # never apt-get install lxd (LXD column: reason)

Per side, against a private daemon (bench/api_lxmgr.py, bench/api_lxd.py): `--version` wall
time; `list` wall time and the raw `GET /1.0/instances?recursion=1` (and =2, what both `list`
commands ask) latency over the unix socket at 1, 10 and 30 running containers; `exec NAME --
true` through the CLI and in-process (POST exec with wait-for-websocket, the fd websockets,
wait for the operation; lxmgr.client's ExecSession, which speaks LXD's protocol to both
daemons); and launch to running: from the start of `launch IMAGE NAME` until `systemctl
is-system-running` inside prints running (or degraded), polled every 20 ms by an API exec.
Every container is booted (running/degraded) before a list is timed. Everything created is
removed in `finally`, even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]

from api_lxd import LxdSide, lxd_column  # noqa: E402
from api_lxmgr import LxmgrSide  # noqa: E402
from common import (  # noqa: E402
    align,
    cleanup_side,
    format_cell,
    print_report,
    root_and_signals,
    side_summary,
    summarize,
    wall,
)

POLL_INTERVAL = 0.020  # seconds between two boot-state queries
BOOT_TIMEOUT = 120.0
FILL_BOOT_TIMEOUT = 600.0  # every filler container booted
BOOTED = ("running", "degraded")
RPS_CLIENTS = 4  # concurrent keep-alive connections for the requests-per-second row
RPS_SECONDS = 2.0
FANOUT = 50  # events listeners
REFERENCE = {"launch_running": 5100.0, "list_30": 119.0, "exec_cli": 40.0}  # LXD 5.0.2, ms
REFERENCE_RPS = {30: 146.0}  # LXD 5.0.2 here: GET recursion=1 per second, by running count


class Side(Protocol):
    label: str
    image: str
    socket_path: str
    env: dict[str, str]
    created: list[str]

    def version_argv(self) -> list[str]: ...
    def list_argv(self) -> list[str]: ...
    def exec_argv(self, name: str, command: list[str]) -> list[str]: ...
    def launch_argv(self, name: str) -> list[str]: ...
    def track(self, name: str) -> None: ...


def rows(counts: list[int]) -> dict[str, tuple[str, str]]:
    """metric key -> (row label, unit); every value is in ms in the report."""
    table = {"version": ("--version", "ms")}
    for n in counts:
        table[f"list_{n}"] = (f"list, {n} running (CLI)", "ms")
    for depth in (1, 2):
        for n in counts:
            table[f"get_r{depth}_{n}"] = (f"GET instances?recursion={depth}, {n} running",
                                          "ms")
    table[f"rps_r1_{counts[-1]}"] = (f"GET instances?recursion=1 per second, {counts[-1]} "
                                     f"running, {RPS_CLIENTS} clients", "req/s")
    table["exec_cli"] = ("exec -- true (CLI)", "ms")
    table["exec_api"] = ("exec true (API in-process)", "ms")
    table["events_fanout"] = (f"event to all of {FANOUT} listeners", "ms")
    table["launch_return"] = ("launch (CLI returns)", "ms")
    table["launch_running"] = ("launch -> running", "ms")
    return table


# -- measuring helpers -----------------------------------------------------------------------

class RawHttp:
    """http.client on one keep-alive AF_UNIX connection: the daemon's latency, no client."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("localhost", timeout=60)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(self.socket_path)
        conn.sock = sock
        return conn

    def get(self, path: str) -> bytes:
        if self.conn is None:
            self.conn = self._connect()
        self.conn.request("GET", path, headers={"Accept": "application/json"})
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.will_close:
            self.close()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {resp.status}: {body[:200]!r}")
        return body

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def api_exec(client: Any, name: str, command: list[str], stdout_fd: int,
             stderr_fd: int) -> int:
    """POST exec (wait-for-websocket, non-interactive), pump the websockets, wait; the exit
    status. ExecSession without run_exec's signal forwarding, so Ctrl-C stays ours."""
    from lxmgr.client.exec import ExecSession, build_exec_body

    session = ExecSession(client, name, build_exec_body(command))
    try:
        session.start()
        session.pump(None, stdout_fd, stderr_fd)
    except BaseException:
        session.close()
        raise
    return session.finish()


class Runner:
    """The scenario for one side; samples (seconds) survive a failure half-way."""

    def __init__(self, side: Side, args: argparse.Namespace) -> None:
        from lxmgr.client import Client

        self.side = side
        self.args = args
        self.samples: dict[str, list[float]] = {}
        self.boot_states: dict[str, int] = {}
        self.boot_polls: list[int] = []
        self.client = Client(side.socket_path, timeout=120)
        self.raw = RawHttp(side.socket_path)
        self.null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.names: list[str] = []
        self.tag = os.urandom(3).hex()

    def close(self) -> None:
        self.client.close()
        self.raw.close()
        os.close(self.null)

    def log(self, message: str) -> None:
        print(f"[{self.side.label}] {message}", file=sys.stderr, flush=True)

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    # -- boot state ----------------------------------------------------------------------------

    def system_state(self, name: str) -> str:
        """What `systemctl is-system-running` prints inside ('' while exec fails)."""
        if self.args.poll == "cli":
            proc = subprocess.run(self.side.exec_argv(name, ["systemctl", "is-system-running"]),
                                  env=self.side.env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True)
            return proc.stdout.strip()
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                api_exec(self.client, name, ["systemctl", "is-system-running"], write_end,
                         self.null)
            except Exception:  # noqa: BLE001 - not running yet, or exec refused: poll again
                self.client.close()
                return ""
            os.close(write_end)
            write_end = -1
            return os.read(read_end, 256).decode(errors="replace").strip()
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)

    def wait_booted(self, name: str, t0: float, timeout: float = BOOT_TIMEOUT) \
            -> tuple[float, str, int]:
        polls, state = 0, ""
        while True:
            state = self.system_state(name)
            polls += 1
            elapsed = time.perf_counter() - t0
            if state in BOOTED:
                return elapsed, state, polls
            if elapsed > timeout:
                raise TimeoutError(f"'{name}' did not reach running/degraded in "
                                   f"{timeout:.0f} s (last state '{state or 'none'}')")
            time.sleep(POLL_INTERVAL)

    # -- steps ---------------------------------------------------------------------------------

    def new_name(self) -> str:
        name = f"lxmb-{self.tag}-{len(self.names) + 1}"
        self.names.append(name)
        self.side.track(name)
        return name

    def launch(self, measured: bool) -> None:
        name = self.new_name()
        t0 = time.perf_counter()
        self.add("launch_return" if measured else "fill_launch", wall(
            self.side.launch_argv(name), self.side.env))
        if not measured:
            return
        elapsed, state, polls = self.wait_booted(name, t0)
        self.add("launch_running", elapsed)
        self.boot_states[state] = self.boot_states.get(state, 0) + 1
        self.boot_polls.append(polls)
        self.log(f"launch {name}: returned {self.samples['launch_return'][-1] * 1000:.0f} ms, "
                 f"{state} after {elapsed * 1000:.0f} ms ({polls} polls)")

    def wait_all_booted(self) -> None:
        deadline = time.perf_counter() + FILL_BOOT_TIMEOUT
        for name in self.names:
            self.wait_booted(name, time.perf_counter(),
                             timeout=max(deadline - time.perf_counter(), 1.0))

    def check_listing(self, count: int) -> None:
        """GET ?recursion=1 shows exactly our `count` instances, all Running."""
        listing = json.loads(self.raw.get("/1.0/instances?recursion=1"))["metadata"]
        running = sorted(i["name"] for i in listing if i.get("status") == "Running")
        if running != sorted(self.names) or len(listing) != count:
            raise RuntimeError(f"expected {count} running instances, the daemon lists "
                               f"{len(listing)} ({len(running)} running)")

    def measure_lists(self, count: int) -> None:
        self.check_listing(count)
        for _ in range(self.args.samples):
            self.add(f"list_{count}", wall(self.side.list_argv(), self.side.env))
        for depth in (1, 2):
            path = f"/1.0/instances?recursion={depth}"
            self.raw.get(path)  # warm: the first request may open the connection
            for _ in range(self.args.samples):
                t0 = time.perf_counter()
                self.raw.get(path)
                self.add(f"get_r{depth}_{count}", time.perf_counter() - t0)
        list_ms = statistics.median(self.samples[f"list_{count}"]) * 1000
        get_ms = statistics.median(self.samples[f"get_r1_{count}"]) * 1000
        self.log(f"{count} running: list {list_ms:.1f} ms, GET r1 {get_ms:.2f} ms")

    def measure_rps(self, count: int) -> None:
        """GET ?recursion=1 as fast as RPS_CLIENTS keep-alive connections go, RPS_SECONDS
        at a time; one sample per run (requests per second)."""
        import threading

        path = "/1.0/instances?recursion=1"
        for _ in range(3):
            done = [0] * RPS_CLIENTS
            stop = time.perf_counter() + RPS_SECONDS

            def hammer(slot: int, done: list[int] = done, stop: float = stop) -> None:
                raw = RawHttp(self.side.socket_path)
                try:
                    while time.perf_counter() < stop:
                        raw.get(path)
                        done[slot] += 1
                finally:
                    raw.close()

            threads = [threading.Thread(target=hammer, args=(i,)) for i in range(RPS_CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            self.add(f"rps_r1_{count}", sum(done) / RPS_SECONDS / 1000)  # /1000: ms scale
        self.log(f"{count} running: {statistics.median(self.samples[f'rps_r1_{count}']) * 1000:.0f}"
                 " GET r1 per second")

    def measure_fanout(self, name: str) -> None:
        """FANOUT events websockets; a config change of `name` (instance-updated), timed
        until every listener has the event."""
        import threading

        from lxmgr.client.websocket import WebSocket

        for round_ in range(self.args.samples):
            listeners = [WebSocket.connect(self.side.socket_path,
                                           "/1.0/events?type=lifecycle") for _ in range(FANOUT)]
            arrived: list[float] = []
            lock = threading.Lock()

            def listen(ws: WebSocket, arrived: list[float] = arrived,
                       lock: threading.Lock = lock) -> None:
                while (msg := ws.recv()) is not None:
                    if b"instance-updated" in msg.data:
                        with lock:
                            arrived.append(time.perf_counter())
                        return

            threads = [threading.Thread(target=listen, args=(ws,), daemon=True)
                       for ws in listeners]
            for thread in threads:
                thread.start()
            time.sleep(0.2)  # every subscription registered
            t0 = time.perf_counter()
            self.client.operate("PATCH", f"/1.0/instances/{name}",
                                body={"config": {"user.bench": str(round_)}})
            for thread in threads:
                thread.join(10)
            for ws in listeners:
                ws.close()
            if len(arrived) != FANOUT:
                raise RuntimeError(f"{len(arrived)} of {FANOUT} listeners got the event")
            self.add("events_fanout", max(arrived) - t0)
        self.log(f"events: {statistics.median(self.samples['events_fanout']) * 1000:.1f} ms "
                 f"to {FANOUT} listeners")

    def measure_exec(self, name: str) -> None:
        for _ in range(self.args.exec_samples):
            self.add("exec_cli", wall(self.side.exec_argv(name, ["true"]), self.side.env))
        for _ in range(self.args.exec_samples):
            t0 = time.perf_counter()
            status = api_exec(self.client, name, ["true"], self.null, self.null)
            self.add("exec_api", time.perf_counter() - t0)
            if status != 0:
                raise RuntimeError(f"`true` exited with {status} in '{name}'")
        self.log(f"exec: CLI {statistics.median(self.samples['exec_cli']) * 1000:.1f} ms, "
                 f"API {statistics.median(self.samples['exec_api']) * 1000:.1f} ms")

    def run(self) -> None:
        for _ in range(self.args.samples):
            self.add("version", wall(self.side.version_argv(), self.side.env))
        measured = 0
        for i, count in enumerate(self.args.counts):
            while len(self.names) < count:
                self.launch(measured < self.args.launches)
                measured += measured < self.args.launches
            self.wait_all_booted()
            self.measure_lists(count)
            if i == 0:
                self.measure_exec(self.names[0])
                self.measure_fanout(self.names[0])
        self.measure_rps(self.args.counts[-1])
        while measured < self.args.launches:
            self.launch(True)
            measured += 1


# -- report ----------------------------------------------------------------------------------

def measure_side(side: Any, setup: Any, args: argparse.Namespace,
                 keys: dict[str, tuple[str, str]], notes: list[str]) -> dict[str, object]:
    """setup(), run the scenario, clean up; the side's report (partial on failure)."""
    runner: Runner | None = None
    report: dict[str, object] = {}
    try:
        setup()
        report["version"] = side.version()
        runner = Runner(side, args)
        runner.run()
    except Exception as err:  # noqa: BLE001 - keep what was measured, clean up after
        notes.append(f"{side.label} failed: {err}")
        report["error"] = str(err)
        traceback.print_exc(file=sys.stderr)
    finally:
        if runner is not None:
            runner.close()
        cleanup_side(side, notes)  # a 2nd Ctrl-C: finish anyway
    if runner is not None:
        report["summary"] = summarize(runner.samples, keys)
        report["boot_states"] = runner.boot_states
        report["boot_polls"] = runner.boot_polls
        report["samples_ms"] = {k: [round(v * 1000, 3) for v in vs]
                                for k, vs in runner.samples.items()}
    return report


def render_table(report: dict[str, object], keys: dict[str, tuple[str, str]]) -> str:
    header = ["metric", "unit", "lxmgr median", "lxmgr min / max", "LXD median",
              "LXD min / max", "lxmgr/LXD"]
    table = [header]
    for key, (label, unit) in keys.items():
        row = [label, unit]
        for side in ("lxmgr", "lxd"):
            data = report.get(side)
            if isinstance(data, dict):
                row += format_cell(side_summary(report, side, key))
            else:  # not measured: the reason
                row += [str(data or "-"), ""]
        mine, theirs = side_summary(report, "lxmgr", key), side_summary(report, "lxd", key)
        row.append(f"{mine['median'] / theirs['median']:.2f}" if mine and theirs else "")
        table.append(row)
    return align(table)


def targets(report: dict[str, object], counts: list[int]) -> list[str]:
    """The project's targets against the measured LXD (else the reference figures)."""
    top = counts[-1]
    checks = [("launch_running", "launch -> running", 0.1),
              (f"list_{top}", f"list at {top} running", 0.5),
              ("exec_cli", "exec -- true (CLI)", 1.0)]
    lines = []
    for key, label, factor in checks:
        mine = side_summary(report, "lxmgr", key)
        theirs = side_summary(report, "lxd", key)
        ref = theirs["median"] if theirs else REFERENCE.get(key)  # only list_30 has one
        if not mine or ref is None:
            continue
        source = "measured LXD" if theirs else "reference LXD figure"
        verdict = "met" if mine["median"] <= factor * ref else "MISSED"
        lines.append(f"target {label} <= {factor:g} x LXD ({source} {ref:.1f} ms -> "
                     f"{factor * ref:.1f} ms): lxmgr {mine['median']:.1f} ms, {verdict}")
    mine = side_summary(report, "lxmgr", f"rps_r1_{top}")
    theirs = side_summary(report, "lxd", f"rps_r1_{top}")
    ref = theirs["median"] if theirs else REFERENCE_RPS.get(top)
    if mine and ref is not None:
        source = "measured LXD" if theirs else "reference LXD figure"
        verdict = "met" if mine["median"] >= 2 * ref else "MISSED"
        lines.append(f"target GET recursion=1 per second at {top} >= 2 x LXD ({source} "
                     f"{ref:.0f}): lxmgr {mine['median']:.0f}, {verdict}")
    return lines


def render_footer(report: dict[str, object], counts: list[int]) -> str:
    lines = [f"samples: {report['samples']} per list/version row, {report['exec_samples']} "
             f"per exec row, {report['launches']} launches; boot polled via {report['poll']} "
             f"every {POLL_INTERVAL * 1000:.0f} ms"]
    for side in ("lxmgr", "lxd"):
        data = report.get(side)
        if isinstance(data, dict):
            lines.append(f"{side} {data.get('version', '?')}: boot states "
                         f"{data.get('boot_states', {})}, polls {data.get('boot_polls', [])}")
    lines.append(f"lxmgr CLI: {' '.join(report['lxmgr_cli'])}")  # type: ignore[arg-type]
    lines += targets(report, counts)
    lines += [f"note: {n}" for n in report["notes"]]  # type: ignore[attr-defined]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install lxd lxd-client when missing")
    parser.add_argument("--no-lxd", action="store_true", help="measure lxmgr only")
    parser.add_argument("--no-lxmgr", action="store_true", help="measure LXD only")
    parser.add_argument("--counts", default="1,10,30",
                        help="running-container counts for the list rows (default 1,10,30)")
    parser.add_argument("--samples", type=int, default=10,
                        help="samples per version/list/GET row (default 10)")
    parser.add_argument("--exec-samples", type=int, default=20,
                        help="samples per exec row (default 20)")
    parser.add_argument("--launches", type=int, default=5,
                        help="timed launches to running (default 5)")
    parser.add_argument("--poll", choices=("api", "cli"), default="api",
                        help="boot-state poll: in-process API exec (default) or CLI exec")
    args = parser.parse_args(argv)
    args.counts = sorted({int(c) for c in args.counts.split(",") if c.strip()})
    if not args.counts or args.counts[0] < 1:
        parser.error("--counts needs positive integers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not root_and_signals():
        return 1
    from api_lxmgr import lxmgr_argv

    from tests.image_cache import cached_debian_image

    image = cached_debian_image()
    keys = rows(args.counts)
    notes: list[str] = []
    report: dict[str, object] = {
        "samples": args.samples, "exec_samples": args.exec_samples, "launches": args.launches,
        "counts": args.counts, "poll": args.poll, "image": image.fingerprint,
        "lxmgr_cli": lxmgr_argv(), "units": {k: unit for k, (_, unit) in keys.items()},
        "rows": {k: label for k, (label, _) in keys.items()}, "notes": notes}
    try:
        if args.no_lxmgr:
            report["lxmgr"] = "skipped (--no-lxmgr)"
        else:
            lxmgr_side = LxmgrSide(image.path.parent)
            report["lxmgr"] = measure_side(lxmgr_side, lxmgr_side.start, args, keys, notes)

        def measure_lxd() -> object:
            lxd_side = LxdSide()
            return measure_side(lxd_side, lambda: lxd_side.start(image.path), args, keys, notes)

        report["lxd"] = lxd_column(args.no_lxd, args.no_install, notes, measure_lxd)
    finally:
        print_report(report, args.json, lambda: render_table(report, keys),
                     lambda: render_footer(report, args.counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
