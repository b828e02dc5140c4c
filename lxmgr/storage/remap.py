"""Whether a tree kept shifted on disk (host ids: an overlay upper, a volume shifted without
idmapped mounts) reads the same inside the container through another id map.

Imports lxmgr.errors, lxmgr.model.idmap and lxmgr.storage.shift; never lxmgr.instances.
A map change that leaves every owner, group, POSIX ACL entry and file capability root id of
such a tree at the same container id needs no re-shifting; lxmgr has none, so a change that
moves one is refused instead (LXD re-shifts the rootfs at the next start, comparing
volatile.last_state.idmap with volatile.idmap.next).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

from lxmgr.errors import KernelError
from lxmgr.model.idmap import IdMap
from lxmgr.storage.shift import (
    ACL_GROUP,
    ACL_USER,
    VFS_CAP_REVISION_3,
    VFS_CAP_REVISION_MASK,
    XATTR_ACLS,
    XATTR_CAPS,
)

_ACL_HEADER = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")


class _Moved:
    """Which host ids show as another container id (or stop or start showing) through new
    than through old; answers are cached, a tree has few distinct ids."""

    def __init__(self, old: IdMap, new: IdMap) -> None:
        self.old, self.new = old, new
        self.cache: dict[tuple[str, int], bool] = {}

    def __call__(self, kind: str, host_id: int) -> bool:
        key = (kind, host_id)
        if key not in self.cache:
            if kind == "uid":
                self.cache[key] = self.old.container_uid(host_id) != \
                    self.new.container_uid(host_id)
            else:
                self.cache[key] = self.old.container_gid(host_id) != \
                    self.new.container_gid(host_id)
        return self.cache[key]

    def describe(self, kind: str, host_id: int) -> str:
        shown = [m.container_uid(host_id) if kind == "uid" else m.container_gid(host_id)
                 for m in (self.old, self.new)]
        old, new = ("none" if c is None else str(c) for c in shown)
        return f"host {kind} {host_id} (container {kind} {old} now, {new} after)"


def first_moved(root: Path, old: IdMap, new: IdMap) -> str | None:
    """'<path relative to root>: its owner host uid 1001000 (container uid 1000 now, none
    after)' for the first entry under root whose ids read differently through new than
    through old; None when none does (or root does not exist)."""
    if not os.path.lexists(root):
        return None
    moved = _Moved(old, new)
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in (".", *dirnames, *filenames):
                path = dirpath if name == "." else os.path.join(dirpath, name)
                found = _entry(path, moved)
                if found:
                    return f"'{os.path.relpath(path, root)}': {found}"
    except OSError as err:
        raise KernelError(f"Failed to read the owners under '{root}': "
                          f"{err.strerror or err}") from err
    return None


def _entry(path: str, moved: _Moved) -> str | None:
    st = os.lstat(path)
    if moved("uid", st.st_uid):
        return f"its owner {moved.describe('uid', st.st_uid)}"
    if moved("gid", st.st_gid):
        return f"its group {moved.describe('gid', st.st_gid)}"
    if stat.S_ISLNK(st.st_mode):
        return None  # no ACLs or file capabilities on symlinks
    try:
        names = set(os.listxattr(path, follow_symlinks=False))
    except OSError as err:
        if err.errno != errno.EOPNOTSUPP:
            raise
        names = set()  # a filesystem without xattrs
    for name in XATTR_ACLS:
        if name in names:
            found = _acl(os.getxattr(path, name, follow_symlinks=False), moved)
            if found:
                return f"its ACL names {found}"
    if XATTR_CAPS in names:
        value = os.getxattr(path, XATTR_CAPS, follow_symlinks=False)
        if len(value) >= 24 and \
                struct.unpack_from("<I", value)[0] & VFS_CAP_REVISION_MASK == VFS_CAP_REVISION_3:
            rootid = struct.unpack_from("<I", value, 20)[0]
            if moved("uid", rootid):
                return f"its file capabilities belong to {moved.describe('uid', rootid)}"
    return None


def _acl(value: bytes, moved: _Moved) -> str | None:
    for off in range(_ACL_HEADER.size, len(value) - _ACL_ENTRY.size + 1, _ACL_ENTRY.size):
        tag, _, ident = _ACL_ENTRY.unpack_from(value, off)
        if tag == ACL_USER and moved("uid", ident):
            return moved.describe("uid", ident)
        if tag == ACL_GROUP and moved("gid", ident):
            return moved.describe("gid", ident)
    return None
