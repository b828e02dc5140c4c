"""Proxy devices (LXD's `type: proxy`): port forwards from the host into a container.

PURE part: ProxySpec (one device, resolved), build_proxy() (device dict -> ProxySpec, errors
naming the device and key) and build_dnat() (a nat=true device -> an nft.Dnat rule for the
network of the NIC that owns the connect address). Side effects: bind_listener() opens a
device's listening socket in the caller's network namespace (the relay keeps it, the
manager's check_listen_free() closes it at once). The relay process itself is
lxmgr.net.relay.

Supported, as LXD: `listen` and `connect` of `tcp:ADDR:PORT` or `udp:ADDR:PORT` (IPv6 in
brackets), `bind=host`, `nat=true` (IPv4, a non-loopback listen address, a NIC with a
static ipv4.address: nft DNAT rules for traffic from other machines and from the host). Not
supported: unix sockets, port ranges (single ports only), `bind=instance`.
Imports lxmgr.errors, lxmgr.model and lxmgr.net.nft only.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lxmgr.errors import Conflict, InvalidConfig, KernelError, NotSupported
from lxmgr.model.devices import validate_device
from lxmgr.model.units import parse_bool
from lxmgr.net.nft import Dnat

PROTOCOLS = ("tcp", "udp")
WILDCARDS = (ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::"))
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ProxySpec:
    """One proxy device, resolved: what the relay (or the nft table) needs."""

    device: str  # the device's name in the config ("web")
    listen_proto: str  # tcp | udp (on the host)
    listen_addr: str  # an IP literal, no brackets
    listen_port: int
    connect_proto: str  # tcp | udp (inside the container)
    connect_addr: str
    connect_port: int
    nat: bool = False  # True: an nft DNAT rule instead of the relay

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (proxies.json, the relay's SPEC.json, holds a list of these)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProxySpec:
        """Inverse of to_dict(); unknown or missing keys are an error."""
        try:
            return cls(**data)
        except TypeError as err:
            raise InvalidConfig(f"Invalid proxy spec: {err}") from err

    @property
    def listen(self) -> str:
        """LXD's spelling of the listen address ('tcp:[::1]:80')."""
        return _format(self.listen_proto, self.listen_addr, self.listen_port)

    @property
    def connect(self) -> str:
        """LXD's spelling of the connect address."""
        return _format(self.connect_proto, self.connect_addr, self.connect_port)

    @property
    def socket_type(self) -> int:
        return socket.SOCK_STREAM if self.listen_proto == "tcp" else socket.SOCK_DGRAM

    def describe(self) -> str:
        """One line for logs."""
        mode = "nat" if self.nat else "relay"
        return f"proxy '{self.device}': {self.listen} -> {self.connect} ({mode})"


def _format(proto: str, addr: str, port: int) -> str:
    host = f"[{addr}]" if ":" in addr else addr
    return f"{proto}:{host}:{port}"


def family_of(addr: str) -> int:
    """AF_INET or AF_INET6 for an IP literal."""
    return socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET


# -- pure ------------------------------------------------------------------------------------


def build_proxy(device_name: str, device: Mapping[str, object]) -> ProxySpec:
    """Resolve one `type: proxy` device; InvalidConfig (400) for bad input, NotSupported
    (501) for LXD features this project lacks, each naming the device and key."""
    dev = validate_device(device_name, device)
    if dev["type"] != "proxy":
        raise InvalidConfig(f"Invalid device '{device_name}': type '{dev['type']}' is not "
                            "a proxy")
    if dev.get("bind", "host") != "host":
        raise NotSupported(f"Proxy '{device_name}' key 'bind': only 'host' is supported "
                           "(listen on the host, connect inside the instance)")
    listen = _endpoint(device_name, "listen", dev["listen"])
    connect = _endpoint(device_name, "connect", dev["connect"])
    if listen[0] != connect[0]:
        raise InvalidConfig(f"Invalid device '{device_name}': listen protocol '{listen[0]}' "
                            f"and connect protocol '{connect[0]}' differ (tcp<->udp is not "
                            "possible)")
    if connect[1] in WILDCARDS:
        raise InvalidConfig(f"Invalid device '{device_name}' key 'connect': "
                            f"'{dev['connect']}' is a wildcard, not an address to connect to")
    nat = parse_bool(dev["nat"]) if dev.get("nat") else False
    if nat and (listen[1].version != 4 or connect[1].version != 4):
        raise NotSupported(f"Proxy '{device_name}': nat=true supports IPv4 addresses only")
    if nat and listen[1].is_loopback:
        # As LXD: a DNAT to the instance keeps the loopback source, which the kernel
        # drops as a martian on the bridge; the relay (nat=false) serves loopback.
        raise NotSupported(f"Proxy '{device_name}' key 'listen': nat=true needs a "
                           f"non-loopback listen address, not {listen[1]} (use a host or "
                           "bridge address, or nat=false for the relay)")
    return ProxySpec(device_name, listen[0], str(listen[1]), listen[2],
                     connect[0], str(connect[1]), connect[2], nat)


def _endpoint(device_name: str, key: str, value: str) -> tuple[str, IPAddress, int]:
    """'tcp:ADDR:PORT' -> (protocol, address, port)."""
    where = f"Proxy '{device_name}' key '{key}'"
    proto, _, rest = value.partition(":")
    if proto not in PROTOCOLS:
        raise NotSupported(f"{where}: '{value}': only tcp and udp are supported")
    host, _, port = rest.rpartition(":")
    if "-" in port or "," in port:
        raise NotSupported(f"{where}: '{value}': port ranges are not supported, "
                           "give a single port (one device per port)")
    try:
        number = int(port)
    except ValueError:
        raise InvalidConfig(f"Invalid device '{device_name}' key '{key}': '{value}' has no "
                            "port") from None
    if not 1 <= number <= 65535:
        raise InvalidConfig(f"Invalid device '{device_name}' key '{key}': port {number} "
                            "is out of range (1-65535)")
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        addr = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        raise InvalidConfig(f"Invalid device '{device_name}' key '{key}': '{host}' is not an "
                            "IP address (IPv6 goes in brackets)") from None
    if addr.version == 6 and not bracketed:
        raise InvalidConfig(f"Invalid device '{device_name}' key '{key}': put IPv6 address "
                            f"'{host}' in brackets")
    return proto, addr, number


def build_proxies(devices: Mapping[str, Mapping[str, str]]) -> list[ProxySpec]:
    """Every proxy device of an expanded device set, by name."""
    return [build_proxy(name, dev) for name, dev in sorted(devices.items())
            if dev.get("type") == "proxy"]


def build_dnat(spec: ProxySpec, static: Mapping[str, str]) -> tuple[str, Dnat]:
    """A nat=true device as (network, Dnat). static maps the instance's static NIC
    addresses to their managed networks: as LXD, the connect address must be one of them,
    so the forward keeps working when the DHCP lease would have changed."""
    if not spec.nat:
        raise InvalidConfig(f"Proxy '{spec.device}' is not a nat proxy")
    network = static.get(spec.connect_addr)
    if network is None:
        known = ", ".join(sorted(static)) or "none"
        raise InvalidConfig(f"Proxy '{spec.device}': nat=true needs connect to be the static "
                            f"ipv4.address of a NIC on a managed network (this instance's: "
                            f"{known})")
    listen = ipaddress.IPv4Address(spec.listen_addr)
    return network, Dnat(spec.listen_proto, spec.listen_port,
                         ipaddress.IPv4Address(spec.connect_addr), spec.connect_port,
                         None if listen in WILDCARDS else listen)


def listens_overlap(a: ProxySpec, b: ProxySpec) -> bool:
    """Whether two devices listen on the same protocol and port at overlapping addresses."""
    if (a.listen_proto, a.listen_port) != (b.listen_proto, b.listen_port):
        return False
    x, y = ipaddress.ip_address(a.listen_addr), ipaddress.ip_address(b.listen_addr)
    return x == y or x in WILDCARDS or y in WILDCARDS


def check_unique(specs: Iterable[ProxySpec]) -> None:
    """Two devices of one instance may not listen on the same port."""
    seen: list[ProxySpec] = []
    for spec in specs:
        for other in seen:
            if listens_overlap(spec, other):
                raise Conflict(f"Proxy '{spec.device}' listens on {spec.listen}, as proxy "
                               f"'{other.device}' does ({other.listen})")
        seen.append(spec)


# -- side effects ----------------------------------------------------------------------------


def bind_listener(spec: ProxySpec, listen: bool = True) -> socket.socket:
    """The device's socket bound in the caller's network namespace (TCP: listening unless
    listen is False). Conflict (409) when the address and port are taken, InvalidConfig
    when the address is not on this host. The caller owns the socket."""
    sock = socket.socket(family_of(spec.listen_addr), spec.socket_type)
    try:
        if spec.listen_proto == "tcp":
            # Only TIME_WAIT leftovers are reused: Linux still refuses a port someone listens on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((spec.listen_addr, spec.listen_port))
        if listen and spec.listen_proto == "tcp":
            sock.listen(128)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise Conflict(f"Proxy '{spec.device}': {spec.listen} is already in use on the "
                           "host") from err
        if err.errno == errno.EADDRNOTAVAIL:
            raise InvalidConfig(f"Proxy '{spec.device}': {spec.listen_addr} is not an address "
                                "of this host") from err
        raise KernelError(f"Failed to listen on {spec.listen} (proxy '{spec.device}'): "
                          f"{err.strerror}") from err
    return sock


def check_listen_free(spec: ProxySpec) -> None:
    """Refuse (Conflict) a listen address someone on the host already uses, by binding it
    for a moment. A nat=true listen address need not be local (DNAT matches it anyway)."""
    try:
        # No listen(): a client connecting in that moment would be accepted, then reset.
        bind_listener(spec, listen=False).close()
    except InvalidConfig:
        if not spec.nat:
            raise
