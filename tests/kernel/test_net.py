"""Bridge networks on the real kernel, each test inside a private network namespace.

Every test body runs in a forked child that first unshares CLONE_NEWNET (the `netns` fixture
of tests/kernel/netns_helpers.py), so the links, nft tables and sockets it makes exist only
there and vanish with it. Networks use ipv4.nat=false or have no route out; dnsmasq has
no upstream servers. No traffic leaves this machine.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
import uuid
from pathlib import Path

import pytest

from tests.kernel.netns_helpers import NFT, dns_query, netns_fixture, new_network  # noqa: F401

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def _dhcp_rapid_commit(ifname: str, mac: bytes, hostname: str
                       ) -> tuple[int, str, dict[int, bytes]]:
    """DHCPDISCOVER with rapid commit (RFC 4039) on ifname asking for the subnet mask, router,
    DNS server, domain name (15) and domain search list (119); (message type, yiaddr, the
    reply's options by code) back.

    Raw frames, as real DHCP clients send them: a UDP socket in the bridge's own namespace
    would get the bridge address as source, which the bridge then drops as martian.
    """
    xid = int.from_bytes(os.urandom(4), "big")
    # op, htype, hlen, hops, xid, secs, flags (broadcast: the client has no address yet)
    dhcp = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000) + b"\0" * 16
    dhcp += mac + b"\0" * 10 + b"\0" * 192 + b"\x63\x82\x53\x63"
    dhcp += bytes([53, 1, 1, 80, 0, 12, len(hostname)]) + hostname.encode()
    dhcp += bytes([55, 5, 1, 3, 6, 15, 119, 255])
    udp = struct.pack("!HHHH", 68, 67, 8 + len(dhcp), 0) + dhcp  # checksum 0: none (IPv4)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes(4), b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    frame = b"\xff" * 6 + mac + b"\x08\x00" + ip + udp
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800)) as sock:
        sock.bind((ifname, 0x0800))
        sock.settimeout(5)
        sock.send(frame)
        while True:
            reply = sock.recv(2048)[14:]  # IPv4 packet
            ihl = (reply[0] & 0x0F) * 4
            if reply[9] != 17 or struct.unpack("!H", reply[ihl + 2:ihl + 4])[0] != 68:
                continue
            reply = reply[ihl + 8:]
            if reply[0] == 2 and struct.unpack("!I", reply[4:8])[0] == xid:
                break
    pos, options = 240, {}
    while pos < len(reply) and reply[pos] != 255:
        if reply[pos] == 0:
            pos += 1
            continue
        options[reply[pos]] = reply[pos + 2:pos + 2 + reply[pos + 1]]
        pos += 2 + reply[pos + 1]
    return options.get(53, b"\0")[0], socket.inet_ntoa(reply[16:20]), options


def _udp_listeners() -> set[tuple[str, int]]:
    """(address, port) of the UDP sockets of this network namespace (/proc/net/udp)."""
    out = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        local = line.split()[1]
        addr, port = local.split(":")
        out.add((socket.inet_ntoa(struct.pack("<I", int(addr, 16))), int(port, 16)))
    return out


def _nft_table(name: str) -> str:
    import subprocess

    return subprocess.run([NFT, "list", "table", "inet", f"lxmgr_{name}"],
                          capture_output=True, text=True, check=True).stdout


def test_bridge_network_lifecycle(netns) -> None:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    octet = int.from_bytes(os.urandom(1), "big")
    gateway = f"10.250.{octet}.1"

    def body() -> dict[str, object]:
        from lxmgr.net import links, nft

        net = new_network(name, {"ipv4.address": f"{gateway}/24", "ipv4.nat": "false",
                                  "ipv4.dhcp.ranges": f"10.250.{octet}.100-10.250.{octet}.120"})
        veth = links.Veth(f"{name}h", f"{name}c")
        facts: dict[str, object] = {}
        try:
            net.create()
            state = net.state()
            facts["state"] = state
            facts["table"] = _nft_table(name)
            facts["listeners"] = _udp_listeners()
            pid = net.dnsmasq.pid()
            facts["pid"] = pid
            net.reserve("00:16:3e:00:00:01", f"10.250.{octet}.50", "web1")
            facts["web1"] = dns_query(gateway, "web1.lxmgr")
            veth.add(master=name)
            t0 = time.monotonic()
            facts["dhcp"] = _dhcp_rapid_commit(f"{name}c", bytes.fromhex("00163e0000aa"), "dyn1")
            facts["dhcp_seconds"] = time.monotonic() - t0
            facts["leases"] = net.leases()
            facts["dyn1"] = dns_query(gateway, "dyn1.lxmgr")
            facts["ports"] = net.state()["bridge"]["upper_devices"]
            net.start()  # idempotent: the same dnsmasq keeps running
            facts["pid_after_start"] = net.dnsmasq.pid()
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while net.dnsmasq.alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            net.start()  # a dead dnsmasq comes back
            facts["pid_restarted"] = net.dnsmasq.pid()
            facts["web1_after_restart"] = dns_query(gateway, "web1.lxmgr")
            veth.delete()
            net.bridge.delete()  # as after a host reboot: the bridge is gone
            net.start()
            facts["after_reboot"] = (net.state()["state"], net.bridge.addresses(),
                                     net.dnsmasq.pid() != facts["pid_restarted"],
                                     dns_query(gateway, "web1.lxmgr"))
        finally:
            veth.delete()
            net.delete()
        facts["after"] = (links.link_exists(name), nft.table_exists(name),
                          net.state_dir.exists(), net.dnsmasq.alive())
        return facts

    facts = netns(body)
    state = facts["state"]
    assert state["state"] == "up" and state["type"] == "broadcast" and state["mtu"] == 1500
    assert {"family": "inet", "address": gateway, "netmask": "24", "scope": "global"} in \
        state["addresses"]
    assert f'iifname "{name}" accept' in facts["table"]
    assert "masquerade" not in facts["table"]
    assert (gateway, 53) in facts["listeners"] and ("0.0.0.0", 67) in facts["listeners"]
    assert facts["web1"] == [f"10.250.{octet}.50"]
    kind, yiaddr, options = facts["dhcp"]
    assert kind == 5, "expected a DHCPACK (rapid commit)"
    # The network's domain as domain name and search list: clients look `web1` up as
    # web1.lxmgr at the gateway (RFC 2132 option 15, RFC 3397 option 119, DNS wire labels).
    assert options[15].rstrip(b"\0") == b"lxmgr"
    assert options[119] == b"\x05lxmgr\x00"
    assert options[6] == socket.inet_aton(gateway)
    assert 100 <= int(yiaddr.rsplit(".", 1)[1]) <= 120
    assert facts["dhcp_seconds"] < 1.5
    assert [(lease.mac, lease.ip, lease.hostname) for lease in facts["leases"]] == [
        ("00:16:3e:00:00:aa", yiaddr, "dyn1")]
    assert facts["dyn1"] == [yiaddr]
    assert facts["ports"] == [f"{name}h"]
    assert facts["pid_after_start"] == facts["pid"]
    assert facts["pid_restarted"] not in (None, facts["pid"])
    assert facts["web1_after_restart"] == [f"10.250.{octet}.50"]
    assert facts["after_reboot"] == ("up", [f"{gateway}/24"], True, [f"10.250.{octet}.50"])
    assert facts["after"] == (False, False, False, False)


def test_nat_masquerades_and_forwards(netns) -> None:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"

    def body() -> tuple[str, str, list[str], set[str]]:
        net = new_network(name, {"ipv4.address": "10.251.0.1/24", "ipv4.dhcp": "false",
                                  "ipv6.address": "fd42:4c58::1/64", "ipv6.nat": "true"})
        try:
            net.create()
            listeners = {line.split()[1] for line in
                         Path("/proc/net/udp6").read_text().splitlines()[1:]}
            return (_nft_table(name), Path("/proc/sys/net/ipv4/ip_forward").read_text(),
                    net.bridge.addresses(), listeners)
        finally:
            net.delete()

    table, forward, addresses, udp6 = netns(body)
    assert "ip saddr 10.251.0.0/24 ip daddr != 10.251.0.0/24 masquerade" in table
    assert "ip6 saddr fd42:4c58::/64 ip6 daddr != fd42:4c58::/64 masquerade" in table
    assert forward.strip() == "1"  # inside the private namespace only
    assert addresses == ["10.251.0.1/24", "fd42:4c58::1/64"]
    # dnsmasq answers DNS on the IPv6 gateway too (no DAD wait on a port-less bridge)
    raw = socket.inet_pton(socket.AF_INET6, "fd42:4c58::1")
    words = "".join(f"{w:08X}" for w in struct.unpack("<4I", raw))  # /proc/net/udp6 order
    assert f"{words}:0035" in udp6


def test_create_reverts_when_dnsmasq_cannot_bind(netns) -> None:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"

    def body() -> tuple[str, tuple[bool, bool, bool]]:
        from lxmgr.errors import CommandError
        from lxmgr.net import links, nft

        net = new_network(name, {"ipv4.address": "10.252.0.1/24", "ipv4.nat": "false"})
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
            squatter.bind(("0.0.0.0", 53))  # another resolver holding port 53
            try:
                net.create()
            except CommandError as err:
                message = str(err) + err.stderr
            else:
                net.delete()
                raise AssertionError("create succeeded with port 53 taken")
        return message, (links.link_exists(name), nft.table_exists(name), net.state_dir.exists())

    message, left = netns(body)
    assert "dnsmasq" in message and "Address already in use" in message
    assert left == (False, False, False)


def test_foreign_link_is_never_adopted(netns) -> None:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"

    def body() -> tuple[str, bool, str]:
        from pyroute2 import IPRoute

        from lxmgr.errors import Conflict
        from lxmgr.net import links

        with IPRoute() as ipr:
            ipr.link("add", ifname=name, kind="bridge")  # a bridge without our alias
        net = new_network(name, {"ipv4.address": "10.253.0.1/24", "ipv4.nat": "false"})
        try:
            net.create()
        except Conflict as err:
            message = str(err)
        else:
            raise AssertionError("a foreign link was adopted")
        try:
            net.delete()
        except Conflict as err:
            refused = str(err)
        return message, links.link_exists(name), refused

    message, still_there, refused = netns(body)
    assert f"Link '{name}' exists and was not created by lxmgr" == message
    assert still_there
    assert "Refusing to delete" in refused


def test_host_resolver_is_told_once_dnsmasq_answers_and_reverted_before_the_link_goes(
        netns) -> None:  # type: ignore[no-untyped-def]
    """systemd-resolved cannot run here: a recording stand-in for resolvectl notes, at each
    call, whether the bridge exists and whether its dnsmasq answers for the domain."""
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    gateway = "10.254.7.1"

    def body() -> list[tuple[list[str], bool, bool]]:
        from lxmgr.net import links, resolved

        seen: list[tuple[list[str], bool, bool]] = []

        def run(argv):  # type: ignore[no-untyped-def]
            # dns_query raises when nothing answers; an unknown name gets no address
            answered = argv[1] == "dns" and dns_query(gateway, "nobody.lab") == []
            seen.append((list(argv[1:]), links.link_exists(name), answered))
            return ""

        cls = new_network(name, {}).__class__
        net = cls(name, cls.plan_config(name, {"ipv4.address": f"{gateway}/24",
                                               "ipv4.nat": "false", "dns.domain": "lab"},
                                        others={}),
                  resolver=resolved.HostResolver(run=run, run_dir=Path("/"),
                                                 which=lambda _n: "resolvectl",
                                                 same_netns=lambda: True))
        try:
            net.create()
            net.start()
        finally:
            net.delete()
        return seen

    calls = netns(body)
    tell = [(["dns", name, gateway], True, True), (["domain", name, "~lab"], True, False),
            (["dnssec", name, "no"], True, False)]
    assert calls == [*tell, *tell, (["revert", name], True, False)]
