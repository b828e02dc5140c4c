"""Which raw.idmap changes an existing instance takes, by where its files keep host ids
(the kernel tests boot the overlay and dir cases; these are the refusals around them)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from lxmgr.errors import Conflict, InvalidConfig, InvalidState, NotSupported
from lxmgr.instances import raw_idmap
from lxmgr.model.idmap import IdMap, parse_raw_idmap
from lxmgr.model.instance import InstanceSpec
from lxmgr.runtime.idmap import SubIdRange

BASE = 1000000
RAW = {"raw.idmap": "both 1000 1000"}


class FakeDriver:
    def __init__(self, name: str, idmapped: bool, shares_image: bool, state: Path) -> None:
        self.name, self.idmapped, self.shares_image, self.state = \
            name, idmapped, shares_image, state

    def state_path(self, name: str, snapshot: str | None = None) -> Path:
        return self.state / (snapshot or "current")


@pytest.fixture(autouse=True)
def subids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lxmgr.runtime.idmap.ensure_subids",
                        lambda: (SubIdRange(BASE, 1000000000),) * 2)


def manager(driver: FakeDriver, *, running: bool = False,
            others: dict[str, IdMap] | None = None) -> SimpleNamespace:
    maps = {"c1": IdMap(BASE, BASE, 65536), **(others or {})}
    return SimpleNamespace(
        _idmap=lambda spec: maps[spec.name],
        store=SimpleNamespace(names=lambda: list(maps), get=lambda n: SimpleNamespace(name=n)),
        pools=SimpleNamespace(driver_for=lambda spec: driver),
        is_running=lambda name: running,
        db=SimpleNamespace(snapshots=lambda name: [SimpleNamespace(name="snap0")]))


SPEC = InstanceSpec(name="c1", image_fingerprint="f")


def test_unchanged_or_reordered_entries_pass(tmp_path: Path) -> None:
    mgr = manager(FakeDriver("overlay", False, True, tmp_path), running=True)
    raw_idmap.check_change(mgr, SPEC, {}, {"limits.cpu": "2"})  # type: ignore[arg-type]
    raw_idmap.check_change(mgr, SPEC, {"raw.idmap": "uid 5 5\ngid 6 6"},  # type: ignore[arg-type]
                           {"raw.idmap": "gid 6 6\n\nuid 5 5\n"})


def test_dir_through_idmapped_mounts_takes_it_even_running(tmp_path: Path) -> None:
    raw_idmap.check_change(manager(FakeDriver("dir", True, False, tmp_path), running=True),  # type: ignore[arg-type]
                           SPEC, {}, RAW)


def test_without_idmapped_mounts_it_is_refused(tmp_path: Path) -> None:
    for driver in (FakeDriver("dir", False, False, tmp_path),
                   FakeDriver("overlay", False, True, tmp_path)):
        with pytest.raises(NotSupported, match=re.escape(
                f"Instance 'c1' cannot change raw.idmap: without idmapped mounts its "
                f"{driver.name} volume was shifted on disk for the current map and lxmgr does "
                "not re-shift it")):
            raw_idmap.check_change(manager(driver), SPEC, {}, RAW)  # type: ignore[arg-type]


def test_overlay_needs_it_stopped_and_not_for_a_copy(tmp_path: Path) -> None:
    driver = FakeDriver("overlay", True, True, tmp_path)
    with pytest.raises(InvalidState, match="^Instance 'c1' is running: stop it before changing "
                                           "raw.idmap"):
        raw_idmap.check_change(manager(driver, running=True), SPEC, {}, RAW)  # type: ignore[arg-type]
    with pytest.raises(NotSupported, match="cannot change raw.idmap while being copied"):
        raw_idmap.check_change(manager(driver), SPEC, {}, RAW, copy=True)  # type: ignore[arg-type]
    raw_idmap.check_change(manager(driver), SPEC, {}, RAW)  # type: ignore[arg-type]  # no upper


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")
def test_overlay_snapshots_are_read_too(tmp_path: Path) -> None:
    (tmp_path / "current").mkdir()
    snap = tmp_path / "snap0"
    (snap / "home").mkdir(parents=True)
    os.chown(snap / "home", BASE + 1000, BASE + 1000)
    with pytest.raises(NotSupported, match=re.escape(
            "in snapshot 'snap0', 'home': its owner host uid 1001000 (container uid 1000 now, "
            "none after)")):
        raw_idmap.check_change(manager(FakeDriver("overlay", True, True, tmp_path)),  # type: ignore[arg-type]
                               SPEC, {}, RAW)


def test_bad_entries_and_other_instances_are_refused(tmp_path: Path) -> None:
    driver = FakeDriver("dir", True, False, tmp_path)
    with pytest.raises(InvalidConfig, match="container ids 70000-70000 are outside"):
        raw_idmap.check_change(manager(driver), SPEC, {}, {"raw.idmap": "both 1000 70000"})  # type: ignore[arg-type]
    with pytest.raises(InvalidConfig, match="a privileged instance has no id map"):
        raw_idmap.check_change(manager(driver), SPEC, {},  # type: ignore[arg-type]
                               {**RAW, "security.privileged": "true"})
    isolated = {"c2": IdMap(BASE + 65536, BASE + 65536, 65536,
                            parse_raw_idmap("both 1000 1000"))}
    with pytest.raises(Conflict, match="belong to instance 'c2'"):
        raw_idmap.check_change(manager(driver, others=isolated), SPEC, {},  # type: ignore[arg-type]
                               {"raw.idmap": f"uid {BASE + 65540} 5"})
