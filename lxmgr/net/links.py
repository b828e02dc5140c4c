"""Network links over netlink (pyroute2 IPRoute): Bridge and Veth value objects, host routes.

No `ip` shell-outs. Every link we create carries the alias `lxmgr` (IFLA_IFALIAS), so an
existing link of the same name is adopted only when it is ours, never a host link. Netlink
errors become LxmgrError subclasses naming the link (C8). Works in whatever network
namespace the calling process is in. Imports lxmgr.errors only.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from lxmgr.errors import Conflict, KernelError, LxmgrError, NotFound

log = logging.getLogger(__name__)

OWNER_ALIAS = "lxmgr"  # IFLA_IFALIAS of every link lxmgr creates
MAIN_TABLE = 254  # RT_TABLE_MAIN (linux/rtnetlink.h)
IFF_UP = 0x1  # linux/if.h
IFA_F_NODAD = 0x02  # linux/if_addr.h: an IPv6 address on a carrier-less bridge is usable now


@contextlib.contextmanager
def _ipr() -> Iterator[IPRoute]:
    with IPRoute() as ipr:
        yield ipr


def _error(action: str, what: str, err: NetlinkError) -> LxmgrError:
    reason = os.strerror(err.code) if err.code else str(err)
    cls: type[LxmgrError] = KernelError
    if err.code == errno.EEXIST:
        cls = Conflict
    elif err.code in (errno.ENODEV, errno.ENOENT):
        cls = NotFound
    return cls(f"Failed to {action} {what}: {reason}")


def link_index(name: str) -> int | None:
    """The ifindex of a link in the current network namespace, or None."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def link_exists(name: str) -> bool:
    """Whether a link of that name exists in the current network namespace."""
    return link_index(name) is not None


def set_up(name: str) -> None:
    """Set a link administratively up (e.g. `lo` in a fresh network namespace)."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise NotFound(f"Link '{name}' does not exist")
        try:
            ipr.link("set", index=found[0], state="up")
        except NetlinkError as err:
            raise _error("bring up link", f"'{name}'", err) from err


def _link_info(ipr: IPRoute, index: int) -> Any:
    return ipr.get_links(index)[0]


def _is_ours(msg: Any, kind: str) -> bool:
    linkinfo = msg.get("IFLA_LINKINFO")
    link_kind = linkinfo.get("IFLA_INFO_KIND") if linkinfo else None
    return bool(msg.get("IFLA_IFALIAS") == OWNER_ALIAS and link_kind == kind)


@dataclass(frozen=True)
class Bridge:
    """A Linux bridge lxmgr owns, by name; methods act on the current network namespace."""

    name: str
    mtu: int = 1500

    def exists(self) -> bool:
        return link_exists(self.name)

    def add(self) -> bool:
        """Create the bridge (down); True if created, False if ours existed already (adopted).

        Conflict when a link of that name exists that lxmgr did not create.
        """
        with _ipr() as ipr:
            found = ipr.link_lookup(ifname=self.name)
            if found:
                if not _is_ours(_link_info(ipr, found[0]), "bridge"):
                    raise Conflict(f"Link '{self.name}' exists and was not created by lxmgr")
                self._set_mtu(ipr, found[0])
                return False
            log.debug("add bridge %s mtu %d", self.name, self.mtu)
            try:
                # STP off and no forward delay: ports forward as soon as they are attached
                # (a container's first DHCP request must not wait 15 s in `listening`).
                ipr.link("add", ifname=self.name, kind="bridge", mtu=self.mtu,
                         br_stp_state=0, br_forward_delay=0)
                index = ipr.link_lookup(ifname=self.name)[0]
                ipr.link("set", index=index, ifalias=OWNER_ALIAS)
            except NetlinkError as err:
                raise _error("create bridge", f"'{self.name}'", err) from err
        return True

    def _set_mtu(self, ipr: IPRoute, index: int) -> None:
        try:
            ipr.link("set", index=index, mtu=self.mtu)
        except NetlinkError as err:
            raise _error("set the MTU of bridge", f"'{self.name}'", err) from err

    def _index(self, ipr: IPRoute) -> int:
        found = ipr.link_lookup(ifname=self.name)
        if not found:
            raise NotFound(f"Bridge '{self.name}' does not exist")
        return int(found[0])

    def up(self) -> None:
        """Set the bridge administratively up."""
        with _ipr() as ipr:
            try:
                ipr.link("set", index=self._index(ipr), state="up")
            except NetlinkError as err:
                raise _error("bring up bridge", f"'{self.name}'", err) from err

    def addresses(self) -> list[str]:
        """The bridge's global addresses as CIDRs (host/prefix), IPv4 first."""
        with _ipr() as ipr:
            index = self._index(ipr)
            out = []
            for msg in ipr.get_addr(index=index):
                if msg["scope"] != 0:  # RT_SCOPE_UNIVERSE only: keep fe80::/64 out of it
                    continue
                out.append(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        return sorted(out, key=lambda c: (":" in c, c))

    def set_addresses(self, cidrs: list[str]) -> None:
        """Make the bridge's global addresses exactly cidrs (add missing, remove others)."""
        wanted = {str(ipaddress.ip_interface(c)) for c in cidrs}
        current = set(self.addresses())
        with _ipr() as ipr:
            index = self._index(ipr)
            for cidr in sorted(current - wanted):
                iface = ipaddress.ip_interface(cidr)
                self._addr(ipr, "del", index, iface)
            for cidr in sorted(wanted - current):
                self._addr(ipr, "add", index, ipaddress.ip_interface(cidr))

    def _addr(self, ipr: IPRoute, action: str, index: int,
              iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        kwargs: dict[str, Any] = {"index": index, "address": str(iface.ip),
                                  "prefixlen": iface.network.prefixlen}
        if iface.version == 6 and action == "add":
            kwargs["flags"] = IFA_F_NODAD
        log.debug("%s address %s on %s", action, iface, self.name)
        try:
            ipr.addr(action, **kwargs)
        except NetlinkError as err:
            verb = "add address" if action == "add" else "remove address"
            raise _error(verb, f"'{iface}' on bridge '{self.name}'", err) from err

    def delete(self) -> None:
        """Delete the bridge if it exists and is ours (a no-op when it is gone)."""
        with _ipr() as ipr:
            found = ipr.link_lookup(ifname=self.name)
            if not found:
                return
            if not _is_ours(_link_info(ipr, found[0]), "bridge"):
                raise Conflict(f"Refusing to delete link '{self.name}': not created by lxmgr")
            log.debug("delete bridge %s", self.name)
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as err:
                if err.code != errno.ENODEV:
                    raise _error("delete bridge", f"'{self.name}'", err) from err


@dataclass(frozen=True)
class Veth:
    """A veth pair lxmgr owns: `name` stays on the host, `peer` is the other end."""

    name: str
    peer: str
    mtu: int = 1500

    def exists(self) -> bool:
        return link_exists(self.name)

    def add(self, master: str | None = None) -> None:
        """Create the pair (both ends up); attach the host end to bridge `master` if given."""
        with _ipr() as ipr:
            try:
                ipr.link("add", ifname=self.name, kind="veth", peer=self.peer, mtu=self.mtu)
                index = ipr.link_lookup(ifname=self.name)[0]
                ipr.link("set", index=index, ifalias=OWNER_ALIAS)
                if master is not None:
                    master_index = ipr.link_lookup(ifname=master)
                    if not master_index:
                        raise NotFound(f"Bridge '{master}' does not exist")
                    ipr.link("set", index=index, master=master_index[0])
                ipr.link("set", index=index, state="up")
                peer = ipr.link_lookup(ifname=self.peer)[0]
                ipr.link("set", index=peer, mtu=self.mtu, state="up")
            except NetlinkError as err:
                raise _error("create veth", f"'{self.name}'", err) from err

    def delete(self) -> None:
        """Delete the pair (removing one end removes both); a no-op when it is gone."""
        with _ipr() as ipr:
            found = ipr.link_lookup(ifname=self.name)
            if not found:
                return
            if not _is_ours(_link_info(ipr, found[0]), "veth"):
                raise Conflict(f"Refusing to delete link '{self.name}': not created by lxmgr")
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as err:
                if err.code != errno.ENODEV:
                    raise _error("delete veth", f"'{self.name}'", err) from err


def host_networks(exclude_links: tuple[str, ...] = ()
                  ) -> list[tuple[str, ipaddress.IPv4Network]]:
    """Every IPv4 route of the main table and every IPv4 address, labelled for messages.

    Links in exclude_links are left out (a network re-checking its own bridge). Default
    routes are left out: they overlap everything by design.
    """
    out: list[tuple[str, ipaddress.IPv4Network]] = []
    with _ipr() as ipr:
        names = {msg["index"]: msg.get("IFLA_IFNAME") for msg in ipr.get_links()}
        for msg in ipr.get_routes(family=2, table=MAIN_TABLE):
            dev = names.get(msg.get("RTA_OIF"), "?")
            if msg["dst_len"] == 0 or dev in exclude_links:
                continue
            net = ipaddress.IPv4Network(f"{msg.get('RTA_DST')}/{msg['dst_len']}", strict=False)
            out.append((f"route {net} on '{dev}'", net))
        for msg in ipr.get_addr(family=2):
            dev = names.get(msg["index"], "?")
            if dev in exclude_links:
                continue
            iface = ipaddress.IPv4Interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
            out.append((f"address {iface} on '{dev}'", iface.network))
    return out


def host_routes_and_addresses() -> list[ipaddress.IPv4Network]:
    """The networks of host_networks() without their labels."""
    return [net for _, net in host_networks()]


def link_state(name: str) -> dict[str, Any]:
    """LXD's network state of a link: addresses, counters, hwaddr, mtu, state, type."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise NotFound(f"Link '{name}' does not exist")
        msg = _link_info(ipr, found[0])
        stats = msg.get("IFLA_STATS64") or {}
        ports = [m.get("IFLA_IFNAME") for m in ipr.get_links() if m.get("IFLA_MASTER") == found[0]]
        addresses = []
        for addr in ipr.get_addr(index=found[0]):
            family = "inet" if addr["family"] == 2 else "inet6"
            scope = {0: "global", 253: "link", 254: "local"}.get(addr["scope"], "global")
            addresses.append({"family": family, "address": addr.get("IFA_ADDRESS"),
                              "netmask": str(addr["prefixlen"]), "scope": scope})
    return {
        "addresses": addresses,
        "counters": {
            "bytes_received": stats.get("rx_bytes", 0), "bytes_sent": stats.get("tx_bytes", 0),
            "packets_received": stats.get("rx_packets", 0),
            "packets_sent": stats.get("tx_packets", 0),
        },
        "hwaddr": msg.get("IFLA_ADDRESS") or "",
        "mtu": msg.get("IFLA_MTU") or 0,
        "state": "up" if msg["flags"] & IFF_UP else "down",
        "type": "broadcast",
        "bridge": {"upper_devices": sorted(p for p in ports if p)},
    }
