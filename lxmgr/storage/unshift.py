"""The inverse of shift.py: host ids of a shifted tree back to container ids, in owners,
file capabilities (v3 rootid) and POSIX ACLs; ids outside the map become 65534 (nobody).

Imports lxmgr.errors, lxmgr.model.idmap and lxmgr.storage.shift; never lxmgr.instances. Used
by merge.py (an overlay upper) and on its own by unshift_tree() (the state of a dir or btrfs
volume kept shifted on disk). Entries are reached through dir fds and O_PATH|O_NOFOLLOW fds
(their /proc/self/fd path for xattr calls): the tree is container-written.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
from pathlib import Path

from lxmgr.errors import InvalidConfig, KernelError, LxmgrError
from lxmgr.model.idmap import IdMap
from lxmgr.storage.shift import (
    ACL_GROUP,
    ACL_USER,
    VFS_CAP_REVISION_2,
    VFS_CAP_REVISION_3,
    VFS_CAP_REVISION_MASK,
    XATTR_ACLS,
    XATTR_CAPS,
)

log = logging.getLogger(__name__)

OVERFLOW_ID = 65534  # the kernel's overflowuid/overflowgid: "nobody" inside a container
_ACL_HEADER = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")

Target = int | str  # an open fd, or /proc/self/fd/N for an O_PATH fd


def unshift_caps(value: bytes, idmap: IdMap) -> bytes | None:
    """The inverse of shift.shift_caps: a v3 value whose rootid is container root becomes v2,
    another in-range rootid is unshifted; None (drop the caps) for a rootid outside the map
    or an unknown revision, since such caps could not apply inside the container either."""
    if len(value) < 4:
        return None
    (magic,) = struct.unpack_from("<I", value)
    revision, flags = magic & VFS_CAP_REVISION_MASK, magic & ~VFS_CAP_REVISION_MASK
    if revision == VFS_CAP_REVISION_2 and len(value) >= 20:
        return value[:20]
    if revision != VFS_CAP_REVISION_3 or len(value) < 24:
        return None
    rootid = idmap.container_uid(struct.unpack_from("<I", value, 20)[0])
    if rootid is None:
        return None
    if rootid == 0:
        return struct.pack("<I", VFS_CAP_REVISION_2 | flags) + value[4:20]
    return value[:20] + struct.pack("<I", rootid)


def unshift_acl(value: bytes, idmap: IdMap) -> bytes:
    """The inverse of shift.shift_acl: ACL_USER/ACL_GROUP ids back to container ids (ids
    outside the map become 65534)."""
    out = bytearray(value[: _ACL_HEADER.size])
    for off in range(_ACL_HEADER.size, len(value) - _ACL_ENTRY.size + 1, _ACL_ENTRY.size):
        tag, perm, ident = _ACL_ENTRY.unpack_from(value, off)
        if tag == ACL_USER:
            ident = _or_overflow(idmap.container_uid(ident))
        elif tag == ACL_GROUP:
            ident = _or_overflow(idmap.container_gid(ident))
        out += _ACL_ENTRY.pack(tag, perm, ident)
    return bytes(out)


def _or_overflow(value: int | None) -> int:
    return OVERFLOW_ID if value is None else value


class Owners:
    """Maps stat owners (and caps/ACL xattrs) through an optional unshift; counts overflows."""

    def __init__(self, idmap: IdMap | None) -> None:
        self.idmap = idmap
        self.overflows = 0
        self.example = ""
        self.dropped_caps = 0

    def ids(self, st: os.stat_result, where: str) -> tuple[int, int]:
        """(uid, gid) to write for an entry whose stat is st."""
        if self.idmap is None:
            return st.st_uid, st.st_gid
        uid = self.idmap.container_uid(st.st_uid)
        gid = self.idmap.container_gid(st.st_gid)
        if uid is None or gid is None:
            self.overflows += 1
            self.example = self.example or f"'{where}' ({st.st_uid}:{st.st_gid})"
        return _or_overflow(uid), _or_overflow(gid)

    def xattr(self, name: str, value: bytes) -> bytes | None:
        """The value to write for xattr name, None to drop it."""
        if self.idmap is None:
            return value
        if name == XATTR_CAPS:
            caps = unshift_caps(value, self.idmap)
            self.dropped_caps += caps is None
            return caps
        if name in XATTR_ACLS:
            return unshift_acl(value, self.idmap)
        return value

    def report(self, what: str) -> None:
        """One warning for all the ids and caps that could not be mapped."""
        if self.overflows:
            log.warning("%s: %d entries had owners outside the idmap (first: %s); they now "
                        "belong to %d", what, self.overflows, self.example, OVERFLOW_ID)
        if self.dropped_caps:
            log.warning("%s: dropped the file capabilities of %d entries (root id outside "
                        "the idmap)", what, self.dropped_caps)


def list_xattrs(target: Target) -> list[str]:
    """Xattr names of target ([] where the filesystem has none)."""
    try:
        return os.listxattr(target)
    except OSError as err:
        if err.errno == errno.EOPNOTSUPP:
            return []
        raise


def get_xattr(target: Target, name: str) -> bytes | None:
    """An xattr's value, None when it is absent."""
    try:
        return os.getxattr(target, name)
    except OSError as err:
        if err.errno in (errno.ENODATA, errno.EOPNOTSUPP):
            return None
        raise


def set_xattr(target: Target, name: str, value: bytes, path: str) -> None:
    """Set an xattr; one the filesystem refuses is dropped with a warning naming path."""
    try:
        os.setxattr(target, name, value)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EPERM):
            raise
        log.warning("Dropped xattr %s of '%s': %s", name, path, err.strerror)


def unshift_tree(root: Path, idmap: IdMap) -> None:
    """Move every owner under root (root included) from idmap's host range back to container
    ids, in place, with file caps and ACLs: the inverse of shift.shift_tree, for the state of
    a dir or btrfs volume kept shifted on disk (copy it first: this rewrites root)."""
    owners = Owners(idmap)
    seen: set[tuple[int, int]] = set()
    root_dev = os.lstat(root).st_dev
    try:
        for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
            for name in (".", *dirnames, *filenames):
                path = os.path.relpath(os.path.join(dirpath, name), root)
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if st.st_dev != root_dev:
                    raise InvalidConfig(f"Refusing to unshift '{root}': '{path}' is on "
                                        "another filesystem")
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    _unshift_entry(dirfd, name, st, owners, path)
    except OSError as err:
        raise KernelError(f"Failed to unshift '{root}': {err.strerror or err}") from err
    owners.report(f"Unshift of '{root}'")


def _unshift_entry(dirfd: int, name: str, st: os.stat_result, owners: Owners,
                   path: str) -> None:
    uid, gid = owners.ids(st, path)
    if stat.S_ISLNK(st.st_mode):
        os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
        return
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        target = f"/proc/self/fd/{fd}"
        if os.fstat(fd).st_ino != st.st_ino:
            raise LxmgrError(f"Entry '{path}' changed during the unshift")
        saved = {n: v for n in (XATTR_CAPS, *XATTR_ACLS) if (v := get_xattr(target, n))}
        os.chown(target, uid, gid)
        for xname, value in saved.items():
            mapped = owners.xattr(xname, value)
            if mapped is None:
                if xname != XATTR_CAPS:
                    os.removexattr(target, xname)
                continue
            set_xattr(target, xname, mapped, path)
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(target, stat.S_IMODE(st.st_mode))
    finally:
        os.close(fd)
