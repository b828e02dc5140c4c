"""IdMap texts and ranges, and IdmapRequest: what an instance's config asks of its map."""

from __future__ import annotations

import re

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.idmap import IdMap, IdmapRequest, describe_ids, overlaps

SHARED = IdMap(1000000, 1000000, 65536)


def test_map_text_and_description() -> None:
    m = IdMap(900000000, 900000000, 70000)
    assert m.uid_map_text() == m.gid_map_text() == "0 900000000 70000\n"
    assert describe_ids(m) == "host ids 900000000-900069999"
    assert describe_ids(IdMap(5, 7, 2)) == "host uids 5-6 and gids 7-8"
    assert describe_ids(None) == "host root (the instance is privileged)"


def test_overlaps() -> None:
    a = IdMap(100, 100, 10)
    assert overlaps(a, IdMap(109, 500, 1)) and overlaps(a, IdMap(500, 90, 11))
    assert not overlaps(a, IdMap(110, 110, 5)) and not overlaps(a, IdMap(90, 90, 10))


@pytest.mark.parametrize("config,request_", [
    ({}, IdmapRequest(False, False)),
    ({"security.privileged": "true"}, IdmapRequest(True, False)),
    ({"security.idmap.isolated": "true"}, IdmapRequest(False, True)),
    ({"security.idmap.isolated": "true", "security.idmap.base": "900000000",
      "security.idmap.size": "70000"}, IdmapRequest(False, True, 900000000, 70000)),
    # LXD does not refuse sizes below 65536 (validate.IsUint32): nor does lxmgr.
    ({"security.idmap.isolated": "true", "security.idmap.size": "1000"},
     IdmapRequest(False, True, None, 1000)),
    ({"security.idmap.isolated": "true", "security.idmap.base": ""},
     IdmapRequest(False, True)),
])
def test_request_from_config(config: dict[str, str], request_: IdmapRequest) -> None:
    assert IdmapRequest.from_config(config) == request_


@pytest.mark.parametrize("config,message", [
    ({"security.idmap.base": "900000000"},
     "Invalid security.idmap.base: it needs security.idmap.isolated=true"),
    ({"security.idmap.size": "70000", "security.idmap.isolated": "false"},
     "Invalid security.idmap.size: it needs security.idmap.isolated=true"),
    ({"security.privileged": "true", "security.idmap.isolated": "true",
      "security.idmap.base": "900000000"},
     "Invalid security.idmap.base: a privileged instance has no id map"),
    ({"security.idmap.isolated": "true", "security.idmap.size": "0"},
     "Invalid security.idmap.size 0: a map needs at least 1 id"),
    ({"security.idmap.isolated": "true", "security.idmap.size": "-1"},
     "Invalid security.idmap.size '-1': expected an unsigned 32-bit integer"),
    ({"security.idmap.isolated": "true", "security.idmap.base": str(2**32)},
     "Invalid security.idmap.base '4294967296'"),
])
def test_request_refuses_what_would_be_ignored(config: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        IdmapRequest.from_config(config)


@pytest.mark.parametrize("request_,current,ok", [
    (IdmapRequest(True, False), None, True),
    (IdmapRequest(True, False), SHARED, False),
    (IdmapRequest(False, False), SHARED, True),
    (IdmapRequest(False, False), None, False),
    (IdmapRequest(False, False), IdMap(1065536, 1065536, 65536), False),
    (IdmapRequest(False, True), SHARED, False),
    (IdmapRequest(False, True), IdMap(1065536, 1065536, 65536), True),
    (IdmapRequest(False, True, size=70000), IdMap(1065536, 1065536, 65536), False),
    (IdmapRequest(False, True, 1065536), IdMap(1065536, 1065536, 65536), True),
    (IdmapRequest(False, True, 1065536), IdMap(1065536, 2065536, 65536), False),
])
def test_satisfied_by(request_: IdmapRequest, current: IdMap | None, ok: bool) -> None:
    assert request_.satisfied_by(current, SHARED) is ok
