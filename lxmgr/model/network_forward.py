"""Network forwards (LXD's `network_forward` extension) on a managed bridge: PURE validation
of the API body and its expansion into (protocol, listen port, target, target port) pairs.

LXD's rules (lxd/network/driver_common.go forwardValidate, shared/api/network_forward.go):
a listen address and optionally a default `config.target_address`; each port spec has a
protocol (tcp|udp), listen ports as `80,8000-8010`, optional target ports (one port, or as
many as listen ports; none: the listen ports) and a target address inside the network's
subnet. lxmgr applies IPv4 forwards only, as nftables DNAT, so IPv6 is refused by name.
Imports lxmgr.errors only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from lxmgr.errors import Conflict, InvalidConfig

PROTOCOLS = ("tcp", "udp")
# Each port becomes a DNAT rule; past this a forward would make a ruleset nft takes
# seconds to load (LXD uses verdict maps; lxmgr one rule per port).
MAX_PORTS = 4096

Pair = tuple[str, int, ipaddress.IPv4Address, int]


def parse_ports(text: str, what: str) -> list[int]:
    """`80,8000-8010` -> the ports in order; InvalidConfig naming `what` otherwise."""
    ports: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        first, sep, last = part.partition("-")
        try:
            start = int(first)
            end = int(last) if sep else start
        except ValueError:
            raise InvalidConfig(f"Invalid {what} '{text}': expected ports like 80,8000-8010") \
                from None
        if not (1 <= start <= 65535 and 1 <= end <= 65535) or end < start:
            raise InvalidConfig(f"Invalid {what} '{part}': ports are 1-65535, ranges "
                                "low-high")
        ports.extend(range(start, end + 1))
    return ports


def listen_address(text: object, subnets: Mapping[str, ipaddress.IPv4Network | None],
                   network: str, gateway: ipaddress.IPv4Address | None) -> str:
    """A host unicast IPv4 address, canonical; not inside another network's subnet
    (LXD's rule), nor inside this network's except its own gateway address (the others
    belong to instances)."""
    try:
        addr = ipaddress.ip_address(str(text))
    except ValueError:
        raise InvalidConfig(f"Invalid listen_address '{text}'") from None
    if addr.version == 6:
        raise InvalidConfig(f"Invalid listen_address '{addr}': lxmgr forwards IPv4 only")
    assert isinstance(addr, ipaddress.IPv4Address)
    if addr.is_loopback or addr.is_multicast or addr.is_unspecified or addr.is_link_local \
            or addr == ipaddress.IPv4Address("255.255.255.255"):
        # DNAT from loopback is a martian the instance never answers (route_localnet).
        raise InvalidConfig(f"Invalid listen_address '{addr}': not a unicast host address")
    for name, subnet in subnets.items():
        if subnet is None or addr not in subnet:
            continue
        if name != network:
            raise Conflict(f"Listen address '{addr}' overlaps network '{name}' ({subnet})")
        if addr != gateway:
            raise InvalidConfig(f"Listen address '{addr}' is inside network '{network}' "
                                f"({subnet}): only its own address {gateway} may listen")
    return str(addr)


def target_address(text: object, subnet: ipaddress.IPv4Network | None, network: str,
                   what: str = "target_address") -> str:
    try:
        addr = ipaddress.ip_address(str(text))
    except ValueError:
        raise InvalidConfig(f"Invalid {what} '{text}'") from None
    if addr.version == 6:
        raise InvalidConfig(f"Invalid {what} '{addr}': lxmgr forwards IPv4 only")
    if subnet is None:
        raise InvalidConfig(f"Network '{network}' has no IPv4 subnet to forward into")
    if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
        raise InvalidConfig(f"Invalid {what} '{addr}': not a host of network "
                            f"'{network}' ({subnet})")
    return str(addr)


def validate(body: Mapping[str, Any], network: str, subnet: ipaddress.IPv4Network | None,
             listen: str) -> dict[str, Any]:
    """The stored form of a forward (LXD's NetworkForward without name/location):
    {listen_address, description, config, ports}; raises InvalidConfig on the first fault."""
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise InvalidConfig("Invalid description: expected a string")
    config = body.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidConfig("Invalid config: expected a map of strings")
    clean: dict[str, str] = {}
    for key, value in config.items():
        if key != "target_address" and not key.startswith("user."):
            raise InvalidConfig(f"Invalid network forward option '{key}'")
        if not isinstance(value, str):
            raise InvalidConfig(f"Invalid value for '{key}': expected a string")
        if key == "target_address" and value:
            value = target_address(value, subnet, network)
        if value:
            clean[key] = value
    ports = body.get("ports") or []
    if not isinstance(ports, list):
        raise InvalidConfig("Invalid ports: expected a list of port specifications")
    specs = [_port(i, spec, network, subnet) for i, spec in enumerate(ports)]
    forward = {"listen_address": listen, "description": description, "config": clean,
               "ports": specs}
    expanded = pairs(forward)  # duplicate listen ports, too many ports
    if subnet is not None and ipaddress.IPv4Address(listen) in subnet:
        # The bridge's own address: its instances' DHCP and DNS go to it.
        for protocol, port, _, _ in expanded:
            if not protocol:
                raise InvalidConfig(f"A default target_address on the bridge's own address "
                                    f"{listen} would take its DHCP and DNS: forward ports")
            if (protocol, port) in (("udp", 53), ("tcp", 53), ("udp", 67)):
                raise InvalidConfig(f"Listen port {protocol}/{port} on the bridge's own "
                                    f"address {listen} is its DHCP or DNS")
    return forward


def _port(index: int, spec: object, network: str,
          subnet: ipaddress.IPv4Network | None) -> dict[str, str]:
    where = f"Invalid port specification at index {index}"
    if not isinstance(spec, dict):
        raise InvalidConfig(f"{where}: expected an object")
    unknown = set(spec) - {"description", "protocol", "listen_port", "target_port",
                           "target_address"}
    if unknown:
        raise InvalidConfig(f"{where}: unknown field '{sorted(unknown)[0]}'")
    try:
        protocol = str(spec.get("protocol") or "")
        if protocol not in PROTOCOLS:
            raise InvalidConfig(f"protocol must be tcp or udp, not '{protocol}'")
        listen = str(spec.get("listen_port") or "")
        if not listen:
            raise InvalidConfig("Missing listen_port")
        listen_ports = parse_ports(listen, "listen_port")
        target_port = str(spec.get("target_port") or "")
        if target_port:
            count = len(parse_ports(target_port, "target_port"))
            if count not in (1, len(listen_ports)):
                raise InvalidConfig(f"target_port '{target_port}' must be one port or as "
                                    f"many as listen_port '{listen}' ({len(listen_ports)})")
        if not spec.get("target_address"):
            raise InvalidConfig("Missing target_address")
        target = target_address(spec["target_address"], subnet, network)
    except InvalidConfig as err:
        raise InvalidConfig(f"{where}: {err}") from None
    description = spec.get("description") or ""
    return {"description": str(description), "protocol": protocol, "listen_port": listen,
            "target_port": target_port, "target_address": target}


def pairs(forward: Mapping[str, Any]) -> list[Pair]:
    """Every (protocol, listen port, target, target port) of a stored forward; a default
    target_address is ("", 0, target, 0): all other traffic to the listen address."""
    out: list[Pair] = []
    seen: dict[tuple[str, int], int] = {}
    for index, spec in enumerate(forward.get("ports", [])):
        listen = parse_ports(spec["listen_port"], "listen_port")
        target = (parse_ports(spec["target_port"], "target_port") if spec.get("target_port")
                  else listen)
        if len(target) == 1:
            target = target * len(listen)
        address = ipaddress.IPv4Address(spec["target_address"])
        for lport, tport in zip(listen, target, strict=True):
            other = seen.setdefault((spec["protocol"], lport), index)
            if other != index:
                raise InvalidConfig(f"Duplicate listen port {spec['protocol']}/{lport} in "
                                    f"port specifications {other} and {index}")
            out.append((spec["protocol"], lport, address, tport))
    if len(out) > MAX_PORTS:
        raise InvalidConfig(f"Network forward '{forward['listen_address']}' has {len(out)} "
                            f"ports: at most {MAX_PORTS}")
    default = forward.get("config", {}).get("target_address")
    if default:
        out.append(("", 0, ipaddress.IPv4Address(default), 0))
    return out


def merged(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """PATCH: LXD merges config keys and replaces description and ports when given."""
    body = dict(current)
    if "description" in patch:
        body["description"] = patch["description"]
    if "config" in patch:
        config = patch["config"]
        body["config"] = ({**current.get("config", {}), **config}
                          if isinstance(config, dict) else config)
    if "ports" in patch:
        body["ports"] = patch["ports"]
    return body


def conflicts(listen: str, existing: Iterable[tuple[str, str]]) -> None:
    """Conflict when another network already forwards this listen address."""
    for network, address in existing:
        if address == listen:
            raise Conflict(f"Listen address '{listen}' is already forwarded by network "
                           f"'{network}'")
