"""PURE user-namespace id mapping: container ids [0, size) -> host ids [base, base + size).

Imports only lxmgr.errors. The same map text is written to /proc/<pid>/uid_map and gid_map.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxmgr.errors import InvalidConfig

MAX_ID = 2**32 - 1  # (uid_t)-1 is reserved by the kernel


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
