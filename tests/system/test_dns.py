"""Names between containers, as with LXD: from a neighbour, `web1` and `web1.lxmgr` resolve to
web1's IPv4 lease. The network's dnsmasq hands out its dns.domain as the DHCP domain and
search list, the image takes it as its search domain and answers no single label by LLMNR.
On the hermetic test bridge of test_network.py (no NAT, no upstream DNS servers). The host
resolves web1.lxmgr through systemd-resolved where it runs it, else `lxmgr doctor` says
what works instead."""

from __future__ import annotations

import socket
import time

import pytest

from lxmgr.net.resolved import HostResolver
from tests.system.test_network import _resolve, gateway, net, wait_leases  # noqa: F401

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def _exec(daemon, name: str, *argv: str):  # type: ignore[no-untyped-def]
    return daemon.cli("exec", name, "--", *argv, check=False)


def _search_line(daemon, name: str, timeout: float = 10) -> str:  # type: ignore[no-untyped-def]
    """The `search` line of name's resolv.conf once networkd passed the lease's domain on."""
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        text = _exec(daemon, name, "cat", "/etc/resolv.conf").stdout
        line = next((x for x in text.splitlines() if x.startswith("search")), "")
        if line not in ("", "search ."):  # none yet: networkd has not written it yet
            return line
        time.sleep(0.1)
    return line


def test_short_names_resolve_between_containers_over_ipv4(daemon, net) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    started = time.monotonic()
    for name in ("web1", "web2"):
        daemon.cli("launch", "debian", name, "-p", "default", "-p", "testnet")
    leases = wait_leases(daemon, ["web1", "web2"])
    print(f"both leases {time.monotonic() - started:.2f} s after the first launch")
    assert _search_line(daemon, "web2") == "search lxmgr"
    for query in ("web1", "web1.lxmgr"):
        found = _exec(daemon, "web2", "getent", "hosts", query)
        assert found.returncode == 0, found.stderr
        assert found.stdout.split()[0] == leases["web1"], found.stdout
    ping = _exec(daemon, "web2", "ping", "-4", "-c1", "-W3", "web1")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert leases["web1"] in ping.stdout
    # Single labels go to dnsmasq, not to LLMNR: resolved has it off on eth0.
    status = _exec(daemon, "web2", "resolvectl", "status", "eth0").stdout
    assert "-LLMNR" in status and "-mDNS" in status, status


def test_the_host_resolves_the_domain_or_doctor_says_what_works(daemon, net) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    daemon.cli("launch", "debian", "web1", "-p", "default", "-p", "testnet")
    lease = wait_leases(daemon, ["web1"])["web1"]
    gw = gateway(daemon, net)
    doctor = daemon.cli("doctor", check=False)
    assert doctor.returncode == 0, doctor.stdout
    line = next(x for x in doctor.stdout.splitlines() if f" {net} host dns: " in x)
    if HostResolver().availability()[0] is not None:
        assert line == f"[ OK ] {net} host dns: systemd-resolved sends *.lxmgr to {gw}"
        assert socket.gethostbyname("web1.lxmgr") == lease
    else:  # as on the CI machine: no systemd as init
        assert line.startswith(f"[ OK ] {net} host dns: ")
        assert f"`dig @{gw} NAME.lxmgr`" in line
        assert _resolve(gw, "web1.lxmgr") == lease  # what the line says works, works
