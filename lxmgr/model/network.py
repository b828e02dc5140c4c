"""PURE managed-network rules: LXD bridge keys, subnet picking, overlap and DHCP math.

Owns which network keys exist (validators, defaults), the typed BridgeSettings read from a
validated config, how `auto` becomes a free 10.x.y.0/24, DHCP ranges and static-address
checks. Imports only lxmgr.errors, other lxmgr.model modules and the stdlib: no I/O (the
caller passes the host's routes and addresses in, see net.links.host_networks()).
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lxmgr.errors import Conflict, InvalidConfig
from lxmgr.model import units
from lxmgr.model import validate as v

IPv4Range = tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]
# What a subnet may collide with: a bare network, or (what it is, network) for the message.
Taken = ipaddress.IPv4Network | tuple[str, ipaddress.IPv4Network]

DEFAULT_DOMAIN = "lxmgr"
DEFAULT_EXPIRY = "1h"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$")
_EXPIRY_RE = re.compile(r"^(infinite|[0-9]+[smhdw]?)$")
_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9][A-Za-z0-9-]{0,62}(\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*$")


def _interface(value: str, version: int) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if "/" not in value:
        raise InvalidConfig(f"Invalid CIDR '{value}': expected ADDRESS/PREFIX")
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as err:
        raise InvalidConfig(f"Invalid CIDR '{value}'") from err
    if iface.version != version:
        raise InvalidConfig(f"Invalid CIDR '{value}': not an IPv{version} address")
    return iface


def is_ipv4_cidr_with_host(value: str) -> None:
    """'auto', 'none' or a host address with its prefix such as 10.11.12.1/24."""
    if value in ("auto", "none"):
        return
    iface = _interface(value, 4)
    net = iface.network
    if net.prefixlen > 30:
        raise InvalidConfig(f"Subnet '{net}' is too small (at most /30)")
    if iface.ip in (net.network_address, net.broadcast_address):
        raise InvalidConfig(f"'{value}' is the network or broadcast address, not a host address")


def is_ipv6_cidr(value: str) -> None:
    """'none' or an IPv6 host address with its prefix such as fd42::1/64."""
    if value == "none":
        return
    iface = _interface(value, 6)
    if iface.ip == iface.network.network_address:
        raise InvalidConfig(f"'{value}' is the subnet address, not a host address")


def is_dhcp_expiry(value: str) -> None:
    """A dnsmasq lease time: seconds, or a number with s/m/h/d/w, or 'infinite'."""
    if not _EXPIRY_RE.fullmatch(value):
        raise InvalidConfig(f"Invalid DHCP expiry '{value}' (e.g. 1h, 30m, 3600)")
    if value[0].isdigit() and expiry_seconds(value) < 120:
        raise InvalidConfig(f"DHCP expiry '{value}' is shorter than dnsmasq's 2 minute minimum")


def is_dhcp_ranges(value: str) -> None:
    """Comma-separated 'FIRST-LAST' IPv4 ranges (the subnet check comes with ipv4.address)."""
    _parse_ranges(value)


def is_dns_upstream(value: str) -> None:
    """'none', 'host' or a comma-separated list of IPv4/IPv6 addresses."""
    if value in ("none", "host"):
        return
    for part in value.split(","):
        try:
            ipaddress.ip_address(part.strip())
        except ValueError:
            raise InvalidConfig(f"'{part.strip()}' is not 'none', 'host' or an IP address") \
                from None


def is_dns_domain(value: str) -> None:
    """A DNS domain such as 'lxmgr' or 'lab.example'."""
    if not _DOMAIN_RE.fullmatch(value):
        raise InvalidConfig(f"Invalid DNS domain '{value}'")


@dataclass(frozen=True)
class NetworkKey:
    """One bridge-network config key: its validator, LXD default and a one-line doc."""

    name: str
    validator: v.Validator
    default: str | None
    doc: str


_KEY_LIST = [
    NetworkKey("ipv4.address", v.optional(is_ipv4_cidr_with_host), "auto",
               "Gateway address and subnet (10.11.12.1/24), 'auto' (a free 10.x.y.0/24) or 'none'"),
    NetworkKey("ipv4.nat", v.optional(v.is_bool), "true",
               "Masquerade traffic from the subnet leaving through the host"),
    NetworkKey("ipv4.dhcp", v.optional(v.is_bool), "true", "Serve DHCP on the bridge"),
    NetworkKey("ipv4.dhcp.ranges", v.optional(is_dhcp_ranges), None,
               "Comma-separated FIRST-LAST ranges to lease from (default: the whole subnet)"),
    NetworkKey("ipv4.dhcp.expiry", v.optional(is_dhcp_expiry), DEFAULT_EXPIRY,
               "DHCP lease time (1h, 30m, infinite)"),
    NetworkKey("ipv6.address", v.optional(is_ipv6_cidr), "none",
               "IPv6 gateway address and prefix (fd42::1/64) or 'none'"),
    NetworkKey("ipv6.nat", v.optional(v.is_bool), "false",
               "Masquerade IPv6 traffic from the prefix leaving through the host"),
    NetworkKey("dns.domain", v.optional(is_dns_domain), DEFAULT_DOMAIN,
               "Domain of the instances' DHCP names (web1.lxmgr)"),
    NetworkKey("dns.upstream", v.optional(is_dns_upstream), "none",
               "Where dnsmasq forwards other names: 'none', 'host' (the host's "
               "/etc/resolv.conf) or comma-separated server addresses"),
    NetworkKey("bridge.mtu", v.optional(v.is_int_range(1280, 9000)), "1500",
               "MTU of the bridge (1280 to 9000)"),
]
NETWORK_KEYS: dict[str, NetworkKey] = {k.name: k for k in _KEY_LIST}
USER_PREFIX = "user."


def validate_network_name(name: str) -> str:
    """A network name is its bridge interface name: 1-15 of [A-Za-z0-9_.-], no leading dash."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
        raise InvalidConfig(f"Invalid network name '{name}': 1-15 characters of "
                            "A-Z a-z 0-9 _ . - not starting with '-'")
    return name


def validate_network_key(name: str, value: str) -> None:
    """Validate one key/value pair; InvalidConfig names the key."""
    if name.startswith(USER_PREFIX) and len(name) > len(USER_PREFIX):
        return
    key = NETWORK_KEYS.get(name)
    if key is None:
        raise InvalidConfig(f"Unknown network config key '{name}'"
                            f"{v.did_you_mean(name, NETWORK_KEYS)}")
    try:
        if "\0" in value or "\n" in value:
            raise InvalidConfig("Value must not contain NUL or newlines")
        key.validator(value)
    except (InvalidConfig, ValueError) as err:
        raise InvalidConfig(f"Invalid network config key '{name}': {err}") from err


def validate_network_config(config: Mapping[str, object]) -> dict[str, str]:
    """Validate a whole network config; return it normalised (string values, sorted keys).

    Cross-key rules (DHCP ranges inside the subnet) are checked here too.
    """
    out: dict[str, str] = {}
    for name in sorted(config):
        value = config[name]
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | str):
            text = str(value)
        else:
            raise InvalidConfig(f"Invalid network config key '{name}': expected a string")
        validate_network_key(name, text)
        out[name] = text
    addr = out.get("ipv4.address", "")
    if addr not in ("", "auto", "none") and out.get("ipv4.dhcp.ranges"):
        try:
            parse_dhcp_ranges(out["ipv4.dhcp.ranges"], ipaddress.IPv4Interface(addr))
        except InvalidConfig as err:
            raise InvalidConfig(f"Invalid network config key 'ipv4.dhcp.ranges': {err}") from err
    return out


def network_value(config: Mapping[str, str], name: str) -> str | None:
    """A key's value, falling back to its default when unset or empty."""
    value = config.get(name, "")
    if value != "":
        return value
    key = NETWORK_KEYS.get(name)
    return key.default if key else None


@dataclass(frozen=True)
class BridgeSettings:
    """Typed view of a validated, auto-resolved bridge config (what the drivers read)."""

    ipv4: ipaddress.IPv4Interface | None
    ipv4_nat: bool
    ipv4_dhcp: bool
    dhcp_ranges: list[IPv4Range] = field(default_factory=list)
    dhcp_expiry: str = DEFAULT_EXPIRY
    ipv6: ipaddress.IPv6Interface | None = None
    ipv6_nat: bool = False
    domain: str = DEFAULT_DOMAIN
    mtu: int = 1500
    upstream: str = "none"  # 'none', 'host' or comma-separated server addresses

    @property
    def subnet(self) -> ipaddress.IPv4Network | None:
        return self.ipv4.network if self.ipv4 else None

    @property
    def gateway(self) -> ipaddress.IPv4Address | None:
        return self.ipv4.ip if self.ipv4 else None

    @property
    def dns_servers(self) -> list[str]:
        """Where the network's dnsmasq answers DNS: the bridge's own addresses."""
        return [str(a.ip) for a in (self.ipv4, self.ipv6) if a is not None]


def bridge_settings(config: Mapping[str, str]) -> BridgeSettings:
    """Read a validated config; `auto` must be resolved first (resolve_auto) to get a subnet."""
    addr = network_value(config, "ipv4.address") or "none"
    ipv4 = None if addr in ("none", "auto") else ipaddress.IPv4Interface(addr)
    addr6 = network_value(config, "ipv6.address") or "none"
    ranges_value = network_value(config, "ipv4.dhcp.ranges")
    ranges: list[IPv4Range] = []
    if ipv4 is not None:
        ranges = (parse_dhcp_ranges(ranges_value, ipv4) if ranges_value
                  else default_dhcp_ranges(ipv4))
    return BridgeSettings(
        ipv4=ipv4,
        ipv4_nat=units.parse_bool(network_value(config, "ipv4.nat") or "true"),
        ipv4_dhcp=units.parse_bool(network_value(config, "ipv4.dhcp") or "true"),
        dhcp_ranges=ranges,
        dhcp_expiry=network_value(config, "ipv4.dhcp.expiry") or DEFAULT_EXPIRY,
        ipv6=None if addr6 == "none" else ipaddress.IPv6Interface(addr6),
        ipv6_nat=units.parse_bool(network_value(config, "ipv6.nat") or "false"),
        domain=network_value(config, "dns.domain") or DEFAULT_DOMAIN,
        mtu=int(network_value(config, "bridge.mtu") or "1500"),
        upstream=network_value(config, "dns.upstream") or "none",
    )


def _labelled(taken: Iterable[Taken]) -> list[tuple[str, ipaddress.IPv4Network]]:
    out = []
    for item in taken:
        if isinstance(item, tuple):
            out.append(item)
        else:
            out.append((f"route {item}", item))
    # A default route (0.0.0.0/0) overlaps everything; it is not a collision (LXD agrees).
    return [(label, net) for label, net in out if net.prefixlen > 0]


def check_overlap(subnet: ipaddress.IPv4Network, taken: Iterable[Taken]) -> None:
    """Raise Conflict naming the first network, route or address that overlaps subnet."""
    for label, net in _labelled(taken):
        if subnet.overlaps(net):
            raise Conflict(f"Subnet '{subnet}' overlaps {label}")


def pick_free_subnet(taken: Iterable[Taken], rng: random.Random | None = None,
                     attempts: int = 1000) -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 (as LXD picks) overlapping nothing taken; Conflict if none found."""
    rng = rng or random.Random()
    nets = [net for _, net in _labelled(taken)]
    for _ in range(attempts):
        candidate = ipaddress.IPv4Network(f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24")
        if not any(candidate.overlaps(net) for net in nets):
            return candidate
    raise Conflict("Failed to find a free 10.x.y.0/24 subnet: set ipv4.address explicitly")


def resolve_auto(config: Mapping[str, str], taken: Iterable[Taken],
                 rng: random.Random | None = None) -> dict[str, str]:
    """A copy of config with `auto` (or unset) ipv4.address replaced by 10.x.y.1/24.

    An explicit subnet is checked against taken instead (Conflict naming the other one).
    """
    out = dict(config)
    addr = network_value(out, "ipv4.address")
    if addr == "auto":
        subnet = pick_free_subnet(taken, rng)
        out["ipv4.address"] = f"{subnet.network_address + 1}/{subnet.prefixlen}"
        out.setdefault("ipv4.nat", "true")
    elif addr and addr != "none":
        check_overlap(ipaddress.IPv4Interface(addr).network, taken)
    return out


def default_dhcp_ranges(gateway: ipaddress.IPv4Interface) -> list[IPv4Range]:
    """Every host address of the subnet except the gateway (.2-.254 for a .1/24)."""
    net = gateway.network
    first, last = net.network_address + 1, net.broadcast_address - 1
    ranges: list[IPv4Range] = []
    if first < gateway.ip:
        ranges.append((first, gateway.ip - 1))
    if gateway.ip < last:
        ranges.append((gateway.ip + 1, last))
    return ranges


def parse_dhcp_ranges(value: str, gateway: ipaddress.IPv4Interface | None = None
                      ) -> list[IPv4Range]:
    """'10.0.0.10-10.0.0.100,...' -> ranges; with gateway, each must lie inside its subnet."""
    ranges = _parse_ranges(value)
    if gateway is not None:
        net = gateway.network
        for first, last in ranges:
            if first not in net or last not in net:
                raise InvalidConfig(f"DHCP range '{first}-{last}' is outside subnet '{net}'")
            if first == net.network_address or last == net.broadcast_address:
                raise InvalidConfig(f"DHCP range '{first}-{last}' includes the network or "
                                    "broadcast address")
    return ranges


def _parse_ranges(value: str) -> list[IPv4Range]:
    ranges: list[IPv4Range] = []
    for part in value.split(","):
        part = part.strip()
        first_s, sep, last_s = part.partition("-")
        try:
            first = ipaddress.IPv4Address(first_s.strip())
            last = ipaddress.IPv4Address(last_s.strip()) if sep else first
        except ValueError as err:
            raise InvalidConfig(f"Invalid DHCP range '{part}': expected FIRST-LAST") from err
        if last < first:
            raise InvalidConfig(f"Invalid DHCP range '{part}': last address before the first")
        ranges.append((first, last))
    return ranges


def validate_static_address(gateway: ipaddress.IPv4Interface, address: str,
                            used: Mapping[ipaddress.IPv4Address, str] | None = None
                            ) -> ipaddress.IPv4Address:
    """Check a NIC's ipv4.address for a network whose ipv4.address is gateway.

    InvalidConfig when outside the subnet or the gateway/network/broadcast address; Conflict
    naming the holder when used (address -> owner, e.g. "instance web1") has it.
    """
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError as err:
        raise InvalidConfig(f"Invalid IPv4 address '{address}'") from err
    net = gateway.network
    if ip not in net:
        raise InvalidConfig(f"Address '{ip}' is outside subnet '{net}'")
    if ip == gateway.ip:
        raise InvalidConfig(f"Address '{ip}' is the network's gateway")
    if ip in (net.network_address, net.broadcast_address):
        raise InvalidConfig(f"Address '{ip}' is the network or broadcast address of '{net}'")
    if used and ip in used:
        raise Conflict(f"Address '{ip}' is already used by {used[ip]}")
    return ip


def expiry_seconds(value: str) -> int:
    """'1h' -> 3600; 'infinite' -> 0 (never expires)."""
    if value == "infinite":
        return 0
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if value[-1] in scale:
        return int(value[:-1]) * scale[value[-1]]
    return int(value)
