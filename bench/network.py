#!/usr/bin/env python3
"""Bridge networking benchmark: lease after start/launch and TCP throughput over the bridge,
lxmgrd + `lxmgr` next to a private LXD 5.0.2 + `lxc`, with host loopback as the limit.

Run as root from the repository root:

    python3 bench/network.py                 # table (progress on stderr)
    python3 bench/network.py --json          # machine-readable (ms, Gbit/s) with every sample
    python3 bench/network.py --no-install    # never apt-get install lxd (LXD column: reason)

Per side, against a private daemon (bench/api_lxmgr.py, bench/api_lxd.py) with one test bridge
that never NATs (lxmgr: `lxmb<hex>`, LXD: `lxdbrbench` inside LXD's private network namespace)
and a profile `benchnet` putting eth0 on it: `--runs` launches (first boot), each timed from
`launch` until `list --format json` shows the instance Running with a global IPv4 address
(polled every 20 ms), then until that address answers (a TCP connect to a closed port gets a
reset); then `--runs` force-stop + `start` cycles of the last one, timed the same way; then
`--runs` bulk TCP transfers each way between a Python end on the host (tcp_pair.py; for LXD run
by nsenter in its namespace) and a perl end in the container (exec), and the same pair on
127.0.0.1. Everything created is removed in `finally`, even on failure or Ctrl-C, and the host's
links and nft tables are compared before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

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
from tcp_pair import perl_argv  # noqa: E402

POLL_INTERVAL = 0.020  # seconds between two `list` polls
LEASE_TIMEOUT = 90.0
PROFILE = "benchnet"
# The image has no udev: systemd-networkd (systemd 252) waits for udev to initialise eth0
# when /sys is writable, which it is in LXD containers (never configured, no DHCP), and
# skips that when /sys is read-only, as lxmgr mounts it (systemd's container interface).
LXD_PROFILE_CONFIG = {"raw.lxc": "lxc.mount.auto = sys:ro"}
LXD_NETWORK = "lxdbrbench"
PERF_PORT = 5201  # the perl end's port in the container
PROBE_PORT = 9  # discard: nothing listens in the container, the kernel answers with a reset
TARGET_LEASE_MS = 1500.0
TCP_PAIR = str(BENCH_DIR / "tcp_pair.py")
ROWS: dict[str, tuple[str, str]] = {
    "start_return": ("start (CLI returns)", "ms"),
    "start_lease": ("start -> IPv4 lease in list", "ms"),
    "start_up": ("start -> address answers", "ms"),
    "launch_return": ("launch (CLI returns)", "ms"),
    "launch_lease": ("launch -> IPv4 lease in list", "ms"),
    "launch_up": ("launch -> address answers", "ms"),
    "list_poll": ("one poll: list --format json", "ms"),
    "tcp_h2c": ("TCP host -> container", "Gbit/s"),
    "tcp_c2h": ("TCP container -> host", "Gbit/s"),
}


def global_ipv4(row: dict[str, Any], running: bool = True) -> str | None:
    """The first global IPv4 address of an instance (a Running one if `running`) in
    `list --format json`."""
    from lxmgr.cli.listing import global_addresses

    state = row.get("state") or {}
    if running and str(state.get("status") or row.get("status")) != "Running":
        return None
    found = global_addresses(state.get("network"), "inet")
    return found[0][1] if found else None


class NetRunner:
    """The scenario for one side; samples (ms, Gbit/s) survive a failure half-way."""

    def __init__(self, side: Any, args: argparse.Namespace, network: str,
                 host_prefix: list[str], profile_config: dict[str, str] | None = None) -> None:
        self.side = side
        self.profile_config = profile_config or {}
        self.args = args
        self.network = network
        self.host_prefix = host_prefix  # runs the host end (in LXD's namespace for LXD)
        self.samples: dict[str, list[float]] = {}
        self.polls: dict[str, list[int]] = {}
        self.notes: list[str] = []
        self.tag = os.urandom(3).hex()
        self.count = 0
        self.stale_noted = False

    def log(self, message: str) -> None:
        print(f"[{self.side.label}] {message}", file=sys.stderr, flush=True)

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    # -- setup ---------------------------------------------------------------------------------

    def create_network(self) -> None:
        self.side.networks.append(self.network)  # before: cleanup tries even a half-made one
        self.side.cli("network", "create", self.network, "ipv4.address=auto", "ipv4.nat=false",
                      "ipv6.address=none")
        self.side.profiles.append(PROFILE)
        self.side.cli("profile", "create", PROFILE)
        self.side.cli("profile", "device", "add", PROFILE, "eth0", "nic",
                      f"network={self.network}", "name=eth0")
        for key, value in self.profile_config.items():
            self.side.cli("profile", "set", PROFILE, key, value)
        self.log(f"network {self.network}: {self.networkside_summary()}")

    def networkside_summary(self) -> str:
        rows = json.loads(self.side.cli("network", "list", "--format", "json").stdout)
        for row in rows:
            if row.get("name") == self.network:
                config = row.get("config") or {}
                return ", ".join(f"{k}={config[k]}" for k in sorted(config) if "ipv" in k)
        return "?"

    # -- lease and reachability ----------------------------------------------------------------

    def lease(self, name: str, running: bool = True) -> str | None:
        t0 = time.monotonic()
        rows = json.loads(self.side.cli("list", "--format", "json").stdout)
        if running:
            self.add("list_poll", (time.monotonic() - t0) * 1000)
        for row in rows:
            if row.get("name") == name:
                return global_ipv4(row, running)
        return None

    def wait_lease(self, name: str, t0: float) -> tuple[float, str, int]:
        """(ms from t0 until a list call returned with the lease, address, polls)."""
        polls = 0
        while True:
            address = self.lease(name)
            polls += 1
            elapsed = time.monotonic() - t0
            if address:
                return elapsed * 1000, address, polls
            if elapsed > LEASE_TIMEOUT:
                raise TimeoutError(f"'{name}': no IPv4 lease in list within "
                                   f"{LEASE_TIMEOUT:.0f} s")
            time.sleep(POLL_INTERVAL)

    def host_end(self, mode: str, address: str, port: int, seconds: float) -> dict[str, float]:
        argv = [*self.host_prefix, sys.executable, TCP_PAIR, mode, address, str(port),
                str(seconds)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"tcp_pair {mode} {address}:{port} failed: "
                               f"{proc.stderr.strip().splitlines()[-1:]}")
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def wait_up(self, address: str, t0: float) -> float:
        """ms from t0 until address answers a connect (a reset from a closed port)."""
        return (self.host_end("probe", address, PROBE_PORT, LEASE_TIMEOUT)["at"] - t0) * 1000

    def timed_boot(self, kind: str, argv: list[str], name: str) -> str:
        t0 = time.monotonic()
        self.add(f"{kind}_return", wall(argv, self.side.env) * 1000)
        lease_ms, address, polls = self.wait_lease(name, t0)
        self.add(f"{kind}_lease", lease_ms)
        self.polls.setdefault(kind, []).append(polls)
        up_ms = self.wait_up(address, t0)
        self.add(f"{kind}_up", up_ms)
        self.log(f"{kind} {name}: returned {self.samples[f'{kind}_return'][-1]:.0f} ms, "
                 f"lease {address} {lease_ms:.0f} ms ({polls} polls), answers {up_ms:.0f} ms")
        return address

    # -- steps ---------------------------------------------------------------------------------

    def launches(self) -> tuple[str, str]:
        """--runs first boots; every instance but the last is deleted after its run."""
        name = address = ""
        for _ in range(self.args.runs):
            if name:
                self.delete(name)
            self.count += 1
            name = f"lxmbn-{self.tag}-{self.count}"
            self.side.track(name)
            address = self.timed_boot("launch", [*self.side.cli_argv, "launch",
                                                 self.side.image, name, "-p", "default",
                                                 "-p", PROFILE], name)
        return name, address

    def delete(self, name: str) -> None:
        self.side.cli("delete", name, "--force")
        self.side.created.remove(name)

    def starts(self, name: str) -> str:
        address = ""
        for _ in range(self.args.runs):
            self.side.cli("stop", name, "--force")
            stale = self.lease(name, running=False)
            if stale and not self.stale_noted:
                self.stale_noted = True
                self.notes.append(f"{self.side.label}: the stopped '{name}' still lists {stale} "
                                  "(its lease from the previous boot): `start -> lease` can be "
                                  "the first poll once Running; `-> address answers` is when "
                                  "the container really has it")
            address = self.timed_boot("start", [*self.side.cli_argv, "start", name], name)
        if self.polls["start"] and max(self.polls["start"]) == 1:
            self.notes.append(f"{self.side.label}: every start showed the lease on the first "
                              "poll once Running: the lease of the previous boot (still in "
                              "the DHCP server's lease file), not a new one; `start -> "
                              "address answers` is when the container really has it")
        return address

    def transfer(self, name: str | None, address: str, direction: str) -> float:
        """One bulk transfer; Gbit/s. name None: both ends on the host's 127.0.0.1."""
        perl_mode, host_mode = ("recv", "send") if direction == "h2c" else ("send", "recv")
        if name is None:
            port = 20000 + int.from_bytes(os.urandom(2), "big") % 20000
            argv, env = perl_argv(perl_mode, port, "127.0.0.1"), None
        else:
            port = PERF_PORT
            argv, env = self.side.exec_argv(name, perl_argv(perl_mode, port)), self.side.env
        perl = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            result = self.host_end(host_mode, address, port, self.args.seconds)
            out, err = perl.communicate(timeout=60)
        finally:
            if perl.poll() is None:  # our own child, by pid
                perl.kill()
                perl.wait()
        if perl.returncode != 0 or not out.strip().isdigit():
            raise RuntimeError(f"perl {perl_mode} exited {perl.returncode}: {err.strip()}")
        if direction == "h2c" and int(out) != result["bytes"]:
            raise RuntimeError(f"sent {result['bytes']} bytes, the receiver read {out.strip()}")
        return result["bytes"] * 8 / result["seconds"] / 1e9

    def throughput(self, name: str | None, address: str) -> None:
        for _ in range(self.args.runs):
            for direction in ("h2c", "c2h"):
                self.add(f"tcp_{direction}", self.transfer(name, address, direction))
        self.log(f"TCP to {address}: h2c {self.samples['tcp_h2c']}, c2h "
                 f"{self.samples['tcp_c2h']} Gbit/s")

    def run(self) -> None:
        self.create_network()
        name, _ = self.launches()
        address = self.starts(name)
        if not self.args.no_tcp:
            self.throughput(name, address)


def measure_side(side: Any, setup: Any, network: str, host_prefix: Any,
                 args: argparse.Namespace, notes: list[str],
                 profile_config: dict[str, str] | None = None) -> dict[str, object]:
    """setup(), run the scenario, clean up; the side's report (partial on failure)."""
    runner: NetRunner | None = None
    report: dict[str, object] = {}
    try:
        setup()
        report["version"] = side.version()
        runner = NetRunner(side, args, network, host_prefix(), profile_config)
        runner.run()
    except Exception as err:  # noqa: BLE001 - keep what was measured, clean up after
        notes.append(f"{side.label} failed: {err}")
        report["error"] = str(err)
        traceback.print_exc(file=sys.stderr)
    finally:
        cleanup_side(side, notes)
    if runner is not None:
        notes += runner.notes
        report.update(summary=summarize(runner.samples, ROWS, scale=1.0), polls=runner.polls,
                      samples={k: [round(v, 3) for v in vs] for k, vs in runner.samples.items()})
    return report


def measure_loopback(args: argparse.Namespace, notes: list[str]) -> dict[str, object]:
    """The same Python/perl pair with both ends on the host's 127.0.0.1 (no container)."""
    runner = NetRunner(argparse.Namespace(label="loopback"), args, "", [])
    try:
        runner.throughput(None, "127.0.0.1")
    except Exception as err:  # noqa: BLE001
        notes.append(f"loopback failed: {err}")
        traceback.print_exc(file=sys.stderr)
    return {"summary": summarize(runner.samples, ROWS, scale=1.0),
            "samples": {k: [round(v, 3) for v in vs] for k, vs in runner.samples.items()}}


# -- report ----------------------------------------------------------------------------------

SIDES = (("lxmgr", "lxmgr"), ("lxd", "LXD"), ("loopback", "loopback"))


def render_table(report: dict[str, object]) -> str:
    header = ["metric", "unit"]
    for _, label in SIDES:
        header += [f"{label} median", f"{label} min / max"]
    table = [header + ["lxmgr/LXD"]]
    for key, (label, unit) in ROWS.items():
        row = [label, unit]
        for side, _ in SIDES:
            data = report.get(side)
            if isinstance(data, dict):
                row += format_cell(side_summary(report, side, key))
            else:  # not measured: the reason
                row += [str(data or "-"), ""]
        mine, theirs = side_summary(report, "lxmgr", key), side_summary(report, "lxd", key)
        row.append(f"{mine['median'] / theirs['median']:.2f}" if mine and theirs else "")
        table.append(row)
    return align(table)


def render_footer(report: dict[str, object]) -> str:
    lines = [f"runs: {report['runs']} per row (TCP: {report['seconds']} s per transfer, "
             f"64 KiB writes); lease polled by `list --format json` every "
             f"{POLL_INTERVAL * 1000:.0f} ms after the previous poll returned"]
    for side in ("lxmgr", "lxd"):
        data = report.get(side)
        if isinstance(data, dict):
            lines.append(f"{side} {data.get('version', '?')}: polls {data.get('polls', {})}")
    mine, theirs = side_summary(report, "lxmgr", "start_lease"), side_summary(report, "lxd",
                                                                       "start_lease")
    if mine:
        verdict = "met" if mine["median"] <= TARGET_LEASE_MS else "MISSED"
        lines.append(f"target start -> lease <= {TARGET_LEASE_MS:.0f} ms: lxmgr "
                     f"{mine['median']:.0f} ms, {verdict}")
        if theirs:
            verdict = "met" if mine["median"] < theirs["median"] else "MISSED"
            lines.append(f"target start -> lease faster than LXD ({theirs['median']:.0f} ms): "
                         f"lxmgr {mine['median']:.0f} ms, {verdict}")
    lines += [f"note: {n}" for n in report["notes"]]  # type: ignore[attr-defined]
    return "\n".join(lines)


# -- host state ------------------------------------------------------------------------------

def host_state() -> tuple[set[str], set[str]]:
    """(link names, nft tables) of the host's network namespace."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return ({line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
             if line.count(":") >= 2}, set(tables.splitlines()))


def check_host(before: tuple[set[str], set[str]], network: str) -> list[str]:
    links, tables = host_state()
    notes = []
    if links - before[0]:
        notes.append(f"links left on the host: {sorted(links - before[0])}")
    if tables - before[1]:
        notes.append(f"nft tables left on the host: {sorted(tables - before[1])}")
    if any(network in link for link in links) or any(network in t for t in tables):
        notes.append(f"'{network}' still appears in `ip -o link` or `nft list tables`")
    if not notes:
        notes.append(f"host clean: `ip -o link` and `nft list tables` as before, no "
                     f"'{network}' or '{LXD_NETWORK}'")
    return notes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install lxd lxd-client when missing")
    parser.add_argument("--no-lxd", action="store_true", help="measure lxmgr only")
    parser.add_argument("--no-lxmgr", action="store_true", help="measure LXD only")
    parser.add_argument("--no-tcp", action="store_true", help="skip the throughput rows")
    parser.add_argument("--runs", type=int, default=5,
                        help="launches, starts and transfers each way per side (default 5)")
    parser.add_argument("--seconds", type=float, default=2.5,
                        help="seconds per TCP transfer (default 2.5)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.seconds <= 0:
        parser.error("--runs and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not root_and_signals():
        return 1
    from tests.image_cache import cached_debian_image

    image = cached_debian_image()
    network = f"lxmb{os.urandom(4).hex()}"
    notes: list[str] = []
    report: dict[str, object] = {"runs": args.runs, "seconds": args.seconds,
                                 "image": image.fingerprint, "network": network,
                                 "units": {k: unit for k, (_, unit) in ROWS.items()},
                                 "rows": {k: label for k, (label, _) in ROWS.items()},
                                 "notes": notes}
    before = host_state()
    try:
        if args.no_lxmgr:
            report["lxmgr"] = "skipped (--no-lxmgr)"
        else:
            lxmgr = LxmgrSide(image.path.parent, "lxmgr-bench-net-", "lxmgr-bench-net")
            report["lxmgr"] = measure_side(lxmgr, lxmgr.start, network, lambda: [], args,
                                           notes)

        def measure_lxd() -> object:
            lxd = LxdSide("lxd-bench-net-", private_sysfs=True)
            return measure_side(lxd, lambda: lxd.start(image.path), LXD_NETWORK,
                                lxd.netns_argv, args, notes, LXD_PROFILE_CONFIG)

        report["lxd"] = lxd_column(args.no_lxd, args.no_install, notes, measure_lxd)
        if not args.no_tcp:
            report["loopback"] = measure_loopback(args, notes)
    finally:
        notes += check_host(before, network)
        print_report(report, args.json, lambda: render_table(report),
                     lambda: render_footer(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
