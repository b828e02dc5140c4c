"""The merged view of an overlay volume, materialized on disk without mounting anything, and
the inverse of shift.py for trees whose owners are shifted (publish and backups need both).

Imports lxmgr.errors, lxmgr.linux, lxmgr.model.idmap and lxmgr.storage.shift; never
lxmgr.instances. merge_overlay() copies the lower (the image, trusted, unshifted ids) with
`cp -a --reflink=auto`, then replays the upper on top as overlayfs would show it: a whiteout
(char 0:0) deletes, an opaque directory (trusted.overlay.opaque=y) hides what the lower had
below it, anything else replaces or merges. The upper is written by the container, so it is
hostile: every call is relative to a directory fd opened with O_NOFOLLOW or
openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), entries are replaced, never written through,
and nothing is created outside dest. redirect_dir and metacopy uppers are refused (we never
mount with those features, so such xattrs were forged). Owners, modes (setuid included),
mtimes, hard links within the upper and xattrs (but trusted.overlay.*) are kept; with an
idmap, owners, file capabilities and ACL ids move from the host range back to container ids.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import struct
from pathlib import Path

from lxmgr.errors import Conflict, InvalidConfig, KernelError, LxmgrError
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.model.idmap import IdMap
from lxmgr.storage.shift import (
    ACL_GROUP,
    ACL_USER,
    VFS_CAP_REVISION_2,
    VFS_CAP_REVISION_3,
    VFS_CAP_REVISION_MASK,
    XATTR_ACLS,
    XATTR_CAPS,
    copy_tree,
)

log = logging.getLogger(__name__)

OVERFLOW_ID = 65534  # the kernel's overflowuid/overflowgid: "nobody" inside a container
OVERLAY_XATTR_PREFIX = "trusted.overlay."
XATTR_OPAQUE = "trusted.overlay.opaque"
# Features we never mount with: an upper carrying their xattrs was not made by our mounts.
REFUSED_XATTRS = {"trusted.overlay.redirect": "redirect_dir",
                  "trusted.overlay.metacopy": "metacopy"}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_RESOLVE = c.RESOLVE_NO_SYMLINKS | c.RESOLVE_BENEATH | c.RESOLVE_NO_MAGICLINKS | c.RESOLVE_NO_XDEV
_ACL_HEADER = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")
_CHUNK = 1 << 30

Target = int | str  # an open fd, or /proc/self/fd/N for an O_PATH fd


def container_id(host_id: int, base: int, size: int) -> int | None:
    """host_id moved back into a container's range [0, size), None when outside it."""
    return host_id - base if base <= host_id < base + size else None


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
    rootid = container_id(struct.unpack_from("<I", value, 20)[0], idmap.uid_base, idmap.size)
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
            ident = _or_overflow(container_id(ident, idmap.uid_base, idmap.size))
        elif tag == ACL_GROUP:
            ident = _or_overflow(container_id(ident, idmap.gid_base, idmap.size))
        out += _ACL_ENTRY.pack(tag, perm, ident)
    return bytes(out)


def _or_overflow(value: int | None) -> int:
    return OVERFLOW_ID if value is None else value


class _Owners:
    """Maps stat owners (and caps/ACL xattrs) through an optional unshift; counts overflows."""

    def __init__(self, idmap: IdMap | None) -> None:
        self.idmap = idmap
        self.overflows = 0
        self.example = ""
        self.dropped_caps = 0

    def ids(self, st: os.stat_result, where: str) -> tuple[int, int]:
        if self.idmap is None:
            return st.st_uid, st.st_gid
        uid = container_id(st.st_uid, self.idmap.uid_base, self.idmap.size)
        gid = container_id(st.st_gid, self.idmap.gid_base, self.idmap.size)
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
        if self.overflows:
            log.warning("%s: %d entries had owners outside the idmap (first: %s); they now "
                        "belong to %d", what, self.overflows, self.example, OVERFLOW_ID)
        if self.dropped_caps:
            log.warning("%s: dropped the file capabilities of %d entries (root id outside "
                        "the idmap)", what, self.dropped_caps)


def merge_overlay(lower: Path, upper: Path, dest: Path, *, unshift: IdMap | None) -> None:
    """Write lower + upper as overlayfs merges them into dest, which must not exist.

    lower must be the unshifted image rootfs (never storage's shifted copy); upper's owners
    are moved back to container ids when unshift is given. On any error dest is removed.
    """
    try:
        os.mkdir(dest, 0o700)
    except FileExistsError:
        raise Conflict(f"Merge target '{dest}' already exists") from None
    try:
        copy_tree(lower, dest)
        _replay(upper, dest, _Owners(unshift))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _replay(upper: Path, dest: Path, owners: _Owners) -> None:
    upper_fd = os.open(upper, _DIR_FLAGS)
    try:
        dest_fd = os.open(dest, _DIR_FLAGS)
        try:
            _Merger(upper_fd, dest_fd, owners).run()
        finally:
            os.close(dest_fd)
    except OSError as err:
        where = f" at '{err.filename}'" if err.filename else ""
        raise KernelError(f"Failed to merge overlay upper '{upper}'{where}: "
                          f"{err.strerror or err}") from err
    finally:
        os.close(upper_fd)
    owners.report(f"Merge of '{upper}'")


class _Merger:
    """Replays an upper (upper_fd) onto a copy of the lower (dest_fd), breadth first;
    directory attributes are applied last, deepest first, once nothing is written in them."""

    def __init__(self, upper_fd: int, dest_fd: int, owners: _Owners) -> None:
        self.upper_fd = upper_fd
        self.dest_fd = dest_fd
        self.owners = owners
        self.links: dict[tuple[int, int], str] = {}  # upper inode -> its first dest path
        self.dirs: list[tuple[str, os.stat_result, dict[str, bytes]]] = []

    def run(self) -> None:
        st = os.fstat(self.upper_fd)
        self.dirs.append((".", st, self._xattrs(self.upper_fd, ".")[0]))
        pending = ["."]
        while pending:
            rel = pending.pop()
            ufd, dfd = self._open(self.upper_fd, rel), self._open(self.dest_fd, rel)
            try:
                for name in sorted(os.listdir(ufd)):
                    path = name if rel == "." else f"{rel}/{name}"
                    if self._entry(ufd, dfd, name, path):
                        pending.append(path)
            finally:
                os.close(ufd)
                os.close(dfd)
        for path, st, xattrs in reversed(self.dirs):
            fd = self._open(self.dest_fd, path)
            try:
                self._apply(fd, st, xattrs, path, replace_xattrs=True)
            finally:
                os.close(fd)

    @staticmethod
    def _open(root_fd: int, rel: str) -> int:
        if rel == ".":
            return os.dup(root_fd)
        return libc.openat2(root_fd, rel, _DIR_FLAGS, 0, _RESOLVE)

    def _entry(self, ufd: int, dfd: int, name: str, path: str) -> bool:
        """Replay one upper entry; True when it is a directory to descend into."""
        st = os.stat(name, dir_fd=ufd, follow_symlinks=False)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # whiteout
            _remove(dfd, name)
        elif stat.S_ISDIR(st.st_mode):
            self._dir(ufd, dfd, name, path)
            return True
        elif stat.S_ISREG(st.st_mode):
            self._file(ufd, dfd, name, path)
        elif stat.S_ISLNK(st.st_mode):
            self._symlink(ufd, dfd, name, path, st)
        else:
            self._special(ufd, dfd, name, path)
        return False

    def _dir(self, ufd: int, dfd: int, name: str, path: str) -> None:
        fd = os.open(name, _DIR_FLAGS, dir_fd=ufd)
        try:
            st = os.fstat(fd)
            xattrs, opaque = self._xattrs(fd, path)
        finally:
            os.close(fd)
        try:
            os.mkdir(name, 0o700, dir_fd=dfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                _remove(dfd, name)
                os.mkdir(name, 0o700, dir_fd=dfd)
            elif opaque:
                _clear(dfd, name)
        self.dirs.append((path, st, xattrs))

    def _file(self, ufd: int, dfd: int, name: str, path: str) -> None:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                      dir_fd=ufd)
        try:
            st = os.fstat(src)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidConfig(f"Upper entry '{path}' changed type during the merge")
            xattrs = self._xattrs(src, path)[0]
            _remove(dfd, name)
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                self._link(self.links[key], dfd, name)
                return
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                _copy_data(src, dst)
                self._apply(dst, st, xattrs, path)
            finally:
                os.close(dst)
            if st.st_nlink > 1:
                self.links[key] = path
        finally:
            os.close(src)

    def _link(self, first: str, dfd: int, name: str) -> None:
        """Hard-link name to the dest copy of an upper inode already replayed."""
        parent, _, base = first.rpartition("/")
        pfd = self._open(self.dest_fd, parent or ".")
        try:
            os.link(base, name, src_dir_fd=pfd, dst_dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(pfd)

    def _symlink(self, ufd: int, dfd: int, name: str, path: str, st: os.stat_result) -> None:
        target = os.readlink(name, dir_fd=ufd)
        _remove(dfd, name)
        os.symlink(target, name, dir_fd=dfd)
        uid, gid = self.owners.ids(st, path)
        os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)

    def _special(self, ufd: int, dfd: int, name: str, path: str) -> None:
        """Fifos, sockets and device nodes: recreated with mknod, never opened."""
        src = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=ufd)
        try:
            st = os.fstat(src)
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or \
                    stat.S_ISLNK(st.st_mode):
                raise InvalidConfig(f"Upper entry '{path}' changed type during the merge")
            xattrs = self._xattrs(f"/proc/self/fd/{src}", path)[0]
        finally:
            os.close(src)
        _remove(dfd, name)
        os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=dfd)
        dst = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            self._apply(f"/proc/self/fd/{dst}", st, xattrs, path)
        finally:
            os.close(dst)

    def _xattrs(self, target: Target, path: str) -> tuple[dict[str, bytes], bool]:
        """(xattrs to write, opaque) of an upper entry; InvalidConfig for redirect/metacopy."""
        kept: dict[str, bytes] = {}
        opaque = False
        for name in _list_xattrs(target):
            if name in REFUSED_XATTRS:
                raise InvalidConfig(f"Refusing to merge upper entry '{path}': it has overlayfs "
                                    f"{REFUSED_XATTRS[name]} metadata, which lxmgr never uses")
            value = _get_xattr(target, name)
            if value is None:
                continue
            if name.startswith(OVERLAY_XATTR_PREFIX):
                opaque = opaque or (name == XATTR_OPAQUE and value == b"y")
                continue
            mapped = self.owners.xattr(name, value)
            if mapped is not None:
                kept[name] = mapped
        return kept, opaque

    def _apply(self, target: Target, st: os.stat_result, xattrs: dict[str, bytes], path: str,
               *, replace_xattrs: bool = False) -> None:
        """Owner, then xattrs (chown drops security.capability), then mode (chown drops
        setuid), then times. replace_xattrs removes what the lower's copy had besides."""
        uid, gid = self.owners.ids(st, path)
        os.chown(target, uid, gid)
        if replace_xattrs:
            for name in _list_xattrs(target):
                if name not in xattrs:
                    os.removexattr(target, name)
        for name, value in xattrs.items():
            _set_xattr(target, name, value, path)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _remove(dfd: int, name: str) -> None:
    """Delete name under dfd whatever it is (a directory recursively); missing is fine."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dfd)  # the fd-based variant: never follows symlinks
    else:
        os.unlink(name, dir_fd=dfd)


def _clear(dfd: int, name: str) -> None:
    """Empty the directory name under dfd (an opaque upper directory hides it all)."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
    try:
        for child in os.listdir(fd):
            _remove(fd, child)
    finally:
        os.close(fd)


def _copy_data(src: int, dst: int) -> None:
    """Copy a regular file's bytes; copy_file_range shares extents where the fs can."""
    try:
        while os.copy_file_range(src, dst, _CHUNK):
            pass
        return
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    os.lseek(src, 0, os.SEEK_SET)
    os.lseek(dst, 0, os.SEEK_SET)
    os.ftruncate(dst, 0)
    while chunk := os.read(src, 1 << 20):
        os.write(dst, chunk)


def _list_xattrs(target: Target) -> list[str]:
    try:
        return os.listxattr(target)
    except OSError as err:
        if err.errno == errno.EOPNOTSUPP:
            return []
        raise


def _get_xattr(target: Target, name: str) -> bytes | None:
    try:
        return os.getxattr(target, name)
    except OSError as err:
        if err.errno in (errno.ENODATA, errno.EOPNOTSUPP):
            return None
        raise


def _set_xattr(target: Target, name: str, value: bytes, path: str) -> None:
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
    owners = _Owners(idmap)
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


def _unshift_entry(dirfd: int, name: str, st: os.stat_result, owners: _Owners,
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
        saved = {n: v for n in (XATTR_CAPS, *XATTR_ACLS) if (v := _get_xattr(target, n))}
        os.chown(target, uid, gid)
        for xname, value in saved.items():
            mapped = owners.xattr(xname, value)
            if mapped is None:
                if xname != XATTR_CAPS:
                    os.removexattr(target, xname)
                continue
            _set_xattr(target, xname, mapped, path)
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(target, stat.S_IMODE(st.st_mode))
    finally:
        os.close(fd)
