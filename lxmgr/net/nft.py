"""nftables for managed networks: a PURE ruleset builder and a thin `nft -f -` apply.

Each network owns exactly one table, `inet lxmgr_<network>` (inet: one table serves IPv4 and
IPv6 NAT), replaced atomically and deleted with the network; no other table is ever read,
flushed or changed. We shell out to /usr/sbin/nft rather than speak nf_tables netlink: nft
owns the ruleset grammar and compiles it to bytecode in one kernel transaction, which no
Python binding does as reliably. Imports lxmgr.linux and lxmgr.errors.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from lxmgr.errors import CommandError, InvalidConfig
from lxmgr.linux import commands

log = logging.getLogger(__name__)

NFT = "/usr/sbin/nft"
FAMILY = "inet"
TABLE_PREFIX = "lxmgr_"


@dataclass(frozen=True)
class Dnat:
    """A port forward (proxy device with nat=true, network forward port): listen port ->
    instance address:port. protocol "" with both ports 0 forwards every protocol and port of
    listen_address to target (a network forward's default target_address)."""

    protocol: str  # tcp | udp | "" (whole address)
    listen_port: int
    target: ipaddress.IPv4Address
    target_port: int
    listen_address: ipaddress.IPv4Address | None = None  # None: any local address

    def rule(self) -> str:
        if not self.protocol:
            if self.listen_address is None:
                raise InvalidConfig("A whole-address DNAT needs a listen address")
            return f"ip daddr {self.listen_address} dnat ip to {self.target}"
        if self.protocol not in ("tcp", "udp"):
            raise InvalidConfig(f"Invalid DNAT protocol '{self.protocol}'")
        # No listen address: any address of this host, as a proxy on 0.0.0.0 would, but
        # loopback: a DNAT from 127.0.0.1 is a martian the container never answers.
        match = (f"ip daddr {self.listen_address} " if self.listen_address
                 else "fib daddr type local ip daddr != 127.0.0.0/8 ")
        return (f"{match}{self.protocol} dport {self.listen_port} "
                f"dnat ip to {self.target}:{self.target_port}")

    def masquerade(self, subnet: ipaddress.IPv4Network) -> list[str]:
        """postrouting rules so that replies to a forwarded connection come back through
        the host: a client on the bridge's subnet (the instance itself, a neighbour) would
        get the answer straight from the target's address and drop it; a client on the
        host with a source the instance has no route to would get none."""
        ports = f" {self.protocol} dport {self.target_port}" if self.protocol else ""
        match = f"ip daddr {self.target}{ports} ct status dnat"
        return [f"{match} ip saddr {subnet} masquerade",
                f"{match} fib saddr type local masquerade"]


def table_name(network_name: str) -> str:
    """The nft table of a network (network names are valid nft identifiers after the prefix)."""
    return f"{TABLE_PREFIX}{network_name}"


def build_ruleset(network_name: str, bridge: str, subnet: ipaddress.IPv4Network | None,
                  nat: bool, proxies: Sequence[Dnat] = (), *,
                  subnet6: ipaddress.IPv6Network | None = None, nat6: bool = False) -> str:
    """The whole table of one network as nft input; replaces any previous version atomically.

    The leading `table ... {}` + `delete table` pair makes the delete idempotent inside the
    same transaction: if the table did not exist the first line creates it, so the delete
    never fails, and nothing is applied unless everything parses.
    """
    table = table_name(network_name)
    chains = [_chain("forward", "filter", "forward", "0", [
        f'iifname "{bridge}" accept',
        f'oifname "{bridge}" ct state established,related accept',
    ]), _chain("input", "filter", "input", "0", [
        # Only meaningful under a drop policy elsewhere in this table: an accept here does
        # not override another table's drop (each base chain votes; any drop is final).
        f'iifname "{bridge}" udp dport {{ 53, 67 }} accept',
        f'iifname "{bridge}" tcp dport 53 accept',
    ])]
    masquerade = [rule for p in proxies if subnet is not None for rule in p.masquerade(subnet)]
    if nat and subnet is not None:
        masquerade.append(f"ip saddr {subnet} ip daddr != {subnet} masquerade")
    if nat6 and subnet6 is not None:
        masquerade.append(f"ip6 saddr {subnet6} ip6 daddr != {subnet6} masquerade")
    if masquerade:
        chains.append(_chain("postrouting", "nat", "postrouting", "100", masquerade))
    if proxies:
        # Port rules first: a whole-address forward only takes what no port rule matched
        # (LXD's default target_address).
        dnat = [p.rule() for p in sorted(proxies, key=lambda p: not p.protocol)]
        chains.append(_chain("prerouting", "nat", "prerouting", "-100", dnat))
        chains.append(_chain("output", "nat", "output", "-100", dnat))
    body = "\n".join(chains)
    return (f"table {FAMILY} {table} {{}}\n"
            f"delete table {FAMILY} {table}\n"
            f"table {FAMILY} {table} {{\n{body}\n}}\n")


def _chain(name: str, kind: str, hook: str, priority: str, rules: list[str]) -> str:
    lines = [f"\tchain {name} {{",
             f"\t\ttype {kind} hook {hook} priority {priority}; policy accept"]
    lines += [f"\t\t{rule}" for rule in rules]
    lines.append("\t}")
    return "\n".join(lines)


def build_delete(network_name: str) -> str:
    """nft input deleting a network's table, a no-op when it does not exist."""
    table = table_name(network_name)
    return f"table {FAMILY} {table} {{}}\ndelete table {FAMILY} {table}\n"


def apply(text: str) -> None:
    """Run `nft -f -` with text on stdin, as one transaction; CommandError on failure."""
    log.debug("nft ruleset:\n%s", text)
    commands.run([NFT, "-f", "-"], input=text, timeout=30)


def delete(network_name: str) -> None:
    """Delete the network's table if it exists."""
    apply(build_delete(network_name))


def table_exists(network_name: str) -> bool:
    """Whether the network's table exists in the current network namespace."""
    try:
        commands.run([NFT, "list", "table", FAMILY, table_name(network_name)], timeout=30)
    except CommandError as err:
        if "No such file or directory" in err.stderr:
            return False
        raise
    return True
