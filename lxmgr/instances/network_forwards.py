"""Network forwards of managed bridges (LXD's /1.0/networks/NAME/forwards): recorded in the
state database, applied as DNAT rules in the network's own nft table through the same
BridgeNetwork.set_forwards() the nat=true proxy devices use (owner `forward:<address>`), so
the bridge's start() puts them back after a daemon or host restart.

Records live in the settings table under `network-forwards:<network>` (a JSON map listen
address -> forward); forget() drops them with the network. Imports lxmgr.errors,
lxmgr.instances.db, lxmgr.model (network, network_forward) and lxmgr.net (base, bridge,
nft).
"""

from __future__ import annotations

import ipaddress
import json
import threading
from typing import Any

from lxmgr.errors import Conflict, InvalidConfig, NotFound
from lxmgr.instances.db import Database
from lxmgr.model import network as net_model
from lxmgr.model import network_forward as model
from lxmgr.net import base as net_base
from lxmgr.net import nft
from lxmgr.net.bridge import BridgeNetwork

KEY = "network-forwards:"
OWNER = "forward:"
_lock = threading.RLock()


def forget(db: Database, network: str) -> None:
    """Drop a deleted network's forward records (its nft table went with it)."""
    with db.transaction() as conn:
        conn.execute("DELETE FROM settings WHERE key = ?", (KEY + network,))


def rename(db: Database, network: str, new: str) -> None:
    """Move a renamed network's forward records to its new name (the DNAT rules follow
    from its state dir, which moves with it)."""
    with db.transaction() as conn:
        conn.execute("UPDATE settings SET key = ? WHERE key = ?", (KEY + new, KEY + network))


def check_config(db: Database, network: str, config: dict[str, str]) -> None:
    """Before a network's config changes: every forward must stay valid under the new
    subnet (targets inside it, listen address not inside it but for the new gateway)."""
    records: dict[str, dict[str, Any]] = json.loads(db.get_setting(KEY + network, "{}"))
    if not records:
        return
    settings = net_model.bridge_settings(config)
    gateway = settings.ipv4.ip if settings.ipv4 is not None else None
    subnets = {name: net_model.bridge_settings(r["config"]).subnet
               for name, r in db.networks().items() if name != network}
    subnets[network] = settings.subnet
    for listen, forward in sorted(records.items()):
        try:
            model.listen_address(listen, subnets, network, gateway)
            model.validate(forward, network, settings.subnet, listen)
        except InvalidConfig as err:
            raise InvalidConfig(f"Network forward {listen} would break: {err}") from None


class NetworkForwards:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _records(self, network: str) -> dict[str, dict[str, Any]]:
        self.db.network_get(network)  # NotFound for an unknown network
        data: dict[str, dict[str, Any]] = json.loads(self.db.get_setting(KEY + network, "{}"))
        return data

    def _save(self, network: str, records: dict[str, dict[str, Any]]) -> None:
        self.db.set_setting(KEY + network, json.dumps(records, sort_keys=True))

    def _driver(self, network: str) -> BridgeNetwork:
        record = self.db.network_get(network)
        driver: BridgeNetwork = net_base.load(record["type"])(network, record["config"])
        return driver

    def names(self, network: str) -> list[str]:
        return sorted(self._records(network), key=ipaddress.ip_address)

    def get(self, network: str, listen: str) -> dict[str, Any]:
        found = self._records(network).get(_canonical(listen))
        if found is None:
            raise NotFound("Network forward not found")
        return render(found)

    def list(self, network: str) -> list[dict[str, Any]]:
        records = self._records(network)
        return [render(records[name]) for name in self.names(network)]

    def create(self, network: str, body: dict[str, Any]) -> str:
        with _lock:
            records = self._records(network)
            listen = self._listen(network, body.get("listen_address"))
            if listen in records:
                raise Conflict(f"A forward for {listen} already exists")
            model.conflicts(listen, self._elsewhere(network))
            forward = self._validate(network, body, listen)
            self._apply(network, listen, forward)
            records[listen] = forward
            self._save(network, records)
            return listen

    def update(self, network: str, listen: str, body: dict[str, Any], merge: bool) -> None:
        with _lock:
            records = self._records(network)
            listen = _canonical(listen)
            if listen not in records:
                raise NotFound("Network forward not found")
            if body.get("listen_address") not in (None, "", listen):
                raise InvalidConfig("The listen_address of a network forward cannot change")
            if merge:
                body = model.merged(records[listen], body)
            forward = self._validate(network, body, listen)
            self._apply(network, listen, forward)
            records[listen] = forward
            self._save(network, records)

    def delete(self, network: str, listen: str) -> None:
        with _lock:
            records = self._records(network)
            listen = _canonical(listen)
            if listen not in records:
                raise NotFound("Network forward not found")
            self._driver(network).set_forwards(OWNER + listen, [])
            del records[listen]
            self._save(network, records)

    def _listen(self, network: str, text: object) -> str:
        if not text:
            raise InvalidConfig("Missing listen_address")
        subnets = {name: net_model.bridge_settings(r["config"]).subnet
                   for name, r in self.db.networks().items()}
        settings = net_model.bridge_settings(self.db.network_get(network)["config"])
        gateway = settings.ipv4.ip if settings.ipv4 is not None else None
        return model.listen_address(text, subnets, network, gateway)

    def _validate(self, network: str, body: dict[str, Any], listen: str) -> dict[str, Any]:
        subnet = net_model.bridge_settings(self.db.network_get(network)["config"]).subnet
        return model.validate(body, network, subnet, listen)

    def _elsewhere(self, network: str) -> list[tuple[str, str]]:
        return [(name, address) for name in self.db.networks() if name != network
                for address in self._records(name)]

    def _apply(self, network: str, listen: str, forward: dict[str, Any]) -> None:
        address = ipaddress.IPv4Address(listen)
        rules = [nft.Dnat(protocol, lport, target, tport, address)
                 for protocol, lport, target, tport in model.pairs(forward)]
        self._driver(network).set_forwards(OWNER + listen, rules)


def render(forward: dict[str, Any]) -> dict[str, Any]:
    """LXD's api.NetworkForward."""
    return {"listen_address": forward["listen_address"],
            "description": forward.get("description", ""),
            "config": dict(forward.get("config", {})),
            "ports": [dict(p) for p in forward.get("ports", [])],
            "location": ""}


def _canonical(listen: str) -> str:
    try:
        return str(ipaddress.ip_address(listen))
    except ValueError:
        raise NotFound("Network forward not found") from None
