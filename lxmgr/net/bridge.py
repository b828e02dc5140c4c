"""The `bridge` network driver: a Linux bridge with addresses, dnsmasq and an nft table.

Owns the bridge link named after the network, the nft table `inet lxmgr_<name>`, one
dnsmasq, paths.root()/networks/<name>/ and, where the host runs systemd-resolved, the
bridge's per-link DNS settings there (names under dns.domain go to the dnsmasq). Imports
lxmgr.model, lxmgr.linux, lxmgr.errors and lxmgr.paths (through the sibling net modules).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from lxmgr.errors import Conflict, InvalidConfig, LxmgrError, NotFound
from lxmgr.model import network as model
from lxmgr.net import dnsmasq, links, nft, resolved
from lxmgr.net.base import NetworkDriver

log = logging.getLogger(__name__)

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
IP6_FORWARD = Path("/proc/sys/net/ipv6/conf/all/forwarding")
IPV4_CONF = Path("/proc/sys/net/ipv4/conf")  # per-link knobs: <link>/forwarding
FORWARDS = "forwards.json"  # owner (instance) -> its DNAT port forwards, in the state dir


class BridgeNetwork(NetworkDriver):
    """A managed bridge; `config` is a plan_config() result (no `auto` left in it)."""

    type = "bridge"

    def __init__(self, name: str, config: Mapping[str, str],
                 resolver: resolved.HostResolver | None = None) -> None:
        super().__init__(name, config)
        if model.network_value(self.config, "ipv4.address") == "auto":
            raise InvalidConfig(f"Network '{name}': resolve ipv4.address=auto with plan_config")
        self.settings = model.bridge_settings(self.config)
        self.bridge = links.Bridge(self.name, self.settings.mtu)
        self.dnsmasq = dnsmasq.Dnsmasq(self.state_dir)
        self.resolver = resolver or resolved.HostResolver()

    @classmethod
    def plan_config(cls, name: str, config: Mapping[str, object],
                    others: Mapping[str, Mapping[str, str]] | None = None,
                    host: list[model.Taken] | None = None) -> dict[str, str]:
        """Validate and resolve `auto` against the host (default: its routes and addresses,
        but not this network's own bridge) and the other networks' subnets (name -> config).

        Conflict names the network, route or address that overlaps an explicit subnet.
        """
        model.validate_network_name(name)
        valid = model.validate_network_config(config)
        taken: list[model.Taken] = list(
            host if host is not None else links.host_networks(exclude_links=(name,)))
        for other, other_config in (others or {}).items():
            subnet = model.bridge_settings(other_config).subnet if other != name else None
            if subnet is not None:
                taken.append((f"network '{other}' ({subnet})", subnet))
        if "ipv4.address" not in valid:
            valid["ipv4.address"] = "auto"
        # Re-validate: DHCP ranges are checked against a subnet `auto` just picked.
        return model.validate_network_config(model.resolve_auto(valid, taken))

    @property
    def state_dir(self) -> Path:
        return dnsmasq.state_dir(self.name)

    @property
    def has_dnsmasq(self) -> bool:
        return self.settings.ipv4 is not None or self.settings.ipv6 is not None

    def _addresses(self) -> list[str]:
        return [str(a) for a in (self.settings.ipv4, self.settings.ipv6) if a is not None]

    def _ruleset(self, owned: Mapping[str, Sequence[nft.Dnat]] | None = None) -> str:
        s = self.settings
        forwards = [f for rules in (self.forwards() if owned is None else owned).values()
                    for f in rules]
        return nft.build_ruleset(self.name, self.name, s.subnet, s.ipv4_nat, forwards,
                                 subnet6=s.ipv6.network if s.ipv6 else None, nat6=s.ipv6_nat)

    # -- port forwards (proxy devices with nat=true) -----------------------------------------

    def forwards(self) -> dict[str, list[nft.Dnat]]:
        """owner -> DNAT rules in this network's table; kept in the state dir so start()
        (daemon or host restart) puts them back."""
        try:
            data = json.loads((self.state_dir / FORWARDS).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            log.error("network %s: ignoring unreadable %s: %s", self.name, FORWARDS, err)
            return {}
        return {owner: [_dnat(d) for d in rules] for owner, rules in data.items()}

    def set_forwards(self, owner: str, forwards: Sequence[nft.Dnat]) -> None:
        """Replace owner's DNAT rules and re-apply the table (a no-op when unchanged)."""
        current = self.forwards()
        if current.get(owner, []) == list(forwards):
            return
        if forwards:
            current[owner] = list(forwards)
        else:
            current.pop(owner, None)
        nft.apply(self._ruleset(current))  # first: a rule nft refuses is never recorded
        self._forwarding_for(current)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / FORWARDS
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({o: [_dnat_dict(f) for f in rules]
                                   for o, rules in sorted(current.items())}))
        tmp.replace(path)

    def _dnsmasq_config(self) -> str:
        return dnsmasq.build_config(self.name, self.name, self.settings, self.state_dir)

    def create(self) -> None:
        """Create the bridge, addresses, nft table and dnsmasq; revert all on failure.

        Conflict when a link of this name exists that lxmgr did not create.
        """
        with contextlib.ExitStack() as undo:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            undo.callback(shutil.rmtree, self.state_dir, ignore_errors=True)
            self.bridge.add()
            undo.callback(self.bridge.delete)
            self._apply()
            undo.callback(nft.delete, self.name)
            undo.callback(self.dnsmasq.stop)
            self._start_dnsmasq()
            self._tell_host_resolver()
            undo.pop_all()
        log.info("created network %s (%s)", self.name, ", ".join(self._addresses()) or "no IP")

    def start(self) -> None:
        """Idempotent: recreate whatever is missing and apply the current config; restart
        dnsmasq when it is dead or its config changed."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.bridge.add():
            # A new bridge has a new ifindex: a surviving dnsmasq's DHCP socket is bound to
            # the old one and would never see a request again.
            self.dnsmasq.stop()
        self._apply()
        self._start_dnsmasq()
        self._tell_host_resolver()

    def _apply(self) -> None:
        self.bridge.set_addresses(self._addresses())
        self.bridge.up()
        if self.settings.ipv4_nat and self.settings.ipv4 is not None:
            _enable_forwarding(IP_FORWARD)
        if self.settings.ipv6_nat and self.settings.ipv6 is not None:
            _enable_forwarding(IP6_FORWARD)
        nft.apply(self._ruleset())
        self._forwarding_for(self.forwards())

    def _forwarding_for(self, owned: Mapping[str, Sequence[nft.Dnat]]) -> None:
        """What DNAT forwards need routed: packets coming in on the bridge (an instance's
        replies to a client elsewhere, a neighbour's connection through the forward) need
        the bridge's own forwarding knob; clients from other machines, arriving on the
        uplink, need ip_forward, enabled (as LXD does) only for forwards listening on an
        address other than the bridge's. A no-op before the bridge exists (start() calls
        it again)."""
        forwards = [f for rules in owned.values() for f in rules]
        knob = IPV4_CONF / self.name / "forwarding"
        if not forwards or not knob.parent.is_dir():
            return
        _enable_forwarding(knob)
        own = self.settings.ipv4.ip if self.settings.ipv4 is not None else None
        if any(f.listen_address is None or f.listen_address != own for f in forwards):
            _enable_forwarding(IP_FORWARD)

    def _start_dnsmasq(self) -> None:
        if not self.has_dnsmasq:
            self.dnsmasq.stop()
            return
        text = self._dnsmasq_config()
        try:
            changed = self.dnsmasq.conf.read_text() != text
        except FileNotFoundError:
            changed = True
        if changed:
            self.dnsmasq.stop()
        self.dnsmasq.prepare(text)
        self.dnsmasq.start()

    def _tell_host_resolver(self) -> None:
        """Best effort, after dnsmasq answers: the host's systemd-resolved asks it for names
        under dns.domain (web1.lxmgr); a new bridge (new ifindex) needs it again."""
        if self.has_dnsmasq:
            self.resolver.set_link(self.name, self.settings.dns_servers, self.settings.domain)
        else:
            self.resolver.revert_link(self.name)

    def stop_services(self) -> None:
        self.resolver.revert_link(self.name)  # no dnsmasq to answer for the domain
        self.dnsmasq.stop()

    def delete(self) -> None:
        """Revert the host resolver's link settings, stop dnsmasq, delete the nft table and
        the bridge, remove the state dir.

        Every step is tried; the first failure is raised after the others ran.
        """
        errors: list[LxmgrError] = []
        steps: list[Callable[[], None]] = [partial(self.resolver.revert_link, self.name),
                                           self.dnsmasq.stop, partial(nft.delete, self.name),
                                           self.bridge.delete, self._remove_state_dir]
        for step in steps:
            try:
                step()
            except LxmgrError as err:
                log.warning("network %s: %s", self.name, err)
                errors.append(err)
        if errors:
            raise errors[0]

    def _remove_state_dir(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def state(self) -> dict[str, Any]:
        try:
            return links.link_state(self.name)
        except NotFound:
            return {"addresses": [], "counters": {}, "hwaddr": "", "mtu": 0, "state": "down",
                    "type": "broadcast"}

    def leases(self) -> list[dnsmasq.Lease]:
        """dnsmasq's current leases (dynamic and static alike)."""
        return self.dnsmasq.leases()

    def api_leases(self) -> list[dict[str, str]]:
        """LXD's /1.0/networks/<name>/leases body: leases plus unclaimed reservations."""
        static = self.dnsmasq.read_static_hosts()
        out = []
        for lease in self.leases():
            kind = "static" if lease.mac in static else "dynamic"
            out.append({"hostname": lease.hostname or "", "hwaddr": lease.mac,
                        "address": lease.ip, "type": kind, "location": ""})
        leased = {lease.mac for lease in self.leases()}
        for mac, (ip, hostname) in sorted(static.items()):
            if mac not in leased:
                out.append({"hostname": hostname or "", "hwaddr": mac, "address": ip,
                            "type": "static", "location": ""})
        return out

    def reserve(self, mac: str, ip: str, hostname: str | None = None) -> None:
        """Reserve ip for mac; InvalidConfig outside the subnet, Conflict if another MAC has it."""
        if self.settings.ipv4 is None:
            raise InvalidConfig(f"Network '{self.name}' has no IPv4 subnet (ipv4.address=none)")
        reservations = self.dnsmasq.read_static_hosts()
        mac = mac.lower()
        used = {ipaddress.IPv4Address(other_ip): f"MAC {other_mac}"
                for other_mac, (other_ip, _) in reservations.items() if other_mac != mac}
        model.validate_static_address(self.settings.ipv4, ip, used)
        for other_mac, (_, other_name) in reservations.items():
            if hostname and other_name == hostname and other_mac != mac:
                raise Conflict(f"Host name '{hostname}' is already reserved by MAC {other_mac}")
        reservations[mac] = (ip, hostname)
        self._write_reservations(reservations)

    def release(self, mac: str) -> None:
        reservations = self.dnsmasq.read_static_hosts()
        if reservations.pop(mac.lower(), None) is not None:
            self._write_reservations(reservations)

    def _write_reservations(self, reservations: dict[str, tuple[str, str | None]]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.dnsmasq.write_static_hosts(reservations, self.settings.domain)
        self.reload()

    def reload(self) -> None:
        self.dnsmasq.reload()


def _dnat_dict(dnat: nft.Dnat) -> dict[str, Any]:
    return {"protocol": dnat.protocol, "listen_port": dnat.listen_port,
            "target": str(dnat.target), "target_port": dnat.target_port,
            "listen_address": str(dnat.listen_address) if dnat.listen_address else None}


def _dnat(data: Mapping[str, Any]) -> nft.Dnat:
    listen = data.get("listen_address")
    return nft.Dnat(str(data["protocol"]), int(data["listen_port"]),
                    ipaddress.IPv4Address(data["target"]), int(data["target_port"]),
                    ipaddress.IPv4Address(listen) if listen else None)


def _enable_forwarding(knob: Path) -> None:
    """NAT and port forwards need routing between the bridge and the uplink (per network
    namespace)."""
    try:
        if knob.read_text().strip() != "1":
            log.info("enabling %s for NAT", knob)
            knob.write_text("1\n")
    except OSError as err:
        raise LxmgrError(f"Failed to enable forwarding ({knob}): {err.strerror}") from err
