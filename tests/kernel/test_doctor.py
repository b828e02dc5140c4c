"""`lxmgr doctor` checks on the real kernel, each case provoked in a private network namespace.

Cases: all green, dnsmasq killed, udp/53 on the gateway held by another process, and a
foreign nft table whose forward chain drops by default (plus ip_forward=0). Everything is
created inside the forked child's own network namespace (links, nft tables, sockets,
processes) and removed in `finally`; the only traffic is one DNS query to the test gateway.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.kernel.netns_helpers import NFT, netns_fixture, new_network  # noqa: F401

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]

FOREIGN_TABLE = "lxmgrtestfw"
HOLD_PORT = """\
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
time.sleep(60)
"""


def _subnet() -> tuple[str, str]:
    octet = int.from_bytes(os.urandom(1), "big")
    return f"10.249.{octet}.1/24", f"10.249.{octet}.1"


def _summary(checks: list) -> dict[str, tuple[bool, str, str]]:  # type: ignore[type-arg]
    return {c.name: (c.ok, c.detail, c.fix) for c in checks}


def _kill_dnsmasq(net) -> int:  # type: ignore[no-untyped-def]
    pid = net.dnsmasq.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while net.dnsmasq.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    # The kernel frees a dead process's sockets a moment after it is gone: wait until
    # gateway:53 can be bound again, so the checks see the port free.
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((str(net.settings.gateway), 53))
                break
            except OSError:
                time.sleep(0.01)
    return int(pid)


def test_all_green(netns) -> None:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    cidr, gateway = _subnet()

    def body() -> dict[str, tuple[bool, str, str]]:
        from lxmgr.instances import doctor

        net = new_network(name, {"ipv4.address": cidr, "ipv4.nat": "true"})
        try:
            net.create()
            return _summary(doctor.diagnose([net]))
        finally:
            net.delete()

    checks = netns(body)
    assert {n: c for n, c in checks.items() if not c[0]} == {}
    assert set(checks) >= {"net.ipv4.ip_forward", f"{name} bridge", f"{name} dnsmasq",
                           f"{name} dns", f"{name} port 53", f"{name} port 67",
                           f"{name} forward", f"{name} input", f"{name} routes"}
    assert checks[f"{name} dns"][1].startswith(f"{gateway}:53 answered NXDOMAIN in ")
    assert checks[f"{name} port 67"][1].startswith("udp/67 (dhcp) held by dnsmasq pid ")


def test_dnsmasq_down_then_port_taken(netns) -> None:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    cidr, gateway = _subnet()

    def body() -> dict[str, object]:
        from lxmgr.instances import doctor

        net = new_network(name, {"ipv4.address": cidr, "ipv4.nat": "false"})
        holder = None
        facts: dict[str, object] = {}
        try:
            net.create()
            facts["killed"] = _kill_dnsmasq(net)
            facts["down"] = _summary(doctor.diagnose([net]))
            holder = subprocess.Popen([sys.executable, "-c", HOLD_PORT, gateway],
                                      stdout=subprocess.PIPE, text=True)
            assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
            facts["holder"] = (holder.pid, Path(f"/proc/{holder.pid}/comm").read_text().strip())
            facts["taken"] = _summary(doctor.diagnose([net]))
        finally:
            if holder is not None:
                holder.kill()
                holder.wait()
            net.delete()
        return facts

    facts = netns(body)
    down = facts["down"]
    ok, detail, fix = down[f"{name} dnsmasq"]
    assert not ok and detail.startswith("not running")
    assert fix.startswith("systemctl restart lxmgr.service")
    assert f"{name} dns" not in down  # no query to a dnsmasq known dead
    assert down[f"{name} port 53"][0] and down[f"{name} bridge"][0]

    pid, comm = facts["holder"]
    assert comm.startswith("python")
    ok, detail, fix = facts["taken"][f"{name} port 53"]
    assert not ok
    assert detail == f"udp {gateway}:53 taken by pid {pid} ({comm})"
    assert f"kill {pid}" in fix


def test_foreign_forward_drop_and_ip_forward_off(netns) -> None:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    cidr, _gateway = _subnet()
    foreign = (f"table inet {FOREIGN_TABLE} {{\n"
               "\tchain forward { type filter hook forward priority 0; policy drop; }\n}\n")

    def body() -> dict[str, object]:
        from lxmgr.instances import doctor

        net = new_network(name, {"ipv4.address": cidr, "ipv4.nat": "true"})
        facts: dict[str, object] = {}
        try:
            net.create()
            subprocess.run([NFT, "-f", "-"], input=foreign, text=True, check=True)
            Path("/proc/sys/net/ipv4/ip_forward").write_text("0\n")  # this namespace's
            facts["broken"] = _summary(doctor.diagnose([net]))
            fix = facts["broken"][f"{name} forward"][2]
            subprocess.run(["sh", "-c", fix], check=True)  # the fix, applied as printed
            facts["fixed"] = _summary(doctor.diagnose([net]))
        finally:
            subprocess.run([NFT, "delete", "table", "inet", FOREIGN_TABLE], check=False)
            net.delete()
        return facts

    facts = netns(body)
    broken = facts["broken"]
    ok, detail, fix = broken[f"{name} forward"]
    assert not ok
    assert detail == (f"inet {FOREIGN_TABLE} chain forward (policy drop) drops traffic from "
                      f"and to {name}")
    assert fix == (f"nft insert rule inet {FOREIGN_TABLE} forward iifname {name} accept; "
                   f"nft insert rule inet {FOREIGN_TABLE} forward oifname {name} accept")
    assert broken["net.ipv4.ip_forward"][:2] == (False, f"net.ipv4.ip_forward=0 (NAT on {name})")
    assert broken[f"{name} input"][0] and broken[f"{name} dns"][0]
    assert facts["fixed"][f"{name} forward"][0]
