"""subuid/subgid parsing, the default range LXD's packaging adds, allocation of isolated maps
(found, or placed at security.idmap.base) and the refusal of a map change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lxmgr.errors import Conflict, HostNotReady, InvalidConfig, NotSupported
from lxmgr.model.idmap import IdMap
from lxmgr.runtime.idmap import (
    DEFAULT_RANGE,
    SIZE,
    SubIdRange,
    check_change,
    ensure_subids,
    parse_subid,
    pick_isolated,
    place_isolated,
    root_subids,
    shared_mapping,
)


def test_parse_subid() -> None:
    text = ("alice:100000:65536\nroot:1000000:1000000000\n0:5000000:65536\n"
            "#root:1:2\nroot:bad:65536\nroot:1:2:3\n\n  root:7000000:65536  \n")
    assert parse_subid(text) == [SubIdRange(1000000, 1000000000), SubIdRange(5000000, 65536),
                                 SubIdRange(7000000, 65536)]
    assert parse_subid(text, "alice") == [SubIdRange(100000, 65536), SubIdRange(5000000, 65536)]
    assert parse_subid("") == []


def test_ensure_subids_adds_the_default_range(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("alice:100000:65536")  # no trailing newline
    uid, gid = ensure_subids(str(tmp_path))
    assert uid == gid == SubIdRange(*DEFAULT_RANGE)
    assert (tmp_path / "subuid").read_text() == "alice:100000:65536\nroot:1000000:1000000000\n"
    assert (tmp_path / "subgid").read_text() == "root:1000000:1000000000\n"
    # Idempotent: a second call finds the range it wrote.
    assert ensure_subids(str(tmp_path)) == (uid, gid)
    assert (tmp_path / "subgid").read_text() == "root:1000000:1000000000\n"


def test_ensure_subids_keeps_existing_ranges(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("root:100000:65536\n")
    (tmp_path / "subgid").write_text("root:200000:131072\n")
    assert ensure_subids(str(tmp_path)) == (SubIdRange(100000, 65536),
                                            SubIdRange(200000, 131072))
    assert (tmp_path / "subuid").read_text() == "root:100000:65536\n"


def test_ensure_subids_ignores_too_small_ranges(tmp_path: Path) -> None:
    for kind in ("subuid", "subgid"):
        (tmp_path / kind).write_text("root:100000:1000\n")
    uid, _gid = ensure_subids(str(tmp_path))
    assert uid == SubIdRange(*DEFAULT_RANGE)


def test_shared_mapping() -> None:
    assert shared_mapping(SubIdRange(100000, 65536 * 4), SubIdRange(300000, 65536 * 4)) == \
        IdMap(100000, 300000, SIZE)


def test_pick_isolated() -> None:
    uids, gids = SubIdRange(1000000, SIZE * 4), SubIdRange(2000000, SIZE * 3)
    # The first block is the shared map; used ranges are skipped.
    assert pick_isolated(uids, gids, []) == IdMap(1000000 + SIZE, 2000000 + SIZE, SIZE)
    first = IdMap(1000000 + SIZE, 2000000 + SIZE, SIZE)
    assert pick_isolated(uids, gids, [first]) == \
        IdMap(1000000 + 2 * SIZE, 2000000 + 2 * SIZE, SIZE)
    # The smaller (gid) range bounds the search.
    with pytest.raises(HostNotReady, match="No free range of 65536 ids"):
        pick_isolated(uids, gids, [first, IdMap(1000000 + 2 * SIZE, 2000000 + 2 * SIZE)])


def test_pick_isolated_needs_more_than_the_shared_block() -> None:
    one = SubIdRange(1000000, SIZE)
    with pytest.raises(HostNotReady, match="enlarge root's ranges"):
        pick_isolated(one, one, [])


def test_pick_isolated_first_fit_of_any_size() -> None:
    """security.idmap.size alone: the first gap that holds that many ids, past maps of
    other sizes and explicit bases, on the uid and the gid side."""
    r = SubIdRange(1000000, 1000000)
    small = IdMap(1000000 + SIZE, 1000000 + SIZE, 1000)
    placed = IdMap(1000000 + SIZE + 5000, 1000000 + SIZE + 5000, 100)
    assert pick_isolated(r, r, [small, placed], 4000) == \
        IdMap(1000000 + SIZE + 1000, 1000000 + SIZE + 1000, 4000)
    assert pick_isolated(r, r, [small, placed], 4001) == \
        IdMap(1000000 + SIZE + 5100, 1000000 + SIZE + 5100, 4001)
    # A map taking those gids (not those uids) is avoided too.
    gids_only = IdMap(1, 1000000 + SIZE + 1000, 10)
    assert pick_isolated(r, r, [small, placed, gids_only], 100) == \
        IdMap(1000000 + SIZE + 1010, 1000000 + SIZE + 1010, 100)
    # The shared map's instances (block 0) never push the search.
    shared = IdMap(1000000, 1000000, SIZE)
    assert pick_isolated(r, r, [shared], 10).uid_base == 1000000 + SIZE


def test_root_subids_merges_adjacent_ranges(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("root:1000000:1000000000\n_lxd:1001000000:10000001\n"
                                     "root:1001000000:10000001\nroot:5:10\n")
    uids, gids = root_subids(str(tmp_path))
    assert uids == [SubIdRange(5, 10), SubIdRange(1000000, 1010000001)]
    assert gids == []


RANGES = [SubIdRange(1000000, 1000000000)]
SHARED = IdMap(1000000, 1000000, SIZE)


def test_place_isolated_at_the_base() -> None:
    assert place_isolated(900000000, 70000, RANGES, RANGES, SHARED, {}) == \
        IdMap(900000000, 900000000, 70000)
    # Right after the shared map, and touching another map without overlapping it.
    other = {"c2": IdMap(1000000 + SIZE + 10, 1000000 + SIZE + 10, 10)}
    assert place_isolated(1000000 + SIZE, 10, RANGES, RANGES, SHARED, other).size == 10
    # Instances on the shared map are not named: the shared map is.
    assert place_isolated(5000000, SIZE, RANGES, RANGES, SHARED, {"c1": SHARED}).uid_base == \
        5000000


@pytest.mark.parametrize("base,size,error,message", [
    (999999, 10, InvalidConfig, "Invalid security.idmap.base 999999: host ids 999999-1000008 "
                                "are not inside one of root's ranges in /etc/subuid"),
    (1000999990, 11, InvalidConfig, "are not inside one of root's ranges in /etc/subuid"),
    (0, 10, InvalidConfig, "host ids 0-9 are not inside"),
    (1000000 + SIZE - 1, 2, Conflict, "overlap the map instances without isolation share "
                                      "(host ids 1000000-1065535)"),
    (1000000 + SIZE + 19, 100, Conflict, "overlap those of instance 'c2' "
                                         "(host ids 1065546-1065555)"),
])
def test_place_isolated_refuses(base: int, size: int, error: type, message: str) -> None:
    other = {"c2": IdMap(1000000 + SIZE + 10, 1000000 + SIZE + 10, 10)}
    with pytest.raises(error, match=re.escape(message)):
        place_isolated(base, size, RANGES, RANGES, SHARED, other)


def test_place_isolated_needs_the_gids_too() -> None:
    with pytest.raises(InvalidConfig, match="/etc/subgid"):
        place_isolated(2000000, 10, RANGES, [SubIdRange(5000000, SIZE)], SHARED, {})
    gids = {"c3": IdMap(3000000, 2000005, 10)}  # its uids are elsewhere
    with pytest.raises(Conflict, match="host uids 3000000-3000009 and gids 2000005-2000014"):
        place_isolated(2000000, 10, RANGES, RANGES, SHARED, gids)


@pytest.fixture
def subids(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_change() reads the shared map from a fixed root range."""
    monkeypatch.setattr("lxmgr.runtime.idmap.ensure_subids",
                        lambda: (SubIdRange(1000000, 1000000000),) * 2)


ISOLATED = IdMap(1000000 + SIZE, 1000000 + SIZE, SIZE)


@pytest.mark.parametrize("current,old,new", [
    (SHARED, {}, {"limits.cpu": "2"}),  # no idmap key changed
    (SHARED, {}, {"security.idmap.isolated": "false"}),  # the default, said out loud
    (ISOLATED, {"security.idmap.isolated": "true"},
     {"security.idmap.isolated": "true", "security.idmap.size": "65536"}),
    (ISOLATED, {"security.idmap.isolated": "true"},
     {"security.idmap.isolated": "true", "security.idmap.base": str(1000000 + SIZE)}),
    (None, {"security.privileged": "true"},
     {"security.privileged": "true", "security.idmap.isolated": "true"}),
])
def test_check_change_lets_the_same_map_pass(subids: None, current: IdMap | None,
                                             old: dict[str, str], new: dict[str, str]) -> None:
    check_change("c1", current, old, new)


@pytest.mark.parametrize("current,old,new,message", [
    (SHARED, {}, {"security.idmap.isolated": "true"},
     "Instance 'c1' cannot change security.idmap.isolated: its files belong to host ids "
     "1000000-1065535 and lxmgr does not shift them to another id map"),
    (ISOLATED, {"security.idmap.isolated": "true"},
     {"security.idmap.isolated": "true", "security.idmap.base": "900000000"},
     "cannot change security.idmap.base"),
    (ISOLATED, {"security.idmap.isolated": "true"},
     {"security.idmap.isolated": "true", "security.idmap.size": "70000"},
     "cannot change security.idmap.size"),
    (ISOLATED, {"security.idmap.isolated": "true"}, {}, "cannot change security.idmap"),
    (SHARED, {}, {"security.privileged": "true"}, "cannot change security.privileged"),
    (None, {"security.privileged": "true"}, {},
     "its files belong to host root (the instance is privileged)"),
])
def test_check_change_refuses_another_map(subids: None, current: IdMap | None,
                                          old: dict[str, str], new: dict[str, str],
                                          message: str) -> None:
    with pytest.raises(NotSupported, match=re.escape(message)):
        check_change("c1", current, old, new)
