"""PURE snapshot rules: names, `snapshots.pattern`, `snapshots.expiry`, `snapshots.schedule`.

What a snapshot is (SnapshotSpec: the instance's definition when it was taken) and the
LXD rules around it. Must not import anything but lxmgr.errors, other lxmgr.model modules and
the stdlib; no I/O, no clock (callers pass `now`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lxmgr.errors import InvalidConfig
from lxmgr.model.instance import InstanceSpec

_SNAP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DEFAULT_PATTERN = "snap%d"
# LXD's snapshots.expiry units (shared/instance expiry): minutes, hours, days, weeks,
# months, years; M is minutes, m months, as in LXD.
_EXPIRY_UNITS = {"M": timedelta(minutes=1), "H": timedelta(hours=1), "d": timedelta(days=1),
                 "w": timedelta(weeks=1), "m": timedelta(days=30), "y": timedelta(days=365)}
_EXPIRY_RE = re.compile(r"^(\d+)([MHdwmy])$")
_CRON_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                 "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
                 "@annually": "0 0 1 1 *"}
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))


def validate_snapshot_name(name: str) -> None:
    """A name usable in a URL and as a directory: 1-63 letters, digits, '.', '_', '-',
    starting with a letter or digit (LXD forbids '/'; we are a little stricter)."""
    if not isinstance(name, str) or not _SNAP_RE.fullmatch(name):
        raise InvalidConfig(f"Invalid snapshot name '{name}': use 1-63 letters, digits, '.', "
                            "'_' or '-', starting with a letter or digit")


def split_ref(ref: str) -> tuple[str, str | None]:
    """'web1/snap0' -> ('web1', 'snap0'); 'web1' -> ('web1', None)."""
    instance, sep, snapshot = ref.partition("/")
    if sep and not snapshot:
        raise InvalidConfig(f"Invalid snapshot reference '{ref}'")
    return instance, snapshot if sep else None


def next_name(pattern: str, existing: set[str], now: datetime) -> str:
    """The next snapshot name from snapshots.pattern: `%d` becomes the lowest free counter
    (LXD's default `snap%d`); a pattern without `%d` gets `-1`, `-2`... when taken. LXD's
    pongo2 date filters in patterns are not supported (the name is validated)."""
    pattern = pattern or DEFAULT_PATTERN
    if "%d" in pattern:
        n = 0
        while (name := pattern.replace("%d", str(n), 1)) in existing:
            n += 1
    else:
        name, n = pattern, 1
        while name in existing:
            name = f"{pattern}-{n}"
            n += 1
    validate_snapshot_name(name)
    return name


def parse_expiry(text: str) -> timedelta | None:
    """LXD's expiry syntax, space-separated terms such as '2w 3d 4H' (empty: never)."""
    text = (text or "").strip()
    if not text:
        return None
    total = timedelta()
    for term in text.split():
        match = _EXPIRY_RE.fullmatch(term)
        if not match:
            raise InvalidConfig(f"Invalid snapshot expiry '{text}': expected terms like 2w, "
                                "3d, 4H, 30M (M minutes, H hours, d days, w weeks, m months, "
                                "y years)")
        total += int(match.group(1)) * _EXPIRY_UNITS[match.group(2)]
    return total


def is_expiry(value: str) -> None:
    """Config validator for snapshots.expiry."""
    parse_expiry(value)


def parse_schedule(text: str) -> list[set[int]] | None:
    """A cron spec ('M H dom mon dow', lists, ranges, */steps) or @hourly-style alias;
    several specs separated by ', ' are not supported. Empty: no schedule."""
    text = (text or "").strip()
    if not text:
        return None
    fields = _CRON_ALIASES.get(text, text).split()
    if len(fields) != 5:
        raise InvalidConfig(f"Invalid snapshot schedule '{text}': expected 5 cron fields or "
                            f"one of {', '.join(sorted(_CRON_ALIASES))}")
    sets = [_cron_field(f, name, low, high, text)
            for f, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True)]
    if 7 in sets[4]:
        sets[4] = (sets[4] - {7}) | {0}  # 7 is Sunday too
    return sets


def is_schedule(value: str) -> None:
    """Config validator for snapshots.schedule."""
    parse_schedule(value)


def _cron_field(spec: str, name: str, low: int, high: int, text: str) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        rng, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if rng == "*":
                start, end = low, high
            elif "-" in rng:
                start, end = (int(x) for x in rng.split("-", 1))
            else:
                start = end = int(rng)
        except ValueError:
            raise InvalidConfig(f"Invalid snapshot schedule '{text}': bad {name} "
                                f"'{spec}'") from None
        if step < 1 or not low <= start <= end <= high:
            raise InvalidConfig(f"Invalid snapshot schedule '{text}': {name} '{spec}' is "
                                f"outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def schedule_due(schedule: list[set[int]], when: datetime) -> bool:
    """True when `when` (its minute) matches the parsed schedule; cron's rule: when both
    day fields are restricted, either may match."""
    minute, hour, dom, month, dow = schedule
    weekday = (when.weekday() + 1) % 7  # cron: 0 = Sunday
    dom_any, dow_any = dom == set(range(1, 32)), dow == set(range(0, 7))
    if dom_any or dow_any:
        day_ok = when.day in dom and weekday in dow
    else:
        day_ok = when.day in dom or weekday in dow
    return when.minute in minute and when.hour in hour and when.month in month and day_ok


@dataclass
class SnapshotSpec:
    """A snapshot: its name, times, and a copy of the instance's definition when taken."""

    name: str
    instance: InstanceSpec
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "instance": self.instance.to_dict(),
                "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat() if self.expires_at else ""}

    @classmethod
    def from_dict(cls, data: object) -> SnapshotSpec:
        if not isinstance(data, dict):
            raise InvalidConfig("Invalid snapshot record: not a mapping")
        name = str(data.get("name", ""))
        validate_snapshot_name(name)
        return cls(name=name, instance=InstanceSpec.from_dict(data.get("instance")),
                   created_at=_time(data.get("created_at")) or datetime.now(UTC),
                   expires_at=_time(data.get("expires_at")))


def parse_time(value: object, what: str = "expires_at") -> datetime | None:
    """An RFC 3339 time from the API (LXD's zero time and '' mean none)."""
    if value in (None, "") or (isinstance(value, str) and value.startswith("0001-01-01")):
        return None
    if not isinstance(value, str):
        raise InvalidConfig(f"Invalid '{what}': expected an RFC 3339 time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidConfig(f"Invalid '{what}': '{value}' is not an RFC 3339 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _time(value: object) -> datetime | None:
    try:
        return parse_time(value)
    except InvalidConfig:
        return None
