"""raw.idmap: parsing (LXD's syntax), the base range split around raw entries in the map
text, host ids forwards and back, what an IdMap refuses, and a privileged instance."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.config import validate_key
from lxmgr.model.idmap import IdMap, IdmapRequest, describe_raw, parse_raw_idmap
from lxmgr.runtime.plan import RuntimePlan

BASE = 1000000


def test_parse_lxd_docs_example() -> None:
    # doc/userns-idmap.md, "Custom idmaps"
    text = "both 1000 1000\nuid 50-60 500-510\ngid 100000-110000 10000-20000\n"
    assert parse_raw_idmap(text) == (("both", 1000, 1000, 1), ("uid", 50, 500, 11),
                                     ("gid", 100000, 10000, 10001))
    assert [describe_raw(e) for e in parse_raw_idmap(text)] == text.splitlines()


def test_parse_skips_empty_lines_and_extra_blanks() -> None:
    assert parse_raw_idmap("") == ()
    assert parse_raw_idmap("\n  \nboth  1000\t1000  \r\n\n") == (("both", 1000, 1000, 1),)


@pytest.mark.parametrize("text,message", [
    ("both 1000", "line 1 'both 1000': expected 'uid|gid|both HOST CONTAINER'"),
    ("both 1000 1000 1", "line 1 'both 1000 1000 1': expected"),
    ("\nuser 1000 1000", "line 2 'user 1000 1000': 'user' is not uid, gid or both"),
    ("uid x 1000", "line 1 'uid x 1000': host ids 'x' are not an id or a range A-B"),
    ("uid 1000 -5", "container ids '-5' are not an id or a range A-B"),
    ("uid 1000-1001-1002 5-6", "host ids '1000-1001-1002' are not an id or a range A-B"),
    ("uid 1000-999 5-6", "host range '1000-999' ends before it starts"),
    ("uid 1000-1002 1000-1001", "the host range has 3 ids, the container range 2"),
    ("both 0 0", "line 1 'both 0 0': host root (id 0) cannot be mapped into a container"),
    ("gid 0-10 0-10", "host root (id 0) cannot be mapped"),
    (f"uid {2**32 - 1} 1", f"host id {2**32 - 1} is past {2**32 - 2}"),
])
def test_parse_refuses_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)) as err:
        parse_raw_idmap(text)
    assert str(err.value).startswith("Invalid raw.idmap line ")
    assert "\n" not in str(err.value)


def test_the_config_key_validates_its_lines() -> None:
    validate_key("raw.idmap", "both 1000 1000")
    with pytest.raises(InvalidConfig, match=r"^Invalid config key 'raw.idmap': Invalid "
                                            r"raw.idmap line 1 'both 1000 x'"):
        validate_key("raw.idmap", "both 1000 x")


def test_no_raw_entries_is_todays_map() -> None:
    m = IdMap(BASE, BASE + 5, 65536)
    assert m.uid_map_text() == f"0 {BASE} 65536\n"
    assert m.gid_map_text() == f"0 {BASE + 5} 65536\n"
    assert m.base_map is m and m.raw == ()
    assert m.host_uid(1000) == BASE + 1000 and m.container_uid(BASE + 1000) == 1000
    assert m.container_uid(1000) is None and m.container_gid(BASE + 4) is None


def test_the_base_range_is_split_around_a_raw_entry() -> None:
    m = IdMap(BASE, BASE, 65536, parse_raw_idmap("both 1000 1000"))
    text = f"0 {BASE} 1000\n1000 1000 1\n1001 {BASE + 1001} 64535\n"
    assert m.uid_map_text() == m.gid_map_text() == text
    assert m.host_uid(1000) == m.host_gid(1000) == 1000
    assert m.host_uid(999) == BASE + 999 and m.host_uid(1001) == BASE + 1001
    assert m.host_uid(0) == BASE and m.host_uid(65535) == BASE + 65535
    assert m.container_uid(1000) == 1000 and m.container_gid(1000) == 1000
    assert m.container_uid(BASE + 1000) is None  # the base id facing the entry is unmapped
    assert m.container_uid(BASE + 1001) == 1001
    assert m.base_map == IdMap(BASE, BASE, 65536)


def test_uid_and_gid_entries_and_ranges() -> None:
    m = IdMap(BASE, 2 * BASE, 65536,
              parse_raw_idmap("uid 50-60 500-510\ngid 3000 0\nuid 7000 65535"))
    assert m.uid_map_text() == (f"0 {BASE} 500\n500 50 11\n511 {BASE + 511} 65024\n"
                                "65535 7000 1\n")
    assert m.gid_map_text() == f"0 3000 1\n1 {2 * BASE + 1} 65535\n"
    assert [m.host_uid(i) for i in (499, 500, 505, 510, 511)] == \
        [BASE + 499, 50, 55, 60, BASE + 511]
    assert m.host_gid(0) == 3000 and m.host_uid(0) == BASE  # a container root of its own
    assert m.container_uid(55) == 505 and m.container_gid(55) is None
    assert m.container_gid(3000) == 0 and m.container_uid(7000) == 65535
    # Every container id is mapped once and every host id at most once.
    for kind in ("uid", "gid"):
        extents = m.extents(kind)
        assert sum(n for _, _, n in extents) == 65536
        hosts = sorted((h, n) for _, h, n in extents)
        assert all(a + n <= b for (a, n), (b, _) in zip(hosts, hosts[1:], strict=False))


def test_the_map_survives_the_plan_json() -> None:
    m = IdMap(BASE, BASE, 65536, parse_raw_idmap("both 1000 1000"))
    back = IdMap(**json.loads(json.dumps(dataclasses.asdict(m))))
    assert back == m and hash(back) == hash(m) and back.uid_map_text() == m.uid_map_text()
    plan = RuntimePlan(name="c", uuid="u", storage_root="/s", rootfs="/r", rootfs_spec={},
                       idmap=m, hostname="c")
    assert RuntimePlan.from_json(plan.to_json()).idmap == m


@pytest.mark.parametrize("raw,size,message", [
    ("both 1000 70000", 65536, "'both 1000 70000': container ids 70000-70000 are outside "
                               "the map (container ids 0-65535)"),
    ("uid 1000-1009 65530-65539", 65536, "container ids 65530-65539 are outside"),
    (f"both {BASE + 10} 5", 65536, f"'both {BASE + 10} 5': host uids {BASE + 10}-{BASE + 10} "
                                   f"are in this instance's own range ({BASE}-{BASE + 65535})"),
    (f"gid {BASE - 1}-{BASE} 5-6", 65536, "host gids"),
    ("both 1000 1000\nuid 2000 1000", 65536,
     "'uid 2000 1000': its container ids overlap those of 'both 1000 1000'"),
    ("uid 1000-1010 10-20\nboth 1005 500", 65536,
     "'both 1005 500': its host ids overlap those of 'uid 1000-1010 10-20'"),
])
def test_idmap_refuses_entries_the_map_cannot_hold(raw: str, size: int, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        IdMap(BASE, BASE, size, parse_raw_idmap(raw))


def test_uid_and_gid_entries_may_share_ids() -> None:
    m = IdMap(BASE, BASE, 65536, parse_raw_idmap("uid 1000 1000\ngid 1000 1000"))
    assert m.uid_map_text() == m.gid_map_text()


def test_the_kernel_limit_on_lines() -> None:
    lines = "\n".join(f"uid {2000 + 2 * i} {2 * i + 1}" for i in range(169))
    assert len(IdMap(BASE, BASE, 65536, parse_raw_idmap(lines)).extents("uid")) == 339
    lines += "\nuid 5000 1000"  # two more lines: an entry and the base range after it
    with pytest.raises(InvalidConfig, match="more than 340 lines"):
        IdMap(BASE, BASE, 65536, parse_raw_idmap(lines))


def test_request_carries_raw_and_refuses_it_when_privileged() -> None:
    assert IdmapRequest.from_config({"raw.idmap": "both 1000 1000"}).raw == \
        (("both", 1000, 1000, 1),)
    with pytest.raises(InvalidConfig, match="^Invalid raw.idmap: a privileged instance has no "
                                            r"id map \(no user namespace\)$"):
        IdmapRequest.from_config({"raw.idmap": "both 1000 1000", "security.privileged": "1"})
    assert IdmapRequest.from_config({"raw.idmap": "", "security.privileged": "true"}).raw == ()


def test_satisfied_by_compares_base_ranges_only() -> None:
    shared = IdMap(BASE, BASE, 65536)
    with_raw = IdMap(BASE, BASE, 65536, parse_raw_idmap("both 1000 1000"))
    assert IdmapRequest(False, False).satisfied_by(with_raw, shared)
    isolated = IdMap(BASE + 65536, BASE + 65536, 65536, parse_raw_idmap("uid 5 5"))
    assert IdmapRequest(False, True).satisfied_by(isolated, shared)
