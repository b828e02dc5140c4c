"""Network changes as a service (LXD's /1.0/networks and /1.0/networks/NAME/forwards,
lxd/networks.go and network_forwards.go): create, replace, merge, rename and delete a managed
network and its forwards, each announced once as LXD's network-* and network-forward-*
lifecycle event (lxd/lifecycle/network.go, network_forward.go) by the service that made it;
the networks' users (instances and profiles with a NIC on one), which a rename or delete
must find none of; and the networks' start at daemon start.

The kernel side and the records are lxmgr.instances.networks (Networks) and
lxmgr.instances.network_forwards (NetworkForwards). Events name the network (a forward as
NAME/forwards/ADDRESS, as LXD's) in the project of the request being served
(EventBus.changed). Synchronous: the daemon calls it from worker threads. Imports nothing
from the daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxmgr.instances.db import Database
from lxmgr.instances.events import EventBus
from lxmgr.instances.network_forwards import NetworkForwards
from lxmgr.instances.networks import Networks
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.project import instance_url, profile_url
from lxmgr.net.bridge import BridgeNetwork

Devices = dict[str, dict[str, str]]
# Manager.expanded: an instance's effective config and devices
Expand = Callable[[InstanceSpec], tuple[dict[str, str], Devices]]


class NetworkService:
    """The managed networks, their forwards and the changes to them.

    networks and forwards hold the records and drive the kernel side; db gives the
    instances and profiles that may use a network, expanded an instance's effective
    devices; events announces each change."""

    def __init__(self, networks: Networks, forwards: NetworkForwards, db: Database,
                 events: EventBus, *, expanded: Expand) -> None:
        self.networks = networks
        self.forwards = forwards
        self.db = db
        self.events = events
        self.expanded = expanded

    # -- networks ----------------------------------------------------------------------------

    def start(self, seed: tuple[str, dict[str, str]] | None) -> None:
        """Daemon start: bring every network back; on a fresh state create the default
        network `seed` (name, config) and give the default profile its eth0 (no seed: none,
        as in most tests)."""
        self.networks.start_all()
        if seed is not None:
            profile = self.networks.seed_default(self.db.profiles(), *seed)
            if profile is not None:
                self.db.profile_save(profile)

    def names(self) -> list[str]:
        return self.networks.names()

    def get(self, name: str) -> dict[str, Any]:
        """The record of a network (name, description, type, config); NotFound if none."""
        return self.networks.get(name)

    def used_by(self, name: str) -> list[str]:
        """API URLs of the instances and profiles with a NIC on this network (a project's
        own profile as /1.0/profiles/NAME?project=P, as LXD's)."""
        def uses(devices: Devices) -> bool:
            return any(d.get("type") == "nic" and d.get("network") == name
                       for d in devices.values())
        users = [instance_url(s.name) for s in self.db.instance_specs()
                 if uses(self.expanded(s)[1])]
        return users + [profile_url(k) for k, p in self.db.profiles().items()
                        if uses(p.devices)]

    def create(self, name: str, config: dict[str, Any], description: str = "",
               kind: str = "bridge") -> None:
        self.networks.create(name, config, description, kind)
        self.events.changed("networks", "network-created", name)

    def update(self, name: str, config: dict[str, Any], description: str | None = None, *,
               merge: bool = False) -> None:
        """Replace the config (LXD's PUT), or merge into it (PATCH); description None keeps
        it."""
        if merge:
            config = {**self.networks.get(name)["config"], **config}
        self.networks.update(name, config, description)
        self.events.changed("networks", "network-updated", name)

    def rename(self, name: str, new: str) -> None:
        self.networks.get(name)
        self.networks.rename(name, new, self.used_by(name))
        self.events.changed("networks", "network-renamed", new, old_name=name)

    def delete(self, name: str) -> None:
        self.networks.get(name)
        self.networks.delete(name, self.used_by(name))
        self.events.changed("networks", "network-deleted", name)

    def leases(self, name: str) -> list[dict[str, Any]]:
        return self.networks.leases(name)

    def state(self, name: str) -> dict[str, Any]:
        return self.networks.state(name)

    def drivers(self) -> list[BridgeNetwork]:
        """Every network's driver (for diagnosis)."""
        return self.networks.drivers()

    # -- forwards ----------------------------------------------------------------------------

    def forward_names(self, network: str) -> list[str]:
        """The listen addresses of a network's forwards, in address order."""
        return self.forwards.names(network)

    def list_forwards(self, network: str) -> list[dict[str, Any]]:
        return self.forwards.list(network)

    def get_forward(self, network: str, listen: str) -> dict[str, Any]:
        return self.forwards.get(network, listen)

    def create_forward(self, network: str, body: dict[str, Any]) -> str:
        """Create a forward from LXD's NetworkForwardsPost; returns its listen address."""
        listen = self.forwards.create(network, body)
        self._announce_forward("network-forward-created", network, listen)
        return listen

    def update_forward(self, network: str, listen: str, body: dict[str, Any], *,
                       merge: bool = False) -> None:
        self.forwards.update(network, listen, body, merge)
        self._announce_forward("network-forward-updated", network, listen)

    def delete_forward(self, network: str, listen: str) -> None:
        self.forwards.delete(network, listen)
        self._announce_forward("network-forward-deleted", network, listen)

    def _announce_forward(self, action: str, network: str, listen: str) -> None:
        self.events.changed("networks", action, f"{network}/forwards/{listen}")
