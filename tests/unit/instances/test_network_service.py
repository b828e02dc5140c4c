"""NetworkService (lxmgr.instances.network_service) on a real state database in a tmp dir:
a network's users (instances through their profiles or their own devices, profiles of every
project), a rename or delete refused while it has some, and each change of a network or a
forward announced exactly once (none when refused). Network records are written straight
into the database and the kernel side is a recording stand-in: nothing touches the host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lxmgr.errors import InvalidConfig, InvalidState, NotFound
from lxmgr.instances.db import Database
from lxmgr.instances.network_service import NetworkService
from lxmgr.instances.networks import Networks
from lxmgr.model import config as cfgmod
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.profile import Profile

NIC = {"type": "nic", "network": "br1", "name": "eth0"}


class Recorder:
    """The changed() of an EventBus, recorded."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, Any]]] = []

    def changed(self, collection: str, action: str, name: str, **context: Any) -> None:
        self.seen.append((collection, action, name, context))


class FakeNetworks(Networks):
    """Networks on the database only: create, update and start_all record what the kernel
    side would have done (delete and rename are refused before it, as every network here
    is in use)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.calls: list[tuple[str, Any]] = []

    def create(self, name: str, config: dict[str, Any], description: str = "",
               kind: str = "bridge") -> None:
        if kind != "bridge":
            raise InvalidConfig(f"Invalid network type '{kind}': only 'bridge' is supported")
        self.db.network_add(name, description, kind, config)
        self.calls.append(("create", name))

    def start_all(self) -> None:
        self.calls.append(("start_all", self.names()))

    def update(self, name: str, config: dict[str, Any], description: str | None = None) -> None:
        record = self.db.network_get(name)
        self.db.network_save(name, record["description"] if description is None
                             else description, config)
        self.calls.append(("update", (name, config)))


class FakeForwards:
    """NetworkForwards without nft: records by network, create returns the address."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.records: dict[str, dict[str, Any]] = {}

    def create(self, network: str, body: dict[str, Any]) -> str:
        self.db.network_get(network)
        listen = str(body.get("listen_address") or "")
        if not listen:
            raise InvalidConfig("Missing listen_address")
        self.records[listen] = body
        return listen

    def update(self, network: str, listen: str, body: dict[str, Any], merge: bool) -> None:
        if listen not in self.records:
            raise NotFound("Network forward not found")
        self.records[listen] = {**self.records[listen], **body} if merge else body

    def delete(self, network: str, listen: str) -> None:
        if self.records.pop(listen, None) is None:
            raise NotFound("Network forward not found")


class Setup:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.events = Recorder()
        self.networks = FakeNetworks(db)
        self.forwards = FakeForwards(db)
        self.service = NetworkService(self.networks, self.forwards,  # type: ignore[arg-type]
                                      db, self.events,  # type: ignore[arg-type]
                                      expanded=self.expanded)

    def expanded(self, spec: InstanceSpec) -> tuple[dict[str, str], dict[str, Any]]:
        known = self.db.profiles()
        return cfgmod.expand([known[p] for p in spec.profiles], spec.config, spec.devices)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    db = Database(tmp_path / "state.db")
    db.profile_add(Profile("default", "", {}, {}))
    db.network_add("br1", "", "bridge", {"ipv4.address": "10.0.0.1/24"})
    try:
        yield Setup(db)
    finally:
        db.close()


def test_used_by_instances_and_profiles_of_every_project(setup: Setup) -> None:
    db = setup.db
    db.profile_add(Profile("net", "", {}, {"eth0": NIC}))
    db.profile_add(Profile("web/net", "", {}, {"eth0": NIC}))
    db.instance_add(InstanceSpec(name="c1", image_fingerprint="x", profiles=["net"]))
    db.instance_add(InstanceSpec(name="web_c2", image_fingerprint="x", profiles=[],
                                 devices={"eth1": {**NIC, "name": "eth1"}}))
    db.instance_add(InstanceSpec(name="c3", image_fingerprint="x"))
    assert setup.service.used_by("br1") == [
        "/1.0/instances/c1", "/1.0/instances/c2?project=web",
        "/1.0/profiles/net", "/1.0/profiles/net?project=web"]
    with pytest.raises(InvalidState, match="Network 'br1' is in use by /1.0/instances/c1"):
        setup.service.delete("br1")
    with pytest.raises(InvalidState, match="Network 'br1' is in use by"):
        setup.service.rename("br1", "br2")
    with pytest.raises(NotFound, match="Network 'nope' not found"):
        setup.service.delete("nope")
    with pytest.raises(NotFound, match="Network 'nope' not found"):
        setup.service.rename("nope", "br2")
    assert setup.events.seen == []
    assert db.network_get("br1")["name"] == "br1"


def test_network_changes_announce_once(setup: Setup) -> None:
    setup.service.create("br2", {"ipv4.address": "10.0.1.1/24"}, "two")
    with pytest.raises(InvalidConfig, match="network type"):
        setup.service.create("br3", {}, "", "macvlan")
    setup.service.update("br2", {"ipv4.nat": "false"}, merge=True)
    assert setup.networks.get("br2")["config"] == {"ipv4.address": "10.0.1.1/24",
                                                   "ipv4.nat": "false"}
    setup.service.update("br2", {"ipv4.address": "10.0.2.1/24"}, "new")
    assert setup.networks.get("br2") == {"name": "br2", "description": "new",
                                         "type": "bridge",
                                         "config": {"ipv4.address": "10.0.2.1/24"}}
    with pytest.raises(NotFound):
        setup.service.update("nope", {}, merge=True)
    assert setup.events.seen == [("networks", "network-created", "br2", {}),
                                 ("networks", "network-updated", "br2", {}),
                                 ("networks", "network-updated", "br2", {})]


def test_forward_changes_announce_once(setup: Setup) -> None:
    listen = setup.service.create_forward("br1", {"listen_address": "192.0.2.7"})
    assert listen == "192.0.2.7"
    with pytest.raises(InvalidConfig):
        setup.service.create_forward("br1", {})
    with pytest.raises(NotFound):
        setup.service.create_forward("nope", {"listen_address": "192.0.2.8"})
    setup.service.update_forward("br1", listen, {"description": "x"}, merge=True)
    setup.service.update_forward("br1", listen, {"listen_address": listen})
    with pytest.raises(NotFound):
        setup.service.update_forward("br1", "192.0.2.9", {})
    setup.service.delete_forward("br1", listen)
    with pytest.raises(NotFound):
        setup.service.delete_forward("br1", listen)
    source = "br1/forwards/192.0.2.7"
    assert setup.events.seen == [("networks", "network-forward-created", source, {}),
                                 ("networks", "network-forward-updated", source, {}),
                                 ("networks", "network-forward-updated", source, {}),
                                 ("networks", "network-forward-deleted", source, {})]


def test_start_seeds_the_default_profile_nic(setup: Setup) -> None:
    """A fresh state: the seed network and the default profile's eth0 on it (once)."""
    setup.service.start(("br0", {"ipv4.address": "10.0.9.1/24"}))
    setup.service.start(("br0", {"ipv4.address": "10.0.9.1/24"}))
    assert setup.networks.calls == [("start_all", ["br1"]), ("create", "br0"),
                                    ("start_all", ["br0", "br1"])]
    assert setup.db.profile_get("default").devices == {
        "eth0": {"type": "nic", "network": "br0", "name": "eth0"}}
    assert setup.events.seen == []  # daemon start: nobody asked, nothing to announce
