"""User-namespace id ranges: /etc/subuid parsing and per-instance allocation (the shared
map, isolated maps found or placed at security.idmap.base, raw.idmap's host ids kept out of
every instance's range, the refusal of a map change).
Pure parsers plus reads of /etc/subuid|subgid and the one host write LXD's packaging also
does (a default subuid range)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lxmgr.errors import Conflict, HostNotReady, InvalidConfig, NotSupported
from lxmgr.model.idmap import (
    IDMAP_KEYS,
    IdMap,
    IdmapRequest,
    describe_ids,
    describe_raw,
    overlaps,
)

DEFAULT_RANGE = (1000000, 1000000000)  # LXD's fallback when root has no subuid entry
SIZE = 65536


@dataclass(frozen=True)
class SubIdRange:
    start: int
    count: int


def parse_subid(text: str, user: str = "root") -> list[SubIdRange]:
    """Parse /etc/subuid or /etc/subgid lines for `user` (name or uid 0)."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, "0") and parts[1].isdigit() \
                and parts[2].isdigit():
            out.append(SubIdRange(int(parts[1]), int(parts[2])))
    return out


def ensure_subids(etc: str = "/etc") -> tuple[SubIdRange, SubIdRange]:
    """Root's first usable subuid/subgid ranges; add root:1000000:1000000000 (as LXD's
    packaging does) when root has none."""
    ranges = []
    for kind in ("subuid", "subgid"):
        path = os.path.join(etc, kind)
        text = Path(path).read_text() if os.path.exists(path) else ""
        found = [r for r in parse_subid(text) if r.count >= SIZE]
        if not found:
            with open(path, "a") as f:
                if text and not text.endswith("\n"):
                    f.write("\n")
                f.write(f"root:{DEFAULT_RANGE[0]}:{DEFAULT_RANGE[1]}\n")
            found = [SubIdRange(*DEFAULT_RANGE)]
        ranges.append(found[0])
    return ranges[0], ranges[1]


def root_subids(etc: str = "/etc") -> tuple[list[SubIdRange], list[SubIdRange]]:
    """All of root's subordinate uid and gid ranges, adjacent or overlapping ones merged."""
    out = []
    for kind in ("subuid", "subgid"):
        path = os.path.join(etc, kind)
        text = Path(path).read_text() if os.path.exists(path) else ""
        merged: list[SubIdRange] = []
        for r in sorted(parse_subid(text), key=lambda r: r.start):
            if merged and r.start <= merged[-1].start + merged[-1].count:
                last = merged.pop()
                end = max(last.start + last.count, r.start + r.count)
                r = SubIdRange(last.start, end - last.start)
            merged.append(r)
        out.append(merged)
    return out[0], out[1]


def pick_isolated(uid_range: SubIdRange, gid_range: SubIdRange, used: Iterable[IdMap],
                  size: int = SIZE) -> IdMap:
    """The first `size` ids (at the same offset in both ranges) no instance's map uses
    (security.idmap.isolated=true without a base; LXD's findIdmap searches the same way).
    The first SIZE ids stay for the shared default map, and host ids an instance's raw.idmap
    maps in are not given to another."""
    offset = SIZE
    used = list(used)
    taken = sorted({(m.uid_base - uid_range.start, m.uid_base + m.size - uid_range.start)
                    for m in used} |
                   {(m.gid_base - gid_range.start, m.gid_base + m.size - gid_range.start)
                    for m in used} |
                   {(h - uid_range.start, h + n - uid_range.start)
                    for m in used for h, n in m.raw_ranges("uid")} |
                   {(h - gid_range.start, h + n - gid_range.start)
                    for m in used for h, n in m.raw_ranges("gid")})
    for low, high in taken:
        if high <= offset:
            continue
        if low >= offset + size:
            break
        offset = high
    if offset + size > min(uid_range.count, gid_range.count):
        raise HostNotReady(f"No free range of {size} ids left for an isolated container: "
                           "enlarge root's ranges in /etc/subuid and /etc/subgid")
    return IdMap(uid_range.start + offset, gid_range.start + offset, size)


def place_isolated(base: int, size: int, uid_ranges: list[SubIdRange],
                   gid_ranges: list[SubIdRange], shared: IdMap,
                   used: Mapping[str, IdMap]) -> IdMap:
    """The map security.idmap.base asks for: uids and gids from base (as LXD maps them),
    inside one of root's ranges in /etc/subuid and /etc/subgid (InvalidConfig) and sharing
    no id with the shared map or another instance's map (Conflict). LXD checks neither."""
    last = base + size - 1
    for kind, ranges in (("subuid", uid_ranges), ("subgid", gid_ranges)):
        if not any(r.start <= base and last < r.start + r.count for r in ranges):
            raise InvalidConfig(f"Invalid security.idmap.base {base}: host ids {base}-{last} "
                                f"are not inside one of root's ranges in /etc/{kind}")
    idmap = IdMap(base, base, size)
    if overlaps(idmap, shared):
        raise Conflict(f"Invalid security.idmap.base {base}: host ids {base}-{last} overlap "
                       f"the map instances without isolation share ({describe_ids(shared)})")
    for name, other in sorted(used.items()):
        if other.base_map != shared and overlaps(idmap, other):
            raise Conflict(f"Invalid security.idmap.base {base}: host ids {base}-{last} "
                           f"overlap those of instance '{name}' ({describe_ids(other)})")
        for entry in other.raw:
            if entry[1] < base + size and base < entry[1] + entry[3]:
                raise Conflict(f"Invalid security.idmap.base {base}: host ids {base}-{last} "
                               f"overlap the raw.idmap of instance '{name}' "
                               f"('{describe_raw(entry)}')")
    return idmap


def check_raw(idmap: IdMap, shared: IdMap, others: Mapping[str, IdMap]) -> None:
    """raw.idmap's host ids must be no instance's own: outside the map instances without
    isolation share and the isolated range of each of the other instances, `others`
    (Conflict naming the entry and the instance). LXD only checks the instance's own range
    (IdMap does that too); sharing one host id between instances through raw.idmap is what
    it is for.

    The host ids need not be in root's ranges in /etc/subuid and /etc/subgid (LXD's docs ask
    that of non-snap installs, whose LXC may write the map through newuidmap): lxmgr writes
    uid_map as host root, whom the kernel lets map any id (user_namespaces(7), "Defining
    user and group ID mappings"), as LXD's snap does."""
    others = [("the map instances without isolation share", shared)] + \
        [(f"instance '{n}'", m) for n, m in sorted(others.items()) if m.base_map != shared]
    for entry in idmap.raw:
        kind, host, _, count = entry
        for one in ("uid", "gid") if kind == "both" else (kind,):
            for who, other in others:
                base = other.uid_base if one == "uid" else other.gid_base
                if host < base + other.size and base < host + count:
                    raise Conflict(f"Invalid raw.idmap entry '{describe_raw(entry)}': host "
                                   f"{one}s {host}-{host + count - 1} belong to {who} "
                                   f"({describe_ids(other.base_map)})")


def check_change(name: str, current: IdMap | None, old: Mapping[str, str],
                 new: Mapping[str, str]) -> None:
    """Refuse (NotSupported) an effective config change that asks instance `name` for
    another id map than `current` (None: privileged): its files belong to that map.

    LXD accepts the change and shifts the instance's files at its next start
    (volatile.idmap.next); lxmgr has no re-shifting of volumes and snapshots, so the map
    stays what creation chose. Changes that keep the map (or touch no idmap key) pass."""
    changed = [key for key in IDMAP_KEYS if old.get(key) != new.get(key)]
    if not changed:
        return
    request = IdmapRequest.from_config(new)
    kept = current is None if request.privileged else \
        request.satisfied_by(current, shared_mapping(*ensure_subids()))
    if not kept:
        raise NotSupported(f"Instance '{name}' cannot change {changed[0]}: its files belong "
                           f"to {describe_ids(current)} and lxmgr does not shift them to "
                           "another id map")


def shared_mapping(uid_range: SubIdRange, gid_range: SubIdRange) -> IdMap:
    """The default map shared by non-isolated containers (LXD's behaviour)."""
    return IdMap(uid_range.start, gid_range.start, SIZE)
