"""User-namespace id maps: /etc/subuid ranges, per-instance allocation, userns fds for
idmapped mounts. Pure parsers plus the few host writes LXD also does."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lxmgr.errors import HostNotReady
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.runtime.plan import IdMapping

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
        text = open(path).read() if os.path.exists(path) else ""
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
                  used_bases: set[int]) -> IdMapping:
    """A 65536-id block no other instance uses (security.idmap.isolated=true). The first
    block stays for the shared default map."""
    blocks = min(uid_range.count, gid_range.count) // SIZE
    for i in range(1, blocks):
        offset = i * SIZE
        if uid_range.start + offset not in used_bases:
            return IdMapping(uid_range.start + offset, gid_range.start + offset, SIZE)
    raise HostNotReady("No free id range left for an isolated container: "
                       "enlarge root's ranges in /etc/subuid and /etc/subgid")


def shared_mapping(uid_range: SubIdRange, gid_range: SubIdRange) -> IdMapping:
    """The default map shared by non-isolated containers (LXD's behaviour)."""
    return IdMapping(uid_range.start, gid_range.start, SIZE)


def write_maps(pid: int, idmap: IdMapping) -> None:
    """Write uid_map and gid_map of a process that has unshared its user namespace."""
    for name, text in (("uid_map", idmap.uid_map()), ("gid_map", idmap.gid_map())):
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def open_userns_fd(idmap: IdMapping) -> int:
    """A user namespace fd carrying `idmap`, for MOUNT_ATTR_IDMAP (kernel-facts §1).

    Forks a child that unshares CLONE_NEWUSER and waits; the fd keeps the namespace alive
    after the child exits. The caller must be single-threaded."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        try:
            os.close(ready_r)
            os.close(go_w)
            libc.unshare(c.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise HostNotReady("Failed to create a user namespace: are user namespaces enabled?")
        write_maps(pid, idmap)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(go_w)
        os.close(ready_r)
        os.waitpid(pid, 0)
