"""User-namespace id ranges: /etc/subuid parsing and per-instance allocation.
Pure parsers plus the one host write LXD's packaging also does (a default subuid range)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lxmgr.errors import HostNotReady
from lxmgr.model.idmap import IdMap

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


def pick_isolated(uid_range: SubIdRange, gid_range: SubIdRange,
                  used_bases: set[int]) -> IdMap:
    """A 65536-id block no other instance uses (security.idmap.isolated=true). The first
    block stays for the shared default map."""
    blocks = min(uid_range.count, gid_range.count) // SIZE
    for i in range(1, blocks):
        offset = i * SIZE
        if uid_range.start + offset not in used_bases:
            return IdMap(uid_range.start + offset, gid_range.start + offset, SIZE)
    raise HostNotReady("No free id range left for an isolated container: "
                       "enlarge root's ranges in /etc/subuid and /etc/subgid")


def shared_mapping(uid_range: SubIdRange, gid_range: SubIdRange) -> IdMap:
    """The default map shared by non-isolated containers (LXD's behaviour)."""
    return IdMap(uid_range.start, gid_range.start, SIZE)
