"""Doctor parsers (/proc/net/udp, DNS, nft json) and the checks built on faked probes."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from typing import Any

import pytest

from lxmgr.instances import doctor
from lxmgr.instances.doctor_parse import (
    IN,
    OUT,
    UdpSocket,
    build_dns_query,
    find_blockers,
    find_iptables_blocker,
    parse_dns_reply,
    parse_proc_net_udp,
)
from lxmgr.net.bridge import BridgeNetwork

HEADER = ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
          "timeout inode ref pointer drops\n")


def udp_line(address: str, port: int, inode: int) -> str:
    """A /proc/net/udp(6) row as the kernel prints it (32-bit words in host byte order)."""
    raw = ipaddress.ip_address(address).packed
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    local = "".join(f"{w:08X}" for w in words)
    zero = "0" * len(local)
    return (f"  12: {local}:{port:04X} {zero}:0000 07 00000000:00000000 00:00000000 "
            f"00000000     0        0 {inode} 2 0000000000000000 0\n")


def test_parse_proc_net_udp_ipv4() -> None:
    text = HEADER + udp_line("10.1.2.1", 53, 4242) + udp_line("0.0.0.0", 67, 4243)
    assert parse_proc_net_udp(text) == [
        UdpSocket(ipaddress.IPv4Address("10.1.2.1"), 53, 4242),
        UdpSocket(ipaddress.IPv4Address("0.0.0.0"), 67, 4243)]


def test_parse_proc_net_udp_real_little_endian_row() -> None:
    if struct.pack("=I", 1) != struct.pack("<I", 1):
        pytest.skip("row captured on a little-endian host")
    text = HEADER + ("  768: 0102A8C0:0035 00000000:0000 07 00000000:00000000 00:00000000 "
                     "00000000     0        0 99 2 0000000000000000 0\n")
    assert parse_proc_net_udp(text) == [UdpSocket(ipaddress.IPv4Address("192.168.2.1"), 53, 99)]


def test_parse_proc_net_udp6_and_covers() -> None:
    text = HEADER + udp_line("::", 53, 1) + udp_line("fd42::1", 53, 2) + \
        udp_line("::ffff:10.1.2.1", 67, 3)
    wild, v6, mapped = parse_proc_net_udp(text)
    gateway = ipaddress.IPv4Address("10.1.2.1")
    assert (wild.address, v6.address) == (ipaddress.IPv6Address("::"),
                                          ipaddress.IPv6Address("fd42::1"))
    assert wild.covers(gateway) and mapped.covers(gateway) and not v6.covers(gateway)
    assert UdpSocket(ipaddress.IPv4Address("127.0.0.53"), 53, 9).covers(gateway) is False
    any4 = UdpSocket(ipaddress.IPv4Address("0.0.0.0"), 53, 10)
    assert any4.covers(gateway) and not any4.covers(ipaddress.IPv6Address("fd42::1"))


def test_dns_query_and_reply() -> None:
    query = build_dns_query(0x1234, "lxmgr-doctor.lxmgr")
    assert query[:12] == bytes.fromhex("123401000001000000000000")
    assert query[12:] == b"\x0clxmgr-doctor\x05lxmgr\x00\x00\x01\x00\x01"
    reply = bytearray(query)
    reply[2:4] = struct.pack("!H", 0x8583)  # QR, AA, RD, RA, rcode 3
    assert parse_dns_reply(bytes(reply), 0x1234) == "NXDOMAIN"
    with pytest.raises(ValueError, match="does not match"):
        parse_dns_reply(bytes(reply), 0x4321)
    with pytest.raises(ValueError, match="not a response"):
        parse_dns_reply(query, 0x1234)
    with pytest.raises(ValueError, match="too short"):
        parse_dns_reply(b"\x12\x34", 0x1234)


def rule(family: str, table: str, chain: str, *expr: dict[str, Any]) -> dict[str, Any]:
    return {"rule": {"family": family, "table": table, "chain": chain, "expr": list(expr)}}


def iface(key: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": right}}


CT = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established",
                                                                         "related"]}}
ACCEPT: dict[str, Any] = {"accept": None}


def ruleset(*items: dict[str, Any]) -> dict[str, Any]:
    base = [{"metainfo": {"version": "1.0.6"}}]
    return {"nftables": base + list(items)}


def chain(family: str, table: str, name: str, hook: str | None = None,
          policy: str = "accept") -> dict[str, Any]:
    body: dict[str, Any] = {"family": family, "table": table, "name": name}
    if hook:
        body.update(type="filter", hook=hook, prio=0, policy=policy)
    return {"chain": body}


def test_foreign_drop_forward_chain_blocks_both_directions() -> None:
    rs = ruleset(chain("inet", "lxmgrtestfw", "forward", "forward", "drop"),
                 rule("inet", "lxmgrtestfw", "forward", iface(IN, "eth0"), ACCEPT))
    [blocker] = find_blockers(rs, "br0")
    assert (blocker.family, blocker.table, blocker.chain, blocker.missing) == (
        "inet", "lxmgrtestfw", "forward", (IN, OUT))
    assert blocker.fix("br0") == ("nft insert rule inet lxmgrtestfw forward iifname br0 accept; "
                                  "nft insert rule inet lxmgrtestfw forward oifname br0 accept")


def test_accepts_by_name_set_wildcard_and_conntrack() -> None:
    rs = ruleset(chain("inet", "fw", "forward", "forward", "drop"),
                 rule("inet", "fw", "forward", iface(IN, "lxm*"), ACCEPT),
                 rule("inet", "fw", "forward", iface(OUT, {"set": ["x", "br0"]}), CT, ACCEPT))
    [blocker] = find_blockers(rs, "lxmbr")
    assert blocker.missing == (OUT,)
    assert find_blockers(rs, "br0")[0].missing == (IN,)
    rs["nftables"].append(rule("inet", "fw", "forward", CT, ACCEPT))
    assert find_blockers(rs, "lxmbr") == []


def test_our_own_tables_and_accept_policies_are_ignored() -> None:
    rs = ruleset(chain("inet", "lxmgr_br0", "forward", "forward", "drop"),
                 chain("inet", "other", "forward", "forward", "accept"),
                 chain("ip6", "v6only", "forward", "forward", "drop"),
                 chain("inet", "fw", "input", "input", "drop"))
    assert find_blockers(rs, "br0") == []
    assert [b.chain for b in find_blockers(rs, "br0", "input", (IN,))] == ["input"]


def test_docker_forward_drop_and_docker_user_fix() -> None:
    rs = ruleset(chain("ip", "filter", "FORWARD", "forward", "drop"),
                 chain("ip", "filter", "DOCKER-USER"),
                 rule("ip", "filter", "FORWARD", {"jump": {"target": "DOCKER-USER"}}),
                 rule("ip", "filter", "DOCKER-USER", {"return": None}),
                 rule("ip", "filter", "FORWARD", iface(IN, "docker0"), ACCEPT))
    [blocker] = find_blockers(rs, "lxmgrbr0")
    assert blocker.iptables and blocker.docker_user
    assert blocker.fix("lxmgrbr0") == ("iptables -I DOCKER-USER -i lxmgrbr0 -j ACCEPT; "
                                       "iptables -I DOCKER-USER -o lxmgrbr0 -j ACCEPT")
    # After the fix: the accepts sit in the chain FORWARD jumps to.
    rs["nftables"][3:3] = [rule("ip", "filter", "DOCKER-USER", iface(IN, "lxmgrbr0"), ACCEPT),
                           rule("ip", "filter", "DOCKER-USER", iface(OUT, "lxmgrbr0"), ACCEPT)]
    assert find_blockers(rs, "lxmgrbr0") == []


def test_final_unconditional_drop_counts_as_drop_policy() -> None:
    rs = ruleset(chain("inet", "fw", "forward", "forward", "accept"),
                 rule("inet", "fw", "forward", {"counter": {"packets": 0, "bytes": 0}},
                      {"drop": None}))
    assert find_blockers(rs, "br0")[0].missing == (IN, OUT)


DOCKER_LEGACY = """\
-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER-USER -j RETURN
"""


def test_legacy_iptables_docker_drop() -> None:
    blocker = find_iptables_blocker(DOCKER_LEGACY, "lxmgrbr0")
    assert blocker is not None and blocker.missing == (IN, OUT)
    assert blocker.fix("lxmgrbr0") == ("iptables -I DOCKER-USER -i lxmgrbr0 -j ACCEPT; "
                                       "iptables -I DOCKER-USER -o lxmgrbr0 -j ACCEPT")
    fixed = DOCKER_LEGACY.replace("-A DOCKER-USER -j RETURN",
                                  "-A DOCKER-USER -i lxmgr+ -j ACCEPT\n"
                                  "-A DOCKER-USER -o lxmgrbr0 -j ACCEPT\n"
                                  "-A DOCKER-USER -j RETURN")
    assert find_iptables_blocker(fixed, "lxmgrbr0") is None
    assert find_iptables_blocker(DOCKER_LEGACY.replace("FORWARD DROP", "FORWARD ACCEPT"),
                                 "lxmgrbr0") is None


def test_last_log_line_only_reports_failures(tmp_path: Path) -> None:
    log = tmp_path / "dnsmasq.log"
    log.write_text("dnsmasq: started, version 2.89\ndnsmasq-dhcp: read /x/dhcp-hosts\n")
    assert doctor._last_log_line(log) == ""
    log.write_text("dnsmasq: failed to create listening socket for 10.1.2.1: "
                   "Address already in use\n")
    assert doctor._last_log_line(log).endswith("Address already in use")
    assert doctor._last_log_line(tmp_path / "missing") == ""


# Checks on faked probes ----------------------------------------------------------------


def make_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config: str
                 ) -> BridgeNetwork:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    return BridgeNetwork("lxmtbr", {"ipv4.address": "10.1.2.1/24", **config})


def test_port_taken_names_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = make_network(tmp_path, monkeypatch)
    sockets = [UdpSocket(ipaddress.IPv4Address("10.1.2.1"), 53, 7)]
    monkeypatch.setattr(doctor, "socket_owners", lambda inodes: {7: [(4321, "python3")]})
    checks = {c.name: c for c in doctor.dnsmasq_checks(net, sockets)}
    assert not checks["lxmtbr dnsmasq"].ok
    port = checks["lxmtbr port 53"]
    assert not port.ok
    assert port.detail == "udp 10.1.2.1:53 taken by pid 4321 (python3)"
    assert "kill 4321" in port.fix and "systemctl restart lxmgr.service" in port.fix
    assert checks["lxmtbr port 67"].ok


def test_a_wildcard_dnsmasq_sharing_67_is_fine(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    net = make_network(tmp_path, monkeypatch)
    any4 = ipaddress.IPv4Address("0.0.0.0")
    sockets = [UdpSocket(ipaddress.IPv4Address("10.1.2.1"), 53, 1), UdpSocket(any4, 67, 2),
               UdpSocket(any4, 67, 3)]
    owners = {1: [(100, "dnsmasq")], 2: [(100, "dnsmasq")], 3: [(200, "dnsmasq")]}
    monkeypatch.setattr(doctor, "socket_owners", lambda inodes: owners)
    monkeypatch.setattr(net.dnsmasq, "pid", lambda: 100)
    monkeypatch.setattr(doctor, "query_dns", lambda server, name: ("NXDOMAIN", 0.002))
    checks = doctor.dnsmasq_checks(net, sockets)
    assert all(c.ok for c in checks), checks
    owners[3] = [(300, "dhcpd")]
    bad = [c for c in doctor.dnsmasq_checks(net, sockets) if not c.ok]
    assert [(c.name, c.detail) for c in bad] == [
        ("lxmtbr port 67", "udp 0.0.0.0:67 taken by pid 300 (dhcpd)")]


def test_ip_forward_only_for_nat_networks(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    knob = tmp_path / "ip_forward"
    knob.write_text("0\n")
    monkeypatch.setattr(doctor, "IP_FORWARD", knob)
    nat = make_network(tmp_path, monkeypatch, **{"ipv4.nat": "true"})
    assert doctor.forwarding_checks([make_network(tmp_path, monkeypatch,
                                                  **{"ipv4.nat": "false"})]) == []
    [check] = doctor.forwarding_checks([nat])
    assert not check.ok and check.fix == "sysctl -w net.ipv4.ip_forward=1"
    assert check.detail == "net.ipv4.ip_forward=0 (NAT on lxmtbr)"


def test_conflicting_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = make_network(tmp_path, monkeypatch)
    taken = [("route 10.1.0.0/16 on 'eth1'", ipaddress.IPv4Network("10.1.0.0/16"))]
    monkeypatch.setattr(doctor.links, "host_networks", lambda exclude_links: taken)
    check = doctor.check_routes(net)
    assert not check.ok
    assert check.detail == "10.1.2.0/24 overlaps route 10.1.0.0/16 on 'eth1'"
    assert check.fix.startswith("lxmgr network set lxmtbr ipv4.address=auto")
