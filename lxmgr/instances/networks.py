"""Managed networks in the state database, their kernel side (net.bridge), and the NICs of
instances: which bridge a NIC joins, MACs, static reservations, leases for state views.

LXD's behaviour: the first daemon start creates `lxmgrbr0` (ipv4.address=auto) and gives the
`default` profile an `eth0` NIC on it; a network in use cannot be deleted; networks come back
after a daemon or host restart.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
import time
from typing import Any

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, InvalidState, LxmgrError, NotFound
from lxmgr.instances import network_forwards
from lxmgr.instances.db import Database
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.network import (
    validate_network_config,
    validate_network_name,
    validate_static_address,
)
from lxmgr.model.profile import Profile
from lxmgr.model.project import dns_name
from lxmgr.net import base as net_base
from lxmgr.net import dnsmasq, hosts, links, nft
from lxmgr.net.bridge import BridgeNetwork
from lxmgr.net.nic import NicSpec, build_nic, build_volatile

log = logging.getLogger(__name__)
SEEDED = "networks.seeded"
# The product's default network forwards other names to the host's resolvers, so
# `apt-get update` works in a fresh container, as with LXD's lxdbr0.
DEFAULT_CONFIG = {"ipv4.address": "auto", "ipv6.address": "none", "dns.upstream": "host"}


def parse_default_network(text: str | None) -> tuple[str, dict[str, str]] | None:
    """The network a fresh daemon creates, from $LXMGR_DEFAULT_NETWORK: unset for lxmgrbr0
    as shipped, `none` for no network, or `NAME [KEY=VALUE...]` for another name and config
    over the shipped one (test daemons: their own bridge, `ipv4.nat=false
    dns.upstream=none`)."""
    words = (text or net_base.DEFAULT_NETWORK).split()
    if words == ["none"]:
        return None
    name = validate_network_name(words[0])
    config = dict(DEFAULT_CONFIG)
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep:
            raise InvalidConfig(f"Invalid LXMGR_DEFAULT_NETWORK setting '{word}': "
                                "expected KEY=VALUE")
        config[key] = value
    try:
        return name, validate_network_config(config)
    except InvalidConfig as err:
        raise InvalidConfig(f"Invalid LXMGR_DEFAULT_NETWORK: {err}") from None


class Networks:
    """CRUD of managed networks plus the instance-facing queries."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Serialises changes with the dnsmasq watcher: without it a watcher that saw the
        # dnsmasq of a network being deleted would start() it again and resurrect it.
        self._lock = threading.RLock()

    def _driver(self, name: str) -> BridgeNetwork:
        record = self.db.network_get(name)
        driver: BridgeNetwork = net_base.load(record["type"])(name, record["config"])
        return driver

    def drivers(self) -> list[BridgeNetwork]:
        return [self._driver(name) for name in self.names()]

    def names(self) -> list[str]:
        return sorted(self.db.networks())

    def get(self, name: str) -> dict[str, Any]:
        return self.db.network_get(name)

    def _others(self, name: str) -> dict[str, dict[str, str]]:
        return {n: r["config"] for n, r in self.db.networks().items() if n != name}

    def create(self, name: str, config: dict[str, Any], description: str = "",
               kind: str = "bridge") -> None:
        """Plan (resolve auto, refuse overlaps), create the kernel side, then record it."""
        validate_network_name(name)
        with self._lock:
            self._create(name, config, description, kind)

    def _create(self, name: str, config: dict[str, Any], description: str, kind: str) -> None:
        if kind != "bridge":
            raise InvalidConfig(f"Invalid network type '{kind}': only 'bridge' is supported")
        if name in self.db.networks():
            raise Conflict(f"Network '{name}' already exists")
        planned = BridgeNetwork.plan_config(name, config, self._others(name))
        driver = BridgeNetwork(name, planned)
        driver.create()
        try:
            self.db.network_add(name, description, kind, planned)
        except BaseException:
            driver.delete()
            raise

    def update(self, name: str, config: dict[str, Any], description: str | None = None) -> None:
        """Replace the config; the kernel side follows (start() re-applies what changed)."""
        with self._lock:
            self._update(name, config, description)

    def _update(self, name: str, config: dict[str, Any], description: str | None) -> None:
        record = self.db.network_get(name)
        planned = BridgeNetwork.plan_config(name, config, self._others(name))
        network_forwards.check_config(self.db, name, planned)
        BridgeNetwork(name, planned).start()
        self.db.network_save(name, record["description"] if description is None
                             else description, planned)

    def delete(self, name: str, users: list[str]) -> None:
        if users:
            raise InvalidState(f"Network '{name}' is in use by {', '.join(users)}")
        with self._lock:
            self._driver(name).delete()
            self.db.network_remove(name)
            network_forwards.forget(self.db, name)

    def rename(self, name: str, new: str, users: list[str]) -> None:
        """Rename an unused network as LXD's bridge Rename does: stop it (dnsmasq, nft
        table, bridge link), move its state dir and its records to the new name, start it
        again under that name. Refused while instances or profiles use it (LXD: 400
        "Network is currently in use"), or when the name is taken; a failed start puts the
        old network back."""
        validate_network_name(new)
        with self._lock:
            record = self.db.network_get(name)
            if users:
                raise InvalidState(f"Network '{name}' is in use by {', '.join(users)}")
            if new in self.db.networks():
                raise Conflict(f"Network '{new}' already exists")
            if links.Bridge(new).exists() or dnsmasq.state_dir(new).exists():
                raise Conflict(f"Cannot rename network '{name}' to '{new}': a link or network "
                               "state of that name exists on the host")
            old = self._driver(name)
            self._stop(old)
            old.state_dir.rename(dnsmasq.state_dir(new))
            self.db.network_rename(name, new)
            network_forwards.rename(self.db, name, new)
            fresh = net_base.load(record["type"])(new, record["config"])
            try:
                fresh.start()
            except BaseException:
                log.error("network %s: could not start as %s, restoring it", name, new)
                self._stop(fresh)
                fresh.state_dir.rename(old.state_dir)
                self.db.network_rename(new, name)
                network_forwards.rename(self.db, new, name)
                old.start()
                raise

    @staticmethod
    def _stop(driver: BridgeNetwork) -> None:
        """Everything of a network on the host but its state dir (delete() without it)."""
        driver.stop_services()
        nft.delete(driver.name)
        driver.bridge.delete()

    def start_all(self) -> None:
        """Bring every network back (daemon or host restart); failures are logged."""
        for name in self.names():
            try:
                self._driver(name).start()
            except LxmgrError as err:
                log.error("Network '%s' could not be started: %s", name, err)

    def watch(self) -> list[str]:
        """Restart the dnsmasq of every network whose server died; returns their names."""
        restarted = []
        for name in self.names():
            with self._lock:
                if name not in self.db.networks():
                    continue  # deleted meanwhile
                driver = self._driver(name)
                if not driver.has_dnsmasq or driver.dnsmasq.alive():
                    continue
                try:
                    driver.start()
                    restarted.append(driver.name)
                except LxmgrError as err:
                    log.error("Network '%s': dnsmasq could not be restarted: %s",
                              driver.name, err)
        self.update_hosts()
        return restarted

    def hosts_entries(self) -> list[tuple[str, str]]:
        """(address, NAME.DOMAIN) of every current lease on networks whose names the host
        resolver cannot be told to ask dnsmasq for (no systemd-resolved)."""
        entries = []
        now = time.time()
        for driver in self.drivers():
            if not driver.has_dnsmasq or driver.resolver.availability()[0] is not None:
                continue
            for lease in driver.leases():
                if lease.hostname and (lease.expiry == 0 or lease.expiry > now):
                    entries.append((lease.ip, f"{lease.hostname}.{driver.settings.domain}"))
        return entries

    def update_hosts(self) -> None:
        """Keep the hosts file's lxmgr block naming the instances (`ssh web1.lxmgr` from the
        host works without systemd-resolved); called by the daemon's watch loop."""
        try:
            if hosts.write(paths.hosts_file(), self.hosts_entries()):
                log.info("Updated the instance names in %s", paths.hosts_file())
        except (OSError, LxmgrError) as err:
            log.warning("Could not update %s: %s", paths.hosts_file(), err)

    def stop_services(self) -> None:
        for name in self.names():
            try:
                self._driver(name).stop_services()
            except LxmgrError as err:
                log.warning("Network '%s': %s", name, err)

    def leases(self, name: str) -> list[dict[str, Any]]:
        return self._driver(name).api_leases()

    def state(self, name: str) -> dict[str, Any]:
        return self._driver(name).state()

    def seed_default(self, profiles: dict[str, Profile], name: str = net_base.DEFAULT_NETWORK,
                     config: dict[str, str] | None = None) -> Profile | None:
        """First start: the default network (lxmgrbr0, auto subnet) and an eth0 NIC on it in
        the default profile. Returns the default profile to save when it changed."""
        if self.db.get_setting(SEEDED):
            return None
        self.db.set_setting(SEEDED, "1")
        if name not in self.db.networks():
            self.create(name, dict(config or DEFAULT_CONFIG), description="Default lxmgr bridge")
        default = profiles.get("default")
        if default is None or any(d.get("type") == "nic" for d in default.devices.values()):
            return None
        nic = {"type": "nic", "network": name, "name": "eth0"}
        return Profile(default.name, default.description, default.config,
                       {**default.devices, "eth0": nic})

    # -- NICs of instances -------------------------------------------------------------------

    def bridge_of(self, network: str) -> str:
        self.db.network_get(network)  # NotFound naming the network
        return network  # a managed bridge network's bridge carries its name (as in LXD)

    def check_devices(self, devices: dict[str, dict[str, str]], *,
                      own_networks: bool = False) -> None:
        """Every NIC names an existing managed network or a parent bridge. own_networks: the
        instance's project has its own networks (features.networks), and so none of these:
        LXD's bridge networks live in the default project only."""
        for dev_name, dev in devices.items():
            if dev.get("type") == "nic" and dev.get("network") and \
                    (own_networks or dev["network"] not in self.db.networks()):
                raise NotFound(f"Network '{dev['network']}' of device '{dev_name}' not found")

    def new_volatile(self, devices: dict[str, dict[str, str]],
                     volatile: dict[str, str]) -> dict[str, str]:
        """MACs to store before the first start, so an instance keeps its address."""
        out: dict[str, str] = {}
        rng = random.SystemRandom()
        for dev_name, dev in devices.items():
            if dev.get("type") == "nic":
                out.update(build_volatile(dev_name, dev, volatile, rng))  # type: ignore[arg-type]
        return out

    def nics(self, spec: InstanceSpec, devices: dict[str, dict[str, str]]) -> list[NicSpec]:
        return [build_nic(dev_name, dev, spec.name, spec.config, self.bridge_of)
                for dev_name, dev in sorted(devices.items()) if dev.get("type") == "nic"]

    def reserve(self, spec: InstanceSpec, nics: list[NicSpec],
                all_specs: list[tuple[InstanceSpec, list[NicSpec]]]) -> None:
        """Static ipv4.address reservations in the network's dnsmasq; two instances asking
        for the same address is a Conflict."""
        for nic in nics:
            if not nic.network or not nic.ipv4_address:
                continue
            driver = self._driver(nic.network)
            used = {ipaddress.IPv4Address(o.ipv4_address): f"instance {s.name}"
                    for s, others in all_specs if s.name != spec.name
                    for o in others if o.network == nic.network and o.ipv4_address}
            gateway = driver.settings.ipv4
            if gateway is None:
                raise InvalidConfig(f"Network '{nic.network}' has no IPv4 subnet for "
                                    f"'{nic.device}' ipv4.address")
            validate_static_address(gateway, nic.ipv4_address, used)
            driver.reserve(nic.hwaddr, nic.ipv4_address, dns_name(spec.name))

    def release(self, nics: list[NicSpec]) -> None:
        """Drop the static reservations of these NICs (instance deleted, NIC removed)."""
        for nic in nics:
            if nic.network and nic.ipv4_address and nic.network in self.db.networks():
                try:
                    self._driver(nic.network).release(nic.hwaddr)
                except LxmgrError as err:
                    log.warning("Could not release %s on '%s': %s", nic.ipv4_address,
                                nic.network, err)
