"""subuid/subgid parsing, the default range LXD's packaging adds, and block allocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import HostNotReady
from lxmgr.model.idmap import IdMap
from lxmgr.runtime.idmap import (
    DEFAULT_RANGE,
    SIZE,
    SubIdRange,
    ensure_subids,
    parse_subid,
    pick_isolated,
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
    # Block 0 is the shared map; used bases are skipped.
    assert pick_isolated(uids, gids, set()) == IdMap(1000000 + SIZE, 2000000 + SIZE, SIZE)
    assert pick_isolated(uids, gids, {1000000 + SIZE}) == \
        IdMap(1000000 + 2 * SIZE, 2000000 + 2 * SIZE, SIZE)
    # The smaller (gid) range bounds the blocks.
    with pytest.raises(HostNotReady, match="No free id range"):
        pick_isolated(uids, gids, {1000000 + SIZE, 1000000 + 2 * SIZE})


def test_pick_isolated_needs_more_than_the_shared_block() -> None:
    one = SubIdRange(1000000, SIZE)
    with pytest.raises(HostNotReady, match="enlarge root's ranges"):
        pick_isolated(one, one, set())
