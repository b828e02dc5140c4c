"""The checks behind `lxmgr doctor` (GET /1.0/doctor): why a container has no network (and
whether an lxcfs gives containers their own /proc/meminfo, cpuinfo, uptime: instances.lxcfs).

For each managed network: the bridge is up with its gateway, its dnsmasq is alive and
answers a real DNS query, DHCP's udp/67 is bound by that dnsmasq, no other process holds
53/67 on the gateway, the host's own resolver sends the network's domain there (or what
works instead), no foreign firewall drops its forwarded or input traffic, and no route or
address elsewhere overlaps its subnet; host-wide: the tools, lxcfs and ip_forward. Every Check
(host.Check) carries a one-line detail and a concrete fix command.

Read-only: it reads /proc, netlink, `nft -j list ruleset` and `resolvectl dns|domain`, sends
one DNS query to each gateway (a local address), and never changes a link, table or process.
Blocking: the daemon runs it in a thread. Acts in the caller's network namespace.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lxmgr.errors import LxmgrError, NotFound
from lxmgr.instances import lxcfs
from lxmgr.instances.doctor_parse import (
    IN,
    OUT,
    Blocker,
    UdpSocket,
    build_dns_query,
    find_blockers,
    find_iptables_blocker,
    format_udp_address,
    parse_dns_reply,
    parse_proc_net_udp,
)
from lxmgr.instances.host import Check
from lxmgr.linux import commands
from lxmgr.net import dnsmasq, links, nft
from lxmgr.net.bridge import IP6_FORWARD, IP_FORWARD, BridgeNetwork

log = logging.getLogger(__name__)

RESTART = "systemctl restart lxmgr.service"  # lxmgrd's start() re-creates what is missing
DNS_TIMEOUT = 1.0
PROBE_NAME = "lxmgr-doctor"  # queried as lxmgr-doctor.<dns.domain>: NXDOMAIN is an answer


def diagnose(drivers: Iterable[BridgeNetwork]) -> list[Check]:
    """Host-wide checks (tools, lxcfs, ip_forward), then network_checks() for every network."""
    drivers = list(drivers)
    checks = [_check_tool("dnsmasq", dnsmasq.DNSMASQ, "apt-get install dnsmasq-base"),
              _check_tool("nft", nft.NFT, "apt-get install nftables"),
              lxcfs.check()]
    checks += forwarding_checks(drivers)
    return checks + network_checks(drivers)


def network_checks(drivers: Iterable[BridgeNetwork]) -> list[Check]:
    """Per network: bridge, dnsmasq, DNS, DHCP, ports 53/67, firewall, routes."""
    drivers = list(drivers)
    if not drivers:
        return []
    sockets = read_udp_sockets()
    ruleset, ruleset_error = read_ruleset()
    legacy = read_legacy_iptables()
    out: list[Check] = []
    for driver in drivers:
        bridge = check_bridge(driver)
        out.append(bridge)
        if bridge.ok and driver.has_dnsmasq:
            out += dnsmasq_checks(driver, sockets)
            out.append(check_host_dns(driver))
        if ruleset_error:
            out.append(Check(f"{driver.name} firewall", False, ruleset_error,
                             f"run `{nft.NFT} -j list ruleset` as root", fatal=False))
        else:
            out += firewall_checks(driver, ruleset, legacy)
        out.append(check_routes(driver))
    return out


def _check_tool(name: str, path: str, fix: str) -> Check:
    ok = os.access(path, os.X_OK)
    return Check(name, ok, path if ok else f"{path} is not installed", fix)


def forwarding_checks(drivers: Iterable[BridgeNetwork]) -> list[Check]:
    """ip_forward (and IPv6 forwarding) = 1 when some network masquerades."""
    out = []
    knobs = [(IP_FORWARD, "net.ipv4.ip_forward",
              [d.name for d in drivers if d.settings.ipv4_nat and d.settings.ipv4]),
             (IP6_FORWARD, "net.ipv6.conf.all.forwarding",
              [d.name for d in drivers if d.settings.ipv6_nat and d.settings.ipv6])]
    for knob, key, users in knobs:
        if not users:
            continue
        try:
            value = knob.read_text().strip()
        except OSError as err:
            value = f"unreadable ({err.strerror})"
        out.append(Check(key, value == "1", f"{key}={value} (NAT on {', '.join(users)})",
                         f"sysctl -w {key}=1"))
    return out


def check_bridge(driver: BridgeNetwork) -> Check:
    """The bridge exists, is up and carries the gateway address."""
    name = f"{driver.name} bridge"
    try:
        state = links.link_state(driver.name)
    except NotFound:
        return Check(name, False, f"link '{driver.name}' does not exist",
                     f"{RESTART}  # lxmgrd re-creates the bridge on start")
    if state["state"] != "up":
        return Check(name, False, f"link '{driver.name}' is down", f"ip link set {driver.name} up")
    have = {f"{a['address']}/{a['netmask']}" for a in state["addresses"]}
    want = [str(a) for a in (driver.settings.ipv4, driver.settings.ipv6) if a is not None]
    missing = [a for a in want if a not in have]
    if missing:
        return Check(name, False, f"up but without {', '.join(missing)}",
                     f"ip addr add {missing[0]} dev {driver.name}  # or {RESTART}")
    ports = len(state.get("bridge", {}).get("upper_devices", []))
    return Check(name, True, f"up, {', '.join(want) or 'no address'}, {ports} port(s)")


# dnsmasq, DNS, DHCP, ports ----------------------------------------------------------------


def read_udp_sockets() -> list[UdpSocket]:
    """Every UDP socket of this network namespace (IPv4 and IPv6)."""
    out: list[UdpSocket] = []
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            out += parse_proc_net_udp(Path(path).read_text())
        except OSError:
            continue
    return out


def socket_owners(inodes: Iterable[int]) -> dict[int, list[tuple[int, str]]]:
    """inode -> [(pid, comm)] of the processes holding those sockets (a /proc/*/fd scan)."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    out: dict[int, list[tuple[int, str]]] = {}
    if not wanted:
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(f"/proc/{entry}/fd/{fd}"))
            except OSError:
                continue
            if inode is not None:
                out.setdefault(inode, []).append((int(entry), _comm(int(entry))))
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def query_dns(server: str, name: str, timeout: float = DNS_TIMEOUT) -> tuple[str, float]:
    """(response code, seconds) of one UDP DNS query to server:53; OSError on no answer."""
    qid = int.from_bytes(os.urandom(2), "big")
    packet = build_dns_query(qid, name)
    start = time.monotonic()
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((server, 53))
        sock.send(packet)
        while True:
            try:
                return parse_dns_reply(sock.recv(1500), qid), time.monotonic() - start
            except ValueError:  # a stray or late reply: keep waiting for ours
                continue


def dnsmasq_checks(driver: BridgeNetwork, sockets: list[UdpSocket]) -> list[Check]:
    """dnsmasq alive (pid from the state dir), DNS answering, DHCP bound, 53/67 not taken."""
    settings = driver.settings
    gateway = settings.gateway or (settings.ipv6.ip if settings.ipv6 else None)
    if gateway is None:
        return []
    ports = [53] + ([67] if settings.ipv4_dhcp and settings.ipv4 else [])
    relevant = [s for s in sockets if s.port in ports and s.covers(gateway)]
    owners = socket_owners(s.inode for s in relevant)
    pid = driver.dnsmasq.pid()
    mine = {s.inode for s in relevant if pid in [p for p, _ in owners.get(s.inode, [])]}
    out = [_check_alive(driver, pid)]
    if pid is not None:
        out.append(_check_dns(driver, str(gateway)))
    for port in ports:
        held = [s for s in relevant if s.port == port]
        out.append(_check_port(driver, port, held, mine, owners, pid))
    return out


def _check_alive(driver: BridgeNetwork, pid: int | None) -> Check:
    name = f"{driver.name} dnsmasq"
    if pid is not None:
        return Check(name, True, f"running, pid {pid}")
    last = _last_log_line(driver.dnsmasq.log_file)
    return Check(name, False, "not running" + (f"; last log: {last}" if last else ""),
                 f"{RESTART}  # restarts the network's dnsmasq; log: {driver.dnsmasq.log_file}")


def _last_log_line(path: Path) -> str:
    """dnsmasq's last words when its last start failed ('failed to create listening socket
    for 10.0.0.1: Address already in use'), else ""."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    for line in reversed(lines[-3:]):
        if "fail" in line.lower() or "error" in line.lower():
            return line.strip()[:160]
    return ""


def _check_dns(driver: BridgeNetwork, gateway: str) -> Check:
    name = f"{driver.name} dns"
    probe = f"{PROBE_NAME}.{driver.settings.domain}"
    try:
        rcode, seconds = query_dns(gateway, probe)
    except OSError as err:
        reason = "no answer within 1s" if isinstance(err, TimeoutError) else \
            (err.strerror or str(err))
        return Check(name, False, f"{gateway}:53 does not answer ({reason})",
                     f"{RESTART}  # log: {driver.dnsmasq.log_file}")
    ok = rcode in ("NOERROR", "NXDOMAIN")
    return Check(name, ok, f"{gateway}:53 answered {rcode} in {seconds * 1000:.0f} ms",
                 f"{RESTART}  # log: {driver.dnsmasq.log_file}")


def check_host_dns(driver: BridgeNetwork) -> Check:
    """Whether the host itself resolves NAME.<dns.domain>: where it runs systemd-resolved the
    driver routed the domain to the bridge (LXD documents the same for lxdbr0); elsewhere
    nothing can tell the host's resolver, and the one line says what works instead (not a
    failure: containers resolve each other either way)."""
    name = f"{driver.name} host dns"
    domain, server = driver.settings.domain, driver.settings.dns_servers[0]
    instead = (f"*.{domain} resolves on the host only by asking {server}: "
               f"`dig @{server} NAME.{domain}`, or send {domain} to {server} in the host's "
               "resolver")
    tool, why = driver.resolver.availability()
    if tool is None:
        return Check(name, True, f"{why}; {instead}")
    try:
        servers, domains = driver.resolver.link_settings(driver.name)
    except LxmgrError as err:
        return Check(name, True, f"systemd-resolved does not answer ({err}); {instead}")
    if server in servers and f"~{domain}" in domains:
        return Check(name, True, f"systemd-resolved sends *.{domain} to {', '.join(servers)}")
    want = " ".join(driver.settings.dns_servers)
    return Check(name, False, f"systemd-resolved does not send *.{domain} to {server} "
                 f"(link {driver.name}: dns {' '.join(servers) or 'none'}, domains "
                 f"{' '.join(domains) or 'none'})",
                 f"resolvectl dns {driver.name} {want} && resolvectl domain {driver.name} "
                 f"'~{domain}'  # or {RESTART}")


def _check_port(driver: BridgeNetwork, port: int, held: list[UdpSocket], mine: set[int],
                owners: dict[int, list[tuple[int, str]]], pid: int | None) -> Check:
    """A port is taken when another process holds it on the gateway, or on a wildcard while
    our dnsmasq lacks it; a foreign wildcard 67 that is not a dnsmasq (which binds its DHCP
    socket to its own interface) may answer DHCP on our bridge too."""
    proto = "dns" if port == 53 else "dhcp"
    name = f"{driver.name} port {port}"
    ours = any(s.inode in mine for s in held)
    for sock in held:
        if sock.inode in mine:
            continue
        holders = owners.get(sock.inode) or [(0, "?")]
        wildcard = sock.address.is_unspecified
        benign = ours and wildcard and (port == 53 or all(c == "dnsmasq" for _, c in holders))
        if benign:
            continue
        who = ", ".join(f"pid {p} ({c})" if p else "an unknown process" for p, c in holders)
        where = format_udp_address(sock.address, port)
        return Check(name, False, f"udp {where} taken by {who}", _port_fix(driver, holders,
                                                                          where))
    if pid is None:
        return Check(name, True, f"udp/{port} ({proto}) free, no other process holds it")
    if not ours:
        return Check(name, False, f"dnsmasq (pid {pid}) has no udp/{port} ({proto}) socket",
                     f"{RESTART}  # log: {driver.dnsmasq.log_file}")
    return Check(name, True, f"udp/{port} ({proto}) held by dnsmasq pid {pid}")


def _port_fix(driver: BridgeNetwork, holders: list[tuple[int, str]], where: str) -> str:
    pid, comm = holders[0]
    bridge = driver.name
    if comm == "dnsmasq":
        how = (f"add 'bind-interfaces' and 'except-interface={bridge}' to that dnsmasq's "
               "config and restart it")
    elif comm.startswith("systemd-resolve"):
        how = "remove DNSStubListenerExtra for this address in /etc/systemd/resolved.conf"
    elif pid:
        how = f"stop it (kill {pid}) or make {comm} listen elsewhere than {where}"
    else:
        how = f"find it with `ss -lunp 'sport = :{where.rsplit(':', 1)[1]}'` and stop it"
    return f"{how}; then {RESTART}"


# firewall, routes ---------------------------------------------------------------------------


def read_ruleset() -> tuple[dict[str, Any], str]:
    """(`nft -j list ruleset` parsed, "") or ({}, why it could not be read). Read-only."""
    if not os.access(nft.NFT, os.X_OK):
        return {"nftables": []}, ""
    try:
        text = commands.run([nft.NFT, "-j", "list", "ruleset"], timeout=10).stdout
        return json.loads(text or '{"nftables": []}'), ""
    except (LxmgrError, ValueError) as err:
        return {}, f"cannot read the nft ruleset: {err}"


def read_legacy_iptables() -> str:
    """`iptables-legacy -S` of the filter table when a legacy one is loaded, else "".

    iptables-nft rules show up in the nft ruleset; legacy x_tables ones only through the
    legacy tool. Read-only.
    """
    try:
        names = Path("/proc/net/ip_tables_names").read_text().split()
    except OSError:
        return ""
    tool = shutil.which("iptables-legacy")
    if "filter" not in names or tool is None:
        return ""
    try:
        return commands.run([tool, "-w", "5", "-t", "filter", "-S"], timeout=10).stdout
    except LxmgrError as err:
        log.warning("cannot read the legacy iptables filter table: %s", err)
        return ""


def firewall_checks(driver: BridgeNetwork, ruleset: dict[str, Any],
                    legacy: str = "") -> list[Check]:
    """Foreign base chains at forward (routed traffic) and input (DNS/DHCP from containers)
    whose default is drop and that accept nothing for the bridge (nft and legacy iptables)."""
    families = ["inet"] + (["ip"] if driver.settings.ipv4 else []) + \
        (["ip6"] if driver.settings.ipv6 else [])
    out = []
    for hook, directions in (("forward", (IN, OUT)), ("input", (IN,))):
        blockers = find_blockers(ruleset, driver.name, hook, directions, families)
        old = find_iptables_blocker(legacy, driver.name, hook.upper(), directions) \
            if legacy and driver.settings.ipv4 else None
        blockers += [old] if old else []
        name = f"{driver.name} {hook}"
        if blockers:
            out.append(_blocked(name, driver.name, blockers))
        else:
            out.append(Check(name, True, f"no foreign {hook} chain drops {driver.name} traffic"))
    return out


def _blocked(name: str, bridge: str, blockers: list[Blocker]) -> Check:
    first = blockers[0]
    dirs = " and ".join("from" if d == IN else "to" for d in first.missing)
    more = f" (+{len(blockers) - 1} more)" if len(blockers) > 1 else ""
    return Check(name, False, f"{first.describe()} drops traffic {dirs} {bridge}{more}",
                 first.fix(bridge))


def check_routes(driver: BridgeNetwork) -> Check:
    """No route or address outside the bridge overlaps the network's IPv4 subnet."""
    name = f"{driver.name} routes"
    subnet = driver.settings.subnet
    if subnet is None:
        return Check(name, True, "no IPv4 subnet")
    clashes = [label for label, net in links.host_networks(exclude_links=(driver.name,))
               if net.overlaps(subnet)]
    if not clashes:
        return Check(name, True, f"nothing else routes {subnet}")
    return Check(name, False, f"{subnet} overlaps {clashes[0]}"
                 + (f" (+{len(clashes) - 1} more)" if len(clashes) > 1 else ""),
                 f"lxmgr network set {driver.name} ipv4.address=auto  # or remove the "
                 f"other {clashes[0].split(' ', 1)[0]}")
