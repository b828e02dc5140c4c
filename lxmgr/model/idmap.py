"""PURE user-namespace id mapping: container ids [0, size) -> host ids [base, base + size),
and what an instance's config asks of its map (IdmapRequest).

Imports only lxmgr.errors. The same map text is written to /proc/<pid>/uid_map and gid_map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lxmgr.errors import InvalidConfig
from lxmgr.model.units import parse_bool

MAX_ID = 2**32 - 1  # (uid_t)-1 is reserved by the kernel
DEFAULT_SIZE = 65536  # LXD's size of an isolated map when security.idmap.size is unset
# The keys that decide an instance's map (LXD's findIdmap reads the same, plus raw.idmap).
IDMAP_KEYS = ("security.privileged", "security.idmap.isolated", "security.idmap.base",
              "security.idmap.size")


@dataclass(frozen=True)
class IdMap:
    """One contiguous range for uids and one for gids, both starting at container id 0."""

    uid_base: int
    gid_base: int
    size: int = 65536

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InvalidConfig(f"Invalid idmap size {self.size}: must be at least 1")
        for name, base in (("uid_base", self.uid_base), ("gid_base", self.gid_base)):
            if base < 1 or base + self.size > MAX_ID:
                raise InvalidConfig(f"Invalid idmap {name} {base}: the range must lie in "
                                    f"[1, {MAX_ID}) and must not include host root")

    def uid_map_text(self) -> str:
        """'0 <uid_base> <size>\\n', the content for /proc/<pid>/uid_map."""
        return f"0 {self.uid_base} {self.size}\n"

    def gid_map_text(self) -> str:
        """'0 <gid_base> <size>\\n', the content for /proc/<pid>/gid_map."""
        return f"0 {self.gid_base} {self.size}\n"

    def host_uid(self, container_uid: int) -> int:
        """The host uid that container_uid maps to; InvalidConfig when outside the range."""
        return self.uid_base + self._check(container_uid, "uid")

    def host_gid(self, container_gid: int) -> int:
        """The host gid that container_gid maps to; InvalidConfig when outside the range."""
        return self.gid_base + self._check(container_gid, "gid")

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
    """Whether two maps share a host uid or a host gid."""
    return (a.uid_base < b.uid_base + b.size and b.uid_base < a.uid_base + a.size) or \
        (a.gid_base < b.gid_base + b.size and b.gid_base < a.gid_base + a.size)


@dataclass(frozen=True)
class IdmapRequest:
    """What an instance's effective config asks of its map, as LXD's findIdmap
    (lxd/instance/drivers/driver_lxc.go) reads it: privileged instances have none; others
    share one map unless security.idmap.isolated; an isolated map has security.idmap.size ids
    (65536 when unset) from security.idmap.base (the same host id for uids and gids) or from
    the first free range. LXD ignores base and size without isolated: lxmgr refuses them."""

    privileged: bool
    isolated: bool
    base: int | None = None
    size: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> IdmapRequest:
        """The request of an effective (expanded) config; InvalidConfig for base or size that
        would be ignored, or a size of 0."""
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
        return cls(privileged, isolated, numbers["security.idmap.base"],
                   numbers["security.idmap.size"])

    @property
    def map_size(self) -> int:
        return self.size or DEFAULT_SIZE

    def satisfied_by(self, current: IdMap | None, shared: IdMap) -> bool:
        """Whether an existing instance's map (None: privileged) is what this asks, given
        the map non-isolated instances share."""
        if self.privileged or current is None:
            return self.privileged and current is None
        if not self.isolated:
            return current == shared
        if self.base is not None and (current.uid_base, current.gid_base) != \
                (self.base, self.base):
            return False
        return current != shared and current.size == self.map_size


def _is_true(config: Mapping[str, str], key: str) -> bool:
    """A boolean key as LXD reads it (true/1/yes/on); unset or empty is false."""
    return parse_bool(config.get(key) or "false")
