"""PURE parsers and builders behind `lxmgr doctor`: /proc/net/udp lines, a minimal DNS query
and reply, and the reading of `nft -j list ruleset` for chains that drop a bridge's traffic.

No I/O here (lxmgr.instances.doctor reads the files and runs the commands). Imports only
the standard library.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
OWN_TABLE_PREFIX = "lxmgr_"  # nft.TABLE_PREFIX: our tables are never a foreign firewall
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
              5: "REFUSED"}
IN = "iifname"  # traffic leaving the bridge (from containers)
OUT = "oifname"  # traffic going to the bridge (replies, port forwards)


@dataclass(frozen=True)
class UdpSocket:
    """One row of /proc/net/udp or /proc/net/udp6: local address, port and socket inode."""

    address: IPAddress
    port: int
    inode: int

    def covers(self, address: IPAddress) -> bool:
        """Whether a datagram to address lands here: same address or a wildcard bind."""
        if self.address == address:
            return True
        if self.address.is_unspecified:  # [::] is dual-stack unless IPV6_V6ONLY: assume it
            return self.address.version >= address.version
        mapped = getattr(self.address, "ipv4_mapped", None)
        return mapped is not None and mapped == address


def parse_proc_net_udp(text: str) -> list[UdpSocket]:
    """Rows of /proc/net/udp or udp6 ('sl local_address rem_address st ... uid timeout inode').

    The kernel prints each 32-bit word of the address in host byte order, hence the native
    struct format.
    """
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or ":" not in fields[1]:
            continue
        hex_addr, hex_port = fields[1].split(":")
        words = [int(hex_addr[i:i + 8], 16) for i in range(0, len(hex_addr), 8)]
        raw = struct.pack(f"={len(words)}I", *words)
        out.append(UdpSocket(ipaddress.ip_address(raw), int(hex_port, 16), int(fields[9])))
    return out


def build_dns_query(qid: int, name: str, qtype: int = 1) -> bytes:
    """A recursion-desired query for name (type A by default), class IN."""
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.strip(".").split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack("!HH", qtype, 1)


def parse_dns_reply(reply: bytes, qid: int) -> str:
    """The response code name ('NOERROR', 'NXDOMAIN', ...) of a reply to query qid.

    ValueError when it is not a DNS response to that query.
    """
    if len(reply) < 12:
        raise ValueError(f"DNS reply too short ({len(reply)} bytes)")
    rid, flags = struct.unpack("!HH", reply[:4])
    if rid != qid:
        raise ValueError(f"DNS reply id {rid} does not match query id {qid}")
    if not flags & 0x8000:
        raise ValueError("DNS packet is a query, not a response")
    rcode = flags & 0x000F
    return DNS_RCODES.get(rcode, f"RCODE{rcode}")


def format_udp_address(address: IPAddress, port: int) -> str:
    """'10.0.0.1:53', '[::]:53'."""
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


# nft -j ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocker:
    """A foreign base chain at a hook that drops by default without accepting the bridge."""

    family: str
    table: str
    chain: str
    hook: str
    missing: tuple[str, ...]  # IN and/or OUT: directions with no accept for the bridge
    docker_user: bool = False  # the table has Docker's DOCKER-USER chain

    @property
    def iptables(self) -> bool:
        """An iptables-nft table: change it with iptables, never with nft."""
        return self.family in ("ip", "ip6") and self.table == "filter" and \
            self.chain.isupper()

    def describe(self) -> str:
        return f"{self.family} {self.table} chain {self.chain} (policy drop)"

    def fix(self, bridge: str) -> str:
        """Commands inserting the accepts the bridge lacks (read the chain before applying)."""
        flag = {IN: "-i", OUT: "-o"}
        if self.iptables:
            tool = "ip6tables" if self.family == "ip6" else "iptables"
            chain = "DOCKER-USER" if self.docker_user else self.chain
            return "; ".join(f"{tool} -I {chain} {flag[d]} {bridge} -j ACCEPT"
                             for d in self.missing)
        return "; ".join(f"nft insert rule {self.family} {self.table} {self.chain} "
                         f"{d} {bridge} accept" for d in self.missing)


def _objects(ruleset: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item[kind] for item in ruleset.get("nftables", []) if kind in item]


def _names(right: Any) -> list[str] | None:
    """The interface names a match compares with ('br0', {'set': [...]}, [...])."""
    if isinstance(right, str):
        return [right]
    if isinstance(right, Mapping) and isinstance(right.get("set"), list):
        right = right["set"]
    if isinstance(right, list) and all(isinstance(x, str) for x in right):
        return list(right)
    return None


def _rule_effect(expr: list[dict[str, Any]], bridge: str
                 ) -> tuple[bool, set[str], bool, dict[str, Any] | None]:
    """(applies to the bridge, interface directions matched, only ct-state matches, verdict)."""
    dirs: set[str] = set()
    other_match = False
    verdict: dict[str, Any] | None = None
    for item in expr:
        match = item.get("match")
        if match is not None:
            left = match.get("left", {})
            key = left.get("meta", {}).get("key") if isinstance(left, Mapping) else None
            names = _names(match.get("right"))
            if key in (IN, OUT) and names is not None:
                hit = any(fnmatch.fnmatchcase(bridge, n) for n in names)
                if match.get("op", "==") in ("==", "in"):
                    if not hit:
                        return False, set(), False, None
                    dirs.add(key)
                elif hit:  # `iifname != br`: not for us
                    return False, set(), False, None
            elif not (isinstance(left, Mapping) and left.get("ct", {}).get("key") == "state"):
                other_match = True
            continue
        for word in ("accept", "drop", "reject", "jump", "goto", "return"):
            if word in item:
                verdict = {word: item[word]}
    return True, dirs, not other_match, verdict


def _accepted(ruleset: Mapping[str, Any], family: str, table: str, chain: str, bridge: str,
              seen: set[str]) -> set[str]:
    """Directions some rule of chain (or a chain it jumps to) accepts for bridge."""
    seen.add(chain)
    out: set[str] = set()
    for rule in _objects(ruleset, "rule"):
        if (rule.get("family"), rule.get("table"), rule.get("chain")) != (family, table, chain):
            continue
        applies, dirs, ct_only, verdict = _rule_effect(rule.get("expr", []), bridge)
        if not applies or verdict is None:
            continue
        if "accept" in verdict:
            if dirs:
                out |= dirs
            elif ct_only:  # `ct state established,related accept` or a bare `accept`
                out |= {IN, OUT} if _is_bare(rule) else {OUT}
        for word in ("jump", "goto"):
            target = (verdict.get(word) or {}).get("target")
            if target and target not in seen:
                found = _accepted(ruleset, family, table, target, bridge, seen)
                # An accept in a chain jumped to only under `iifname br` stays that direction.
                out |= found & dirs if dirs else found
    return out


def _is_bare(rule: Mapping[str, Any]) -> bool:
    return not any("match" in item for item in rule.get("expr", []))


def _drops_by_default(ruleset: Mapping[str, Any], chain: Mapping[str, Any]) -> bool:
    if chain.get("policy") == "drop":
        return True
    rules = [r for r in _objects(ruleset, "rule")
             if (r.get("family"), r.get("table"), r.get("chain")) ==
             (chain.get("family"), chain.get("table"), chain.get("name"))]
    if not rules:
        return False
    last = rules[-1].get("expr", [])
    return _is_bare(rules[-1]) and any("drop" in i or "reject" in i for i in last)


def find_blockers(ruleset: Mapping[str, Any], bridge: str, hook: str = "forward",
                  directions: Iterable[str] = (IN, OUT),
                  families: Iterable[str] = ("ip", "inet")) -> list[Blocker]:
    """Foreign base chains at hook whose default is drop and that accept no traffic of bridge
    in some direction. Every base chain at a hook runs and any drop is final, so our own
    table's accept does not help against them. A heuristic: rule order is not simulated.
    """
    wanted = tuple(directions)
    families = tuple(families)
    out = []
    for chain in _objects(ruleset, "chain"):
        family, table = chain.get("family"), chain.get("table", "")
        if chain.get("hook") != hook or family not in families or \
                table.startswith(OWN_TABLE_PREFIX) or not _drops_by_default(ruleset, chain):
            continue
        accepted = _accepted(ruleset, family, table, chain["name"], bridge, set())
        missing = tuple(d for d in wanted if d not in accepted)
        if missing:
            docker = any(c.get("family") == family and c.get("table") == table and
                         c.get("name") == "DOCKER-USER" for c in _objects(ruleset, "chain"))
            out.append(Blocker(family, table, chain["name"], hook, missing, docker))
    return out



# iptables-legacy -------------------------------------------------------------------------


def _iptables_rules(text: str) -> tuple[dict[str, str], dict[str, list[list[str]]]]:
    """`iptables -S` output -> (chain -> policy, chain -> rules as argument lists)."""
    policies: dict[str, str] = {}
    rules: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        args = line.split()
        if len(args) >= 3 and args[0] == "-P":
            policies[args[1]] = args[2]
        elif len(args) >= 2 and args[0] == "-A":
            rules.setdefault(args[1], []).append(args[2:])
    return policies, rules


def _iptables_accepted(rules: dict[str, list[list[str]]], chain: str, bridge: str,
                       seen: set[str]) -> set[str]:
    seen.add(chain)
    out: set[str] = set()
    for args in rules.get(chain, []):
        dirs: set[str] = set()
        applies, other = True, False
        for i, arg in enumerate(args):
            negated = i > 0 and args[i - 1] == "!"
            if arg in ("-i", "-o") and i + 1 < len(args):
                hit = fnmatch.fnmatchcase(bridge, args[i + 1].replace("+", "*"))
                applies &= hit != negated
                dirs.add(IN if arg == "-i" else OUT)
            elif arg in ("-s", "-d", "-p", "--dport", "--sport"):
                other = True
        target = args[args.index("-j") + 1] if "-j" in args[:-1] else None
        if not applies or target is None:
            continue
        if target == "ACCEPT":
            out |= dirs or (set() if other else ({OUT} if "--ctstate" in args else {IN, OUT}))
        elif target in rules and target not in seen:
            found = _iptables_accepted(rules, target, bridge, seen)
            out |= found & dirs if dirs else found
    return out


def find_iptables_blocker(text: str, bridge: str, chain: str = "FORWARD",
                          directions: Iterable[str] = (IN, OUT)) -> Blocker | None:
    """The same reading as find_blockers() for `iptables-legacy -S` (the filter table)."""
    policies, rules = _iptables_rules(text)
    if policies.get(chain) != "DROP":
        return None
    accepted = _iptables_accepted(rules, chain, bridge, set())
    missing = tuple(d for d in directions if d not in accepted)
    if not missing:
        return None
    return Blocker("ip", "filter", chain, chain.lower(), missing,
                   docker_user="DOCKER-USER" in rules or "-N DOCKER-USER" in text)
