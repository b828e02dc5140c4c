"""The merged view of an overlay volume, materialized on disk without mounting anything
(publish and backups of overlay instances).

Imports lxmgr.errors, lxmgr.linux, lxmgr.model.idmap and lxmgr.storage.shift/unshift; never
lxmgr.instances. merge_overlay() copies the lower (the image, trusted, unshifted ids) with
`cp -a --reflink=auto`, then replays the upper on top as overlayfs would show it: a whiteout
(char 0:0) deletes, an opaque directory (trusted.overlay.opaque=y) hides what the lower had
below it, anything else replaces or merges. The upper is written by the container, so it is
hostile: every call is relative to a directory fd opened with O_NOFOLLOW or
openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), entries are replaced, never written through,
and nothing is created outside dest. redirect_dir and metacopy uppers are refused (we never
mount with those features, so such xattrs were forged). Owners, modes (setuid included),
mtimes, hard links within the upper and xattrs (but trusted.overlay.*) are kept; with an
idmap, owners, file capabilities and ACL ids move from the host range back to container ids
(unshift.py, whose unshift_tree() is re-exported here).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from lxmgr.errors import Conflict, InvalidConfig, KernelError
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.model.idmap import IdMap
from lxmgr.storage.shift import copy_tree
from lxmgr.storage.unshift import (
    OVERFLOW_ID,
    Owners,
    Target,
    get_xattr,
    list_xattrs,
    set_xattr,
    unshift_acl,
    unshift_caps,
    unshift_tree,
)

__all__ = ["OVERFLOW_ID", "merge_overlay", "unshift_acl", "unshift_caps", "unshift_tree"]

OVERLAY_XATTR_PREFIX = "trusted.overlay."
XATTR_OPAQUE = "trusted.overlay.opaque"
# Features we never mount with: an upper carrying their xattrs was not made by our mounts.
REFUSED_XATTRS = {"trusted.overlay.redirect": "redirect_dir",
                  "trusted.overlay.metacopy": "metacopy"}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_RESOLVE = c.RESOLVE_NO_SYMLINKS | c.RESOLVE_BENEATH | c.RESOLVE_NO_MAGICLINKS | c.RESOLVE_NO_XDEV
_CHUNK = 1 << 30


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
        _replay(upper, dest, Owners(unshift))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _replay(upper: Path, dest: Path, owners: Owners) -> None:
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

    def __init__(self, upper_fd: int, dest_fd: int, owners: Owners) -> None:
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
        for name in list_xattrs(target):
            if name in REFUSED_XATTRS:
                raise InvalidConfig(f"Refusing to merge upper entry '{path}': it has overlayfs "
                                    f"{REFUSED_XATTRS[name]} metadata, which lxmgr never uses")
            value = get_xattr(target, name)
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
            for name in list_xattrs(target):
                if name not in xattrs:
                    os.removexattr(target, name)
        for name, value in xattrs.items():
            set_xattr(target, name, value, path)
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
