"""Snapshot names, patterns, expiry and cron schedules (LXD's rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model import snapshot as s
from lxmgr.model.config import validate_config
from lxmgr.model.instance import InstanceSpec

NOW = datetime(2026, 11, 25, 17, 30, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize("name", ["snap0", "before-upgrade", "v1.2_rc", "0"])
def test_good_names(name: str) -> None:
    s.validate_snapshot_name(name)


@pytest.mark.parametrize("name", ["", ".x", "-x", "a/b", "..", "x" * 64, "with space"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid snapshot name"):
        s.validate_snapshot_name(name)


def test_split_ref() -> None:
    assert s.split_ref("web1/snap0") == ("web1", "snap0")
    assert s.split_ref("web1") == ("web1", None)
    with pytest.raises(InvalidConfig):
        s.split_ref("web1/")


def test_next_name() -> None:
    assert s.next_name("", set(), NOW) == "snap0"
    assert s.next_name("snap%d", {"snap0", "snap1", "snap3"}, NOW) == "snap2"
    assert s.next_name("auto-%d", set(), NOW) == "auto-0"
    assert s.next_name("nightly", {"nightly"}, NOW) == "nightly-1"


def test_expiry() -> None:
    assert s.parse_expiry("") is None
    assert s.parse_expiry("2w 3d 4H 30M") == timedelta(weeks=2, days=3, hours=4, minutes=30)
    assert s.parse_expiry("1m 1y") == timedelta(days=30 + 365)
    with pytest.raises(InvalidConfig, match="Invalid snapshot expiry '3x'"):
        s.parse_expiry("3x")


def test_schedule() -> None:
    assert s.parse_schedule("") is None
    hourly = s.parse_schedule("@hourly")
    assert hourly is not None
    assert s.schedule_due(hourly, NOW.replace(minute=0))
    assert not s.schedule_due(hourly, NOW)
    every15 = s.parse_schedule("*/15 9-17 * * 1-5")
    assert every15 is not None and s.schedule_due(every15, NOW.replace(minute=45))
    assert not s.schedule_due(every15, NOW.replace(hour=8, minute=45))
    weekly = s.parse_schedule("0 3 * * 7")  # 7 = Sunday
    sunday = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert weekly is not None and s.schedule_due(weekly, sunday)
    both = s.parse_schedule("0 0 1 * 3")  # day 1 OR Wednesday (cron's rule)
    assert both is not None and s.schedule_due(both, NOW.replace(hour=0, minute=0))
    for bad in ("* * *", "61 * * * *", "*/0 * * * *", "a * * * *", "@often"):
        with pytest.raises(InvalidConfig, match="Invalid snapshot schedule"):
            s.parse_schedule(bad)


def test_config_keys_are_validated() -> None:
    validate_config({"snapshots.schedule": "@daily", "snapshots.expiry": "1w",
                     "snapshots.pattern": "auto%d", "snapshots.schedule.stopped": "true"})
    with pytest.raises(InvalidConfig, match="snapshots.expiry"):
        validate_config({"snapshots.expiry": "soon"})
    with pytest.raises(InvalidConfig, match="snapshots.schedule"):
        validate_config({"snapshots.schedule": "every day"})


def test_spec_round_trip() -> None:
    snap = s.SnapshotSpec("snap0", InstanceSpec("c1", "f" * 64, config={"a": "b"}),
                          created_at=NOW, expires_at=NOW + timedelta(days=1))
    again = s.SnapshotSpec.from_dict(snap.to_dict())
    assert again == snap
    assert s.SnapshotSpec.from_dict({**snap.to_dict(), "expires_at": ""}).expires_at is None
    with pytest.raises(InvalidConfig):
        s.SnapshotSpec.from_dict({**snap.to_dict(), "name": "../x"})


def test_parse_time() -> None:
    assert s.parse_time("0001-01-01T00:00:00Z") is None
    assert s.parse_time("2026-11-26T00:00:00Z") == datetime(2026, 11, 26, tzinfo=UTC)
    with pytest.raises(InvalidConfig, match="expires_at"):
        s.parse_time("tomorrow")
