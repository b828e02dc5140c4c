"""ProfileService (lxmgr.instances.profile_service) on a real state database in a tmp dir:
each change announced exactly once (none when refused), a replaced profile checked against
every user and its live keys pushed to each under that instance's lock, a rename rewriting
the users' profile lists under their locks, PATCH merging."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lxmgr.errors import Conflict, Forbidden, InvalidConfig, InvalidState, NotFound
from lxmgr.instances.db import Database
from lxmgr.instances.locks import InstanceLocks
from lxmgr.instances.profile_service import ProfileService
from lxmgr.model import config as cfgmod
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.profile import Profile


class Recorder:
    """The changed() of an EventBus, recorded."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, Any]]] = []

    def changed(self, collection: str, action: str, name: str, **context: Any) -> None:
        self.seen.append((collection, action, name, context))


class Setup:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.events = Recorder()
        self.locks = InstanceLocks()
        self.limits: list[str] = []
        self.changes: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.live: list[tuple[str, dict[str, str], list[str]]] = []
        self.refuse: str | None = None  # check_change refuses this instance
        self.service = ProfileService(db, self.events, self.locks, expanded=self.expanded,
                                      check_limits=lambda p: self.limits.append(p.name),
                                      check_change=self.check_change,
                                      apply_live=self.apply_live)

    def expanded(self, spec: InstanceSpec) -> tuple[dict[str, str], dict[str, Any]]:
        known = self.db.profiles()
        return cfgmod.expand([known[p] for p in spec.profiles], spec.config, spec.devices)

    def check_change(self, spec: InstanceSpec, old: dict[str, str],
                     new: dict[str, str]) -> None:
        if spec.name == self.refuse:
            raise InvalidConfig(f"Instance '{spec.name}' cannot follow")
        self.changes.append((spec.name, old, new))

    def apply_live(self, name: str, expanded: dict[str, str]) -> None:
        self.live.append((name, expanded, self.locks.held()))

    def instance(self, name: str, *profiles: str) -> None:
        self.db.instance_add(InstanceSpec(name=name, image_fingerprint="x",
                                          profiles=list(profiles)))


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    db = Database(tmp_path / "state.db")
    db.profile_add(Profile("default", "Default", {}, {}))
    try:
        yield Setup(db)
    finally:
        db.close()


def test_create_announces_once_by_name(setup: Setup) -> None:
    setup.service.create(Profile("small", "", {"limits.processes": "100"}, {}))
    setup.service.create(Profile("web/lean", "", {}, {}))  # project web's own
    assert setup.db.profile_get("small").config == {"limits.processes": "100"}
    assert setup.limits == ["small", "web/lean"]
    assert setup.events.seen == [("profiles", "profile-created", "small", {}),
                                 ("profiles", "profile-created", "lean", {})]


def test_refused_changes_announce_nothing(setup: Setup) -> None:
    setup.service.create(Profile("small", "", {}, {}))
    setup.events.seen.clear()
    with pytest.raises(Conflict):
        setup.service.create(Profile("small", "", {}, {}))
    with pytest.raises(InvalidConfig, match="x.y"):
        setup.service.create(Profile("bad", "", {"x.y": "1"}, {}))
    with pytest.raises(NotFound, match="Profile 'nope' not found"):
        setup.service.update(Profile("nope", "", {}, {}))
    with pytest.raises(Forbidden):
        setup.service.delete("default")
    with pytest.raises(Forbidden):
        setup.service.rename("default", "other")
    setup.instance("c1", "default", "small")
    with pytest.raises(InvalidState, match="in use by c1"):
        setup.service.delete("small")
    setup.refuse = "c1"
    with pytest.raises(InvalidConfig, match="c1"):
        setup.service.update(Profile("small", "", {"limits.processes": "5"}, {}))
    assert setup.db.profile_get("small").config == {}  # not saved
    assert setup.events.seen == [] and setup.live == []


def test_update_checks_users_and_applies_live_under_their_locks(setup: Setup) -> None:
    setup.service.create(Profile("small", "", {"limits.processes": "100"}, {}))
    setup.instance("c1", "default", "small")
    setup.instance("p_c2", "small")
    setup.instance("c3", "default")  # no user
    setup.events.seen.clear()
    setup.service.update(Profile("small", "now", {"limits.processes": "200"}, {}))
    assert [(n, old, new) for n, old, new in setup.changes] == [
        ("c1", {"limits.processes": "100"}, {"limits.processes": "200"}),
        ("p_c2", {"limits.processes": "100"}, {"limits.processes": "200"})]
    assert setup.live == [("c1", {"limits.processes": "200"}, ["c1"]),
                          ("p_c2", {"limits.processes": "200"}, ["p_c2"])]
    assert setup.events.seen == [("profiles", "profile-updated", "small", {})]
    assert setup.db.profile_get("small").description == "now"


def test_live_update_waits_for_the_instance_lock(setup: Setup) -> None:
    setup.service.create(Profile("small", "", {}, {}))
    setup.instance("c1", "small")
    held = threading.Event()
    release = threading.Event()

    def operation() -> None:  # another operation holding c1 (a backup, a restore...)
        with setup.locks.hold("c1"):
            held.set()
            release.wait(10)
            time.sleep(0.05)
    thread = threading.Thread(target=operation)
    thread.start()
    held.wait(10)
    update = threading.Thread(target=setup.service.update,
                              args=(Profile("small", "", {"limits.processes": "9"}, {}),))
    update.start()
    time.sleep(0.2)
    assert setup.live == []  # saved, but waiting for c1's lock
    assert setup.db.profile_get("small").config == {"limits.processes": "9"}
    release.set()
    update.join(10)
    thread.join(10)
    assert setup.live == [("c1", {"limits.processes": "9"}, ["c1"])]


def test_patch_merges_and_keeps_the_description(setup: Setup) -> None:
    nic = {"type": "nic", "network": "br0", "name": "eth0"}
    setup.service.create(Profile("small", "mine", {"limits.processes": "100"},
                                 {"eth0": nic}))
    setup.service.patch("small", None, {"limits.memory": "1GiB"},
                        {"root": {"type": "disk", "path": "/", "pool": "default"}})
    got = setup.db.profile_get("small")
    assert got.description == "mine"
    assert got.config == {"limits.processes": "100", "limits.memory": "1GiB"}
    assert sorted(got.devices) == ["eth0", "root"]
    setup.service.patch("small", "", {}, {})
    assert setup.db.profile_get("small").description == ""
    assert [a for _, a, _, _ in setup.events.seen] == [
        "profile-created", "profile-updated", "profile-updated"]


def test_rename_rewrites_users_under_their_locks(setup: Setup, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    setup.service.create(Profile("web/small", "", {}, {}))
    setup.instance("web_c1", "web/default", "web/small")
    setup.instance("web_c2", "web/small")
    locked: list[list[str]] = []
    rename = setup.db.profile_rename

    def spy(old: str, new: str, specs: list[InstanceSpec]) -> None:
        locked.append(setup.locks.held())
        rename(old, new, specs)
    monkeypatch.setattr(setup.db, "profile_rename", spy)
    setup.events.seen.clear()
    setup.service.rename("web/small", "web/snug")
    assert locked == [["web_c1", "web_c2"]]
    assert setup.db.instance_get("web_c1").profiles == ["web/default", "web/snug"]
    assert setup.db.instance_get("web_c2").profiles == ["web/snug"]
    assert setup.events.seen == [("profiles", "profile-renamed", "snug",
                                  {"old_name": "small"})]
    with pytest.raises(InvalidConfig, match="another project"):
        setup.service.rename("web/snug", "other/snug")


def test_delete_announces_once(setup: Setup) -> None:
    setup.service.create(Profile("small", "", {}, {}))
    setup.service.delete("small")
    with pytest.raises(NotFound):
        setup.service.delete("small")
    assert setup.events.seen[1:] == [("profiles", "profile-deleted", "small", {})]
