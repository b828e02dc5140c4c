"""Proxy devices of instances (port forwards, lxmgr.net.proxy): parse and check them at
start and update, write proxies.json for the supervisor's relay, and keep the nat=true ones
as DNAT rules in their network's nft table (BridgeNetwork.set_forwards). Changes to a
running instance apply at once (update_running; the manager has the supervisor restart
the relay).

Checks, each a 4xx naming the device: bad syntax, two devices or instances on one port,
a listen port someone on the host holds (bound for a moment), a nat=true device whose
connect address is not a static ipv4.address of one of the instance's NICs (LXD's rule).
"""

from __future__ import annotations

import json
import logging

from lxmgr import paths
from lxmgr.errors import Conflict, LxmgrError
from lxmgr.instances.networks import Networks
from lxmgr.instances.store import write_atomic
from lxmgr.model.instance import InstanceSpec
from lxmgr.net import proxy as proxymod
from lxmgr.net.bridge import BridgeNetwork
from lxmgr.net.nft import Dnat
from lxmgr.net.proxy import ProxySpec

log = logging.getLogger(__name__)
Devices = dict[str, dict[str, str]]


class Proxies:
    """The instance-facing side of proxy devices, over the managed networks."""

    def __init__(self, networks: Networks) -> None:
        self.networks = networks

    def write(self, spec: InstanceSpec, devices: Devices,
              proxies: list[ProxySpec] | None = None) -> str:
        """At start (none of the instance's ports are held by it): check every device and
        probe every port, apply the nat ones, write proxies.json; returns its path. proxies:
        the devices' ProxySpecs when the caller has them (the device layer's RunConfig)."""
        if proxies is None:
            proxies = proxymod.build_proxies(devices)
        self.check(spec, devices, probe=proxies)
        self.set_forwards(spec.name, self._dnats(spec, devices, proxies))
        path = paths.instance_dir(spec.name) / "proxies.json"
        write_atomic(path, json.dumps([p.to_dict() for p in proxies]))
        return str(path)

    def check_update(self, spec: InstanceSpec, old: Devices, new: Devices) -> None:
        """Refuse bad proxy devices now; probe only listen addresses that changed (a
        running instance's relay holds its current ones). A running instance gets the
        changes from update_running(), a stopped one at its next start."""
        try:
            before = {_listen_key(p) for p in proxymod.build_proxies(old)}
        except LxmgrError:
            before = set()
        proxies = proxymod.build_proxies(new)
        self.check(spec, new, probe=[p for p in proxies if _listen_key(p) not in before])

    def update_running(self, spec: InstanceSpec, devices: Devices) -> bool:
        """Apply checked devices to a running instance: its DNAT forwards at once, the new
        proxies.json for its relay. True when the relayed devices changed (the caller has
        the supervisor restart the relay); an unchanged relay keeps its connections."""
        proxies = proxymod.build_proxies(devices)
        self.set_forwards(spec.name, self._dnats(spec, devices, proxies))
        path = paths.instance_dir(spec.name) / "proxies.json"
        try:
            before = [ProxySpec.from_dict(d) for d in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError, LxmgrError):
            before = None
        write_atomic(path, json.dumps([p.to_dict() for p in proxies]))
        relayed = [p for p in proxies if not p.nat]
        return before is None or [p for p in before if not p.nat] != relayed

    def check(self, spec: InstanceSpec, devices: Devices, probe: list[ProxySpec]) -> None:
        """Parse every device, refuse ports another instance forwards with nat or that
        someone on the host holds (probe: the devices to bind-test), check nat targets."""
        proxies = proxymod.build_proxies(devices)
        proxymod.check_unique(proxies)
        self._dnats(spec, devices, proxies)
        taken = [(owner, dnat) for network in self.networks.names()
                 for owner, rules in self._bridge(network).forwards().items()
                 if owner != spec.name for dnat in rules]
        for p in proxies:
            for owner, dnat in taken:
                if _dnat_overlaps(p, dnat):
                    raise Conflict(f"Proxy '{p.device}': {p.listen} is already forwarded to "
                                   f"instance '{owner}'")
        for p in probe:
            proxymod.check_listen_free(p)

    def _dnats(self, spec: InstanceSpec, devices: Devices,
               proxies: list[ProxySpec]) -> dict[str, list[Dnat]]:
        """network -> DNAT rules of the nat=true devices."""
        out: dict[str, list[Dnat]] = {}
        if not any(p.nat for p in proxies):
            return out
        static = {n.ipv4_address: n.network for n in self.networks.nics(spec, devices)
                  if n.ipv4_address and n.network}
        for p in proxies:
            if p.nat:
                network, dnat = proxymod.build_dnat(p, static)
                out.setdefault(network, []).append(dnat)
        return out

    def _bridge(self, network: str) -> BridgeNetwork:
        return BridgeNetwork(network, self.networks.get(network)["config"])

    def set_forwards(self, name: str, forwards: dict[str, list[Dnat]]) -> None:
        """Give the instance exactly these DNAT forwards (network -> rules), no others."""
        for network in self.networks.names():
            self._bridge(network).set_forwards(name, forwards.get(network, []))

    def clear(self, name: str) -> None:
        """Remove the instance's DNAT forwards (stop, failed start, delete); logs failures."""
        try:
            self.set_forwards(name, {})
        except LxmgrError as err:
            log.error("Could not remove the port forwards of '%s': %s", name, err)


def _listen_key(p: ProxySpec) -> tuple[str, str, int]:
    return p.listen_proto, p.listen_addr, p.listen_port


def _dnat_overlaps(spec: ProxySpec, dnat: Dnat) -> bool:
    """Whether a proxy device listens where another instance's DNAT rule matches."""
    if (spec.listen_proto, spec.listen_port) != (dnat.protocol, dnat.listen_port):
        return False
    mine = None if spec.listen_addr in ("0.0.0.0", "::") else spec.listen_addr
    return mine is None or dnat.listen_address is None or str(dnat.listen_address) == mine
