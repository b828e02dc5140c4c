"""PURE user-namespace id mapping: container ids [0, size) -> host ids [base, base + size),
with raw.idmap's entries mapping chosen host ids straight in, and what an instance's config
asks of its map (IdmapRequest).

Imports only lxmgr.errors and lxmgr.model.units. The map text is written to
/proc/<pid>/uid_map and gid_map.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from lxmgr.errors import InvalidConfig
from lxmgr.model.units import parse_bool

MAX_ID = 2**32 - 1  # (uid_t)-1 is reserved by the kernel
DEFAULT_SIZE = 65536  # LXD's size of an isolated map when security.idmap.size is unset
# The keys that decide an instance's base range (LXD's findIdmap reads the same, plus
# raw.idmap, whose entries are checked on their own: they leave the base range alone).
IDMAP_KEYS = ("security.privileged", "security.idmap.isolated", "security.idmap.base",
              "security.idmap.size")
# UID_GID_MAP_MAX_EXTENTS (include/linux/user_namespace.h, kernel >= 4.15): lines a
# uid_map or gid_map may have.
MAX_EXTENTS = 340
RAW_KINDS = ("uid", "gid", "both")

# One raw.idmap entry: (kind, first host id, first container id, count); kind is uid, gid
# or both (both: the same entry in the uid and the gid map).
RawEntry = tuple[str, int, int, int]
# One line of a map: (first container id, first host id, count).
Extent = tuple[int, int, int]


def parse_raw_idmap(text: str) -> tuple[RawEntry, ...]:
    """raw.idmap as LXD's idmap.ParseRawIdmap reads it: one 'KIND HOST CONTAINER' a line,
    KIND uid, gid or both, HOST and CONTAINER an id or an inclusive range ('1000-1002') of
    the same size; empty lines are skipped. InvalidConfig naming the first bad line; host
    root (0) is refused as LXD refuses it for unprivileged-only daemons
    (instance.AllowedUnprivilegedOnlyMap): a container must not own host root's files."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                entries.append(_parse_line(line))
            except ValueError as err:
                raise InvalidConfig(f"Invalid raw.idmap line {number} '{line.strip()}': "
                                    f"{err}") from None
    return tuple(entries)


def is_raw_idmap(value: str) -> None:
    """The raw.idmap validator: every line parses (parse_raw_idmap)."""
    parse_raw_idmap(value)


def _parse_line(line: str) -> RawEntry:
    fields = line.split()
    if len(fields) != 3:
        raise ValueError("expected 'uid|gid|both HOST CONTAINER'")
    kind, host, inside = fields
    if kind not in RAW_KINDS:
        raise ValueError(f"'{kind}' is not uid, gid or both")
    host_start, host_count = _id_range(host, "host")
    inside_start, inside_count = _id_range(inside, "container")
    if host_count != inside_count:
        raise ValueError(f"the host range has {host_count} ids, the container range "
                         f"{inside_count}")
    if host_start == 0:
        raise ValueError("host root (id 0) cannot be mapped into a container")
    return kind, host_start, inside_start, host_count


def _id_range(text: str, side: str) -> tuple[int, int]:
    """'N' or 'A-B' (inclusive) -> (first, count), ids below 2^32 - 1; ValueError saying
    what is wrong."""
    first, dash, last = text.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        raise ValueError(f"{side} ids '{text}' are not an id or a range A-B")
    start, end = int(first), int(last) if dash else int(first)
    if end < start:
        raise ValueError(f"{side} range '{text}' ends before it starts")
    if end >= MAX_ID:
        raise ValueError(f"{side} id {end} is past {MAX_ID - 1}")
    return start, end - start + 1


def describe_raw(entry: RawEntry) -> str:
    """An entry as a raw.idmap line: 'both 1000 1000', 'uid 50-60 500-510'."""
    kind, host, inside, count = entry
    if count == 1:
        return f"{kind} {host} {inside}"
    return f"{kind} {host}-{host + count - 1} {inside}-{inside + count - 1}"


def _kinds(entry_kind: str) -> tuple[str, ...]:
    return ("uid", "gid") if entry_kind == "both" else (entry_kind,)


def _meet(a_start: int, a_count: int, b_start: int, b_count: int) -> bool:
    return a_start < b_start + b_count and b_start < a_start + a_count


@dataclass(frozen=True)
class IdMap:
    """One contiguous base range for uids and one for gids, both starting at container id
    0, and raw.idmap's entries. As LXD's IdmapSet.AddSafe, each raw entry takes its
    container ids out of the base range, which is split around them: the other container
    ids keep base + id, and the base range's host ids facing a raw entry go unmapped."""

    uid_base: int
    gid_base: int
    size: int = 65536
    raw: tuple[RawEntry, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InvalidConfig(f"Invalid idmap size {self.size}: must be at least 1")
        for name, base in (("uid_base", self.uid_base), ("gid_base", self.gid_base)):
            if base < 1 or base + self.size > MAX_ID:
                raise InvalidConfig(f"Invalid idmap {name} {base}: the range must lie in "
                                    f"[1, {MAX_ID}) and must not include host root")
        # A plan read back from JSON has lists: the map is a value, keep it hashable.
        object.__setattr__(self, "raw", tuple(
            (str(k), int(h), int(c), int(n)) for k, h, c, n in self.raw))
        self._check_raw()

    def _check_raw(self) -> None:
        """What the kernel would refuse in the map text (overlapping extents, too many of
        them, host root) or what lxmgr refuses: container ids outside [0, size) (the base
        range is the whole container), host ids inside this map's own base range (LXD's
        ErrHostIdIsSubId)."""
        seen: list[RawEntry] = []
        for entry in self.raw:
            kind, host, inside, count = entry
            where = f"Invalid raw.idmap entry '{describe_raw(entry)}'"
            if kind not in RAW_KINDS or count < 1 or host < 1 or host + count > MAX_ID \
                    or inside < 0:
                raise InvalidConfig(f"{where}: not a valid entry")
            if inside + count > self.size:
                raise InvalidConfig(f"{where}: container ids {inside}-{inside + count - 1} "
                                    f"are outside the map (container ids 0-{self.size - 1})")
            for one in _kinds(kind):
                base = self.uid_base if one == "uid" else self.gid_base
                if _meet(host, count, base, self.size):
                    raise InvalidConfig(f"{where}: host {one}s {host}-{host + count - 1} are "
                                        f"in this instance's own range ({base}-"
                                        f"{base + self.size - 1})")
            for other in seen:
                if not set(_kinds(kind)) & set(_kinds(other[0])):
                    continue
                if _meet(inside, count, other[2], other[3]):
                    raise InvalidConfig(f"{where}: its container ids overlap those of "
                                        f"'{describe_raw(other)}'")
                if _meet(host, count, other[1], other[3]):
                    raise InvalidConfig(f"{where}: its host ids overlap those of "
                                        f"'{describe_raw(other)}'")
            seen.append(entry)
        for kind in ("uid", "gid"):
            if len(self.extents(kind)) > MAX_EXTENTS:
                raise InvalidConfig(f"Invalid raw.idmap: the {kind} map would have more than "
                                    f"{MAX_EXTENTS} lines (the kernel's limit)")

    @property
    def base_map(self) -> IdMap:
        """This map without raw entries: the range the instance was given."""
        return dataclasses.replace(self, raw=()) if self.raw else self

    def raw_ranges(self, kind: str) -> list[tuple[int, int]]:
        """(first host id, count) of each raw entry for kind ('uid' or 'gid')."""
        return [(h, n) for k, h, _, n in self.raw if kind in _kinds(k)]

    def extents(self, kind: str) -> list[Extent]:
        """The lines of the uid ('uid') or gid ('gid') map, by container id."""
        return list(self._extents[kind])

    @cached_property
    def _extents(self) -> dict[str, tuple[Extent, ...]]:
        out: dict[str, tuple[Extent, ...]] = {}
        for kind in ("uid", "gid"):
            base = self.uid_base if kind == "uid" else self.gid_base
            lines: list[Extent] = []
            free = 0  # first container id not mapped yet
            for inside, host, count in sorted((c, h, n) for k, h, c, n in self.raw
                                              if kind in _kinds(k)):
                if inside > free:
                    lines.append((free, base + free, inside - free))
                lines.append((inside, host, count))
                free = inside + count
            if free < self.size:
                lines.append((free, base + free, self.size - free))
            out[kind] = tuple(lines)
        return out

    def uid_map_text(self) -> str:
        """The content for /proc/<pid>/uid_map: '0 <uid_base> <size>\\n' without raw
        entries, else one 'CONTAINER HOST COUNT' line per extent."""
        return "".join(f"{c} {h} {n}\n" for c, h, n in self._extents["uid"])

    def gid_map_text(self) -> str:
        """The content for /proc/<pid>/gid_map (as uid_map_text)."""
        return "".join(f"{c} {h} {n}\n" for c, h, n in self._extents["gid"])

    def host_uid(self, container_uid: int) -> int:
        """The host uid that container_uid maps to; InvalidConfig when outside the range."""
        return self._to_host("uid", self._check(container_uid, "uid"))

    def host_gid(self, container_gid: int) -> int:
        """The host gid that container_gid maps to; InvalidConfig when outside the range."""
        return self._to_host("gid", self._check(container_gid, "gid"))

    def container_uid(self, host_uid: int) -> int | None:
        """The container uid that host_uid shows as; None when the map has no such id."""
        return self._to_container("uid", host_uid)

    def container_gid(self, host_gid: int) -> int | None:
        """The container gid that host_gid shows as; None when the map has no such id."""
        return self._to_container("gid", host_gid)

    def _to_host(self, kind: str, value: int) -> int:
        if not self.raw:
            return (self.uid_base if kind == "uid" else self.gid_base) + value
        for inside, host, count in self._extents[kind]:
            if inside <= value < inside + count:
                return host + value - inside
        raise AssertionError("the extents cover [0, size)")  # pragma: no cover

    def _to_container(self, kind: str, value: int) -> int | None:
        for inside, host, count in self._extents[kind]:
            if host <= value < host + count:
                return inside + value - host
        return None

    def _check(self, value: int, kind: str) -> int:
        if not 0 <= value < self.size:
            raise InvalidConfig(f"Container {kind} {value} is outside the idmap "
                                f"(size {self.size})")
        return value


def describe_ids(idmap: IdMap | None) -> str:
    """'host ids 1065536-1131071' (gids too when they differ), or 'host root' (privileged)."""
    if idmap is None:
        return "host root (the instance is privileged)"
    uids = f"{idmap.uid_base}-{idmap.uid_base + idmap.size - 1}"
    if idmap.gid_base == idmap.uid_base:
        return f"host ids {uids}"
    return f"host uids {uids} and gids {idmap.gid_base}-{idmap.gid_base + idmap.size - 1}"


def overlaps(a: IdMap, b: IdMap) -> bool:
    """Whether the base ranges of two maps share a host uid or a host gid."""
    return (a.uid_base < b.uid_base + b.size and b.uid_base < a.uid_base + a.size) or \
        (a.gid_base < b.gid_base + b.size and b.gid_base < a.gid_base + a.size)


@dataclass(frozen=True)
class IdmapRequest:
    """What an instance's effective config asks of its map, as LXD's findIdmap
    (lxd/instance/drivers/driver_lxc.go) reads it: privileged instances have none; others
    share one map unless security.idmap.isolated; an isolated map has security.idmap.size ids
    (65536 when unset) from security.idmap.base (the same host id for uids and gids) or from
    the first free range. LXD ignores base and size without isolated: lxmgr refuses them.
    raw: raw.idmap's entries (parse_raw_idmap), which LXD ignores on a privileged instance
    (no user namespace): lxmgr refuses them there."""

    privileged: bool
    isolated: bool
    base: int | None = None
    size: int | None = None
    raw: tuple[RawEntry, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> IdmapRequest:
        """The request of an effective (expanded) config; InvalidConfig for base, size or
        raw.idmap that would be ignored, a size of 0 or a bad raw.idmap line."""
        privileged = _is_true(config, "security.privileged")
        isolated = _is_true(config, "security.idmap.isolated")
        numbers: dict[str, int | None] = {}
        for key in ("security.idmap.base", "security.idmap.size"):
            raw = config.get(key) or ""
            if not raw:
                numbers[key] = None
                continue
            if not raw.isdigit() or int(raw) > MAX_ID:
                raise InvalidConfig(f"Invalid {key} '{raw}': expected an unsigned 32-bit "
                                    "integer")
            numbers[key] = int(raw)
            if privileged:
                raise InvalidConfig(f"Invalid {key}: a privileged instance has no id map")
            if not isolated:
                raise InvalidConfig(f"Invalid {key}: it needs security.idmap.isolated=true")
        if numbers["security.idmap.size"] == 0:
            raise InvalidConfig("Invalid security.idmap.size 0: a map needs at least 1 id")
        raw = parse_raw_idmap(config.get("raw.idmap") or "")
        if raw and privileged:
            raise InvalidConfig("Invalid raw.idmap: a privileged instance has no id map (no "
                                "user namespace)")
        return cls(privileged, isolated, numbers["security.idmap.base"],
                   numbers["security.idmap.size"], raw)

    @property
    def map_size(self) -> int:
        return self.size or DEFAULT_SIZE

    def satisfied_by(self, current: IdMap | None, shared: IdMap) -> bool:
        """Whether an existing instance's base range (None: privileged) is what this asks,
        given the map non-isolated instances share; raw entries are not compared."""
        if self.privileged or current is None:
            return self.privileged and current is None
        current = current.base_map
        if not self.isolated:
            return current == shared
        if self.base is not None and (current.uid_base, current.gid_base) != \
                (self.base, self.base):
            return False
        return current != shared and current.size == self.map_size


def _is_true(config: Mapping[str, str], key: str) -> bool:
    """A boolean key as LXD reads it (true/1/yes/on); unset or empty is false."""
    return parse_bool(config.get(key) or "false")
