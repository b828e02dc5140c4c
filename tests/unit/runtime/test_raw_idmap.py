"""raw.idmap against other instances: its host ids stay out of the shared map and of other
instances' isolated ranges, and isolated ranges found or placed later avoid them."""

from __future__ import annotations

import re

import pytest

from lxmgr.errors import Conflict
from lxmgr.model.idmap import IdMap, parse_raw_idmap
from lxmgr.runtime.idmap import SIZE, SubIdRange, check_raw, pick_isolated, place_isolated

START = 1000000
SHARED = IdMap(START, START, SIZE)
ISOLATED = IdMap(START + SIZE, START + SIZE, SIZE)
RANGES = [SubIdRange(START, 1000000000)]


def raw_map(text: str, base: IdMap = SHARED) -> IdMap:
    return IdMap(base.uid_base, base.gid_base, base.size, parse_raw_idmap(text))


def test_host_ids_outside_every_range_pass() -> None:
    # Host uid 1000 is in no one's range (nor in root's /etc/subuid): a developer's account.
    check_raw(raw_map("both 1000 1000"), SHARED, {"c2": ISOLATED, "c3": SHARED})
    # Other instances may map the same host id: sharing it is what raw.idmap is for.
    check_raw(raw_map("both 1000 1000"), SHARED, {"c2": raw_map("both 1000 1000")})
    # Past every range, inside root's subordinate ids, is fine too.
    check_raw(raw_map(f"uid {START + 10 * SIZE} 5", ISOLATED), SHARED, {"c3": SHARED})


@pytest.mark.parametrize("text,base,message", [
    (f"both {START + 5} 1000", ISOLATED,
     f"Invalid raw.idmap entry 'both {START + 5} 1000': host uids {START + 5}-{START + 5} "
     f"belong to the map instances without isolation share (host ids {START}-"
     f"{START + SIZE - 1})"),
    (f"gid {START + SIZE + 3}-{START + SIZE + 4} 7-8", SHARED,
     f"host gids {START + SIZE + 3}-{START + SIZE + 4} belong to instance 'c2' (host ids "
     f"{START + SIZE}-{START + 2 * SIZE - 1})"),
])
def test_host_ids_of_an_instance_range_are_refused(text: str, base: IdMap,
                                                   message: str) -> None:
    with pytest.raises(Conflict, match=re.escape(message)):
        check_raw(raw_map(text, base), SHARED, {"c2": raw_map("both 1000 1000", ISOLATED)})


def test_isolated_ranges_avoid_raw_host_ids() -> None:
    r = SubIdRange(START, 1000000000)
    taker = raw_map(f"both {START + SIZE + 100} 5")  # on the shared map, maps an id past it
    assert pick_isolated(r, r, [taker], 100) == IdMap(START + SIZE, START + SIZE, 100)
    assert pick_isolated(r, r, [taker], 101) == \
        IdMap(START + SIZE + 101, START + SIZE + 101, 101)
    assert pick_isolated(r, r, [raw_map("both 1000 1000")], 100).uid_base == START + SIZE
    with pytest.raises(Conflict, match=re.escape(
            f"Invalid security.idmap.base {START + SIZE}: host ids {START + SIZE}-"
            f"{START + 2 * SIZE - 1} overlap the raw.idmap of instance 'c1' "
            f"('both {START + SIZE + 100} 5')")):
        place_isolated(START + SIZE, SIZE, RANGES, RANGES, SHARED, {"c1": taker})
    assert place_isolated(START + SIZE + 101, 10, RANGES, RANGES, SHARED, {"c1": taker}) == \
        IdMap(START + SIZE + 101, START + SIZE + 101, 10)
