"""Untrusted tar archives: safe extraction and checks of trees other tools unpacked
(deterministic writing is in archive_write.py).

Imports lxmgr.errors and lxmgr.linux only (never instances, daemon or cli). Extraction runs
as root and keeps owners, modes (setuid/setgid/sticky included), mtimes, hard links,
symlinks (targets are never resolved: `/etc/foo` is a normal target inside a rootfs) and the
xattrs in ALLOWED_XATTRS. Every filesystem call is relative to a directory fd opened with
O_NOFOLLOW or openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH), so no order of crafted members
can write outside the destination. Leading '/'s of member and hard-link names are stripped,
as GNU tar does by default (--absolute-names off) and as LXD's unpacker does by running it, so
'/rootfs/etc/inittab' lands in dest/rootfs/etc/inittab. Anything unsafe (`..` names, members
under a symlink, hard links to anything but an already extracted regular file, devices, fifos,
unbounded sizes, a directory replaced by a file) raises a one-line InvalidConfig naming the
member, and the partial destination is removed.

Compression is detected by magic: gzip, xz and bzip2 through the standard library, zstd
through the `zstd` command (Debian package zstd; the Python modules are not installed here).
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import logging
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from lxmgr.errors import Conflict, InvalidConfig, LxmgrError, NotSupported
from lxmgr.linux import consts as c
from lxmgr.linux import libc

log = logging.getLogger(__name__)

GIB = 1 << 30
# Kept on extraction and export. trusted.* is dropped on purpose: overlayfs interprets
# trusted.overlay.* (opaque, redirect, metacopy) on the lower layer an image becomes.
ALLOWED_XATTRS = ("user.", "security.capability", "system.posix_acl_access",
                  "system.posix_acl_default")
MAX_HEADER_BYTES = 1 << 20  # pax / GNU long-name headers: tarfile reads them whole into memory
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_RESOLVE = c.RESOLVE_NO_SYMLINKS | c.RESOLVE_BENEATH | c.RESOLVE_NO_MAGICLINKS | c.RESOLVE_NO_XDEV
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"),
          (b"\x28\xb5\x2f\xfd", "zstd"))
_SUFFIX = {"gzip": ".tar.gz", "xz": ".tar.xz", "none": ".tar"}
_HOST_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})
_LONG_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                 tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


@dataclass(frozen=True)
class Limits:
    """Bounds on what an archive may expand to (generous defaults, override per call)."""

    max_bytes: int = 64 * GIB
    max_entries: int = 4_000_000
    max_member_bytes: int = 16 * GIB


@dataclass(frozen=True)
class TreeStats:
    """What an extraction or a tree check saw: entries, regular-file bytes, compression."""

    entries: int
    size: int
    compression: str = "none"


_Writer = Callable[[tarfile.TarFile, tarfile.TarInfo, int, str, str], None]


class _Reject(Exception):
    """A refused member; extract_archive turns it into one InvalidConfig line."""

    def __init__(self, member: str, why: str) -> None:
        super().__init__(f"member '{member}' {why}")


def detect_compression(head: bytes) -> str:
    """gzip, xz, bzip2, zstd or none, from the first bytes of a file."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def suffix_for(compression: str) -> str:
    """The file suffix export uses for a compression (.tar.gz, .tar.xz, .tar)."""
    try:
        return _SUFFIX[compression]
    except KeyError:
        raise InvalidConfig(f"Unknown compression '{compression}' "
                            f"(expected one of {', '.join(_SUFFIX)})") from None


def member_path(name: str) -> str:
    """Normalize an archive member name to a path relative to the destination ('.' for the
    root): leading '/'s are dropped (GNU tar's "Removing leading '/' from member names");
    _Reject if a '..' component remains, so '/../x' is refused like '../x'."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Reject(name, "has a '..' component")
    return "/".join(parts) or "."


@contextlib.contextmanager
def open_decompressed(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """(compression, decompressed stream) of a file; zstd runs `zstd -dc` as a child."""
    with open(path, "rb") as raw:
        kind = detect_compression(raw.read(8))
        raw.seek(0)
        if kind == "zstd":
            with _zstd_stream(raw) as stream:
                yield kind, stream
            return
        opener = {"gzip": gzip.GzipFile, "xz": lzma.LZMAFile, "bzip2": bz2.BZ2File}.get(kind)
        if opener is None:
            yield kind, raw
            return
        with opener(fileobj=raw) if kind == "gzip" else opener(raw) as stream:
            yield kind, stream


@contextlib.contextmanager
def _zstd_stream(raw: BinaryIO) -> Iterator[IO[bytes]]:
    argv = ["zstd", "-d", "-c", "-q", "--no-progress"]
    os.lseek(raw.fileno(), 0, os.SEEK_SET)  # the buffered reader may have read ahead
    log.debug("run: %s", " ".join(argv))
    try:
        proc = subprocess.Popen(argv, stdin=raw, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    except FileNotFoundError as err:
        raise NotSupported("zstd archives need the zstd command (apt install zstd)") from err
    try:
        assert proc.stdout is not None
        yield proc.stdout
    finally:
        if proc.stdout:
            proc.stdout.close()
        if proc.poll() is None:  # the tar ended before the stream did, or we failed
            proc.kill()
        proc.wait()


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads pax and GNU long-name headers whole into memory: cap them first."""

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _LONG_HEADERS and self.size > MAX_HEADER_BYTES:
            raise _Reject(self.name, f"has a {self.size}-byte extended header")
        return super()._proc_member(tf)  # type: ignore[misc, no-any-return]


def extract_archive(src: Path, dest: Path, *, limits: Limits | None = None,
                    allow_whiteouts: bool = False, root_mode: int = 0o755) -> TreeStats:
    """Extract the untrusted tar src into dest, which must not exist (Conflict otherwise).

    dest gets the '.' member's attributes, else root_mode. allow_whiteouts admits char 0:0
    nodes (overlay whiteouts). On any error dest is removed and InvalidConfig names the member.
    """
    limits = limits or Limits()
    try:
        os.mkdir(dest, 0o700)
    except FileExistsError:
        raise Conflict(f"Extraction target '{dest}' already exists") from None
    try:
        rootfd = os.open(dest, _DIR_FLAGS)
        try:
            return _extract_into(src, rootfd, limits, allow_whiteouts, root_mode)
        finally:
            os.close(rootfd)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _extract_into(src: Path, rootfd: int, limits: Limits, allow_whiteouts: bool,
                  root_mode: int) -> TreeStats:
    extractor = _Extractor(rootfd, limits, allow_whiteouts)
    try:
        with open_decompressed(src) as (kind, stream), \
                tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as tf:
            for member in tf:
                extractor.add(tf, member)
            extractor.finish(root_mode)
    except _Reject as err:
        raise InvalidConfig(f"Refusing archive '{src.name}': {err}") from None
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error, RecursionError,
            UnicodeError) as err:
        raise InvalidConfig(f"Archive '{src.name}' is not a valid tar archive: {err}") from err
    log.debug("Extracted %s (%s): %d entries, %d bytes", src, kind, extractor.entries,
              extractor.size)
    return TreeStats(extractor.entries, extractor.size, kind)


class _Extractor:
    """Writes members one by one under rootfd; directory attributes are applied last."""

    def __init__(self, rootfd: int, limits: Limits, allow_whiteouts: bool) -> None:
        self.rootfd = rootfd
        self.limits = limits
        self.allow_whiteouts = allow_whiteouts
        self.files: set[str] = set()  # regular files extracted so far: hard-link targets
        self.dirs: dict[str, tarfile.TarInfo] = {}
        self.entries = 0
        self.size = 0

    def add(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        """Check and write one member (its data is read from tf, which is a stream)."""
        rel = member_path(m.name)
        self._count(m)
        writer = self._writer(m)
        if rel == ".":
            if not m.isdir():
                raise _Reject(m.name, "is the archive root but not a directory")
            self.dirs["."] = m
            return
        parent, _, name = rel.rpartition("/")
        dirfd = self._open_parent(parent, m.name)
        try:
            writer(tf, m, dirfd, name, rel)
        except OSError as err:
            if err.errno in _HOST_ERRNOS:  # our disk's fault, not the archive's: a 500
                raise LxmgrError(f"Cannot extract archive member '{m.name}': "
                                 f"{err.strerror}") from err
            raise _Reject(m.name, f"could not be extracted: {err}") from err
        except (OverflowError, ValueError) as err:
            raise _Reject(m.name, f"could not be extracted: {err}") from err
        finally:
            os.close(dirfd)

    def _count(self, m: tarfile.TarInfo) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise _Reject(m.name, f"exceeds the limit of {self.limits.max_entries} entries")
        if m.isreg():
            if m.size > self.limits.max_member_bytes:
                raise _Reject(m.name, f"is larger than {self.limits.max_member_bytes} bytes")
            self.size += m.size
            if self.size > self.limits.max_bytes:
                raise _Reject(m.name, f"takes the archive past {self.limits.max_bytes} bytes")

    def _writer(self, m: tarfile.TarInfo) -> _Writer:
        if m.isreg():
            return self._file
        if m.isdir():
            return self._dir
        if m.issym():
            return self._symlink
        if m.islnk():
            return self._hardlink
        if m.ischr() and self.allow_whiteouts and (m.devmajor, m.devminor) == (0, 0):
            return self._whiteout
        kind = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
                tarfile.FIFOTYPE: "a fifo"}.get(m.type, f"of unsupported type {m.type!r}")
        raise _Reject(m.name, f"is {kind}")

    def _open_parent(self, parent: str, member: str) -> int:
        if not parent:
            return os.dup(self.rootfd)
        try:
            return libc.openat2(self.rootfd, parent, _DIR_FLAGS, 0, _RESOLVE)
        except FileNotFoundError:
            return self._make_parents(parent, member)
        except OSError as err:
            raise self._path_error(parent, member, err) from None

    def _make_parents(self, parent: str, member: str) -> int:
        """Walk parent one component at a time (O_NOFOLLOW), making missing dirs 0755."""
        fd = os.dup(self.rootfd)
        try:
            for part in parent.split("/"):
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o700, dir_fd=fd)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    os.fchmod(nxt, 0o755)
                os.close(fd)
                fd = nxt
        except OSError as err:
            os.close(fd)
            raise self._path_error(parent, member, err) from None
        return fd

    def _path_error(self, parent: str, member: str, err: OSError) -> _Reject:
        """Name the symlink or file that blocked the way to parent (ELOOP, ENOTDIR)."""
        if err.errno not in (errno.ELOOP, errno.ENOTDIR):
            return _Reject(member, f"could not be extracted: {err.strerror}")
        fd = os.dup(self.rootfd)
        try:
            parts = parent.split("/")
            for i, part in enumerate(parts):
                mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
                where = "/".join(parts[: i + 1])
                if stat.S_ISLNK(mode):
                    return _Reject(member, f"would be written through symlink '{where}'")
                if not stat.S_ISDIR(mode):
                    return _Reject(member, f"is under non-directory '{where}'")
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        finally:
            os.close(fd)
        return _Reject(member, f"could not be extracted: {err.strerror}")

    def _make_room(self, dirfd: int, name: str, m: tarfile.TarInfo, rel: str) -> None:
        """A later duplicate replaces a file or symlink, never a directory."""
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise _Reject(m.name, "would replace a directory")
        os.unlink(name, dir_fd=dirfd)
        self.files.discard(rel)

    def _file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, dirfd: int, name: str,
              rel: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=dirfd)
        except FileExistsError:
            self._make_room(dirfd, name, m, rel)
            fd = os.open(name, flags, 0o600, dir_fd=dirfd)
        try:
            src = tf.extractfile(m)
            with os.fdopen(os.dup(fd), "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)  # type: ignore[misc]
            _apply_attrs(fd, m)
        finally:
            os.close(fd)
        self.files.add(rel)

    def _dir(self, tf: tarfile.TarFile, m: tarfile.TarInfo, dirfd: int, name: str,
             rel: str) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=dirfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                raise _Reject(m.name, "would replace a non-directory with a directory") from None
        self.dirs[rel] = m

    def _symlink(self, tf: tarfile.TarFile, m: tarfile.TarInfo, dirfd: int, name: str,
                 rel: str) -> None:
        if not m.linkname:
            raise _Reject(m.name, "is a symlink with an empty target")
        try:
            os.symlink(m.linkname, name, dir_fd=dirfd)
        except FileExistsError:
            self._make_room(dirfd, name, m, rel)
            os.symlink(m.linkname, name, dir_fd=dirfd)
        os.chown(name, m.uid, m.gid, dir_fd=dirfd, follow_symlinks=False)
        mtime = _mtime_ns(m)
        os.utime(name, ns=(mtime, mtime), dir_fd=dirfd, follow_symlinks=False)

    def _hardlink(self, tf: tarfile.TarFile, m: tarfile.TarInfo, dirfd: int, name: str,
                  rel: str) -> None:
        try:
            target = member_path(m.linkname)
        except _Reject:
            raise _Reject(m.name, f"is a hard link outside the archive ('{m.linkname}')") \
                from None
        if target not in self.files or target == rel:
            raise _Reject(m.name, f"is a hard link to '{m.linkname}', which is not a "
                                  "regular file extracted before it")
        tparent, _, tname = target.rpartition("/")
        tfd = self._open_parent(tparent, m.name)
        try:
            if not stat.S_ISREG(os.stat(tname, dir_fd=tfd, follow_symlinks=False).st_mode):
                raise _Reject(m.name, f"is a hard link to non-file '{m.linkname}'")
            try:
                os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=dirfd, follow_symlinks=False)
            except FileExistsError:
                self._make_room(dirfd, name, m, rel)
                os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=dirfd, follow_symlinks=False)
        finally:
            os.close(tfd)
        self.files.add(rel)

    def _whiteout(self, tf: tarfile.TarFile, m: tarfile.TarInfo, dirfd: int, name: str,
                  rel: str) -> None:
        try:
            os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dirfd)
        except FileExistsError:
            self._make_room(dirfd, name, m, rel)
            os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dirfd)
        os.chown(name, m.uid, m.gid, dir_fd=dirfd, follow_symlinks=False)

    def finish(self, root_mode: int) -> None:
        """Directory owners, modes and mtimes, once nothing more is written inside them."""
        if "." not in self.dirs:
            os.fchmod(self.rootfd, root_mode)
        for rel, m in self.dirs.items():
            try:
                fd = (os.dup(self.rootfd) if rel == "."
                      else libc.openat2(self.rootfd, rel, _DIR_FLAGS, 0, _RESOLVE))
            except OSError as err:
                raise self._path_error(rel, m.name, err) from None
            try:
                _apply_attrs(fd, m)
            except (OSError, OverflowError, ValueError) as err:
                raise _Reject(m.name, f"could not be extracted: {err}") from err
            finally:
                os.close(fd)


def _mtime_ns(m: tarfile.TarInfo) -> int:
    return int(m.mtime * 1_000_000_000)


def _apply_attrs(fd: int, m: tarfile.TarInfo) -> None:
    """Owner, then xattrs (chown clears security.capability), then mode (chown also clears
    setuid), then mtime."""
    os.fchown(fd, m.uid, m.gid)
    for key, value in m.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            _set_xattr(fd, key[len("SCHILY.xattr."):], value, m.name)
    os.fchmod(fd, m.mode & 0o7777)
    mtime = _mtime_ns(m)
    os.utime(fd, ns=(mtime, mtime))


def _set_xattr(fd: int, name: str, value: str, member: str) -> None:
    if not name.startswith(ALLOWED_XATTRS):
        log.debug("Dropping xattr %s of %s", name, member)
        return
    try:
        os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
    except OSError as err:
        if err.errno != errno.EOPNOTSUPP:
            raise
        log.warning("Filesystem has no %s xattrs: dropped on %s", name, member)


def check_tree(root: Path, *, limits: Limits | None = None) -> TreeStats:
    """Check a tree another tool unpacked (e.g. unsquashfs): only regular files, directories
    and symlinks, within limits. Strips xattrs outside ALLOWED_XATTRS (in place)."""
    limits = limits or Limits()
    entries = size = 0
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        for name in (*dirnames, *filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
                    or stat.S_ISLNK(st.st_mode)):
                raise InvalidConfig(f"Refusing tree '{root.name}': '{rel}' is not a regular "
                                    "file, directory or symlink")
            entries += 1
            size += st.st_size if stat.S_ISREG(st.st_mode) else 0
            if entries > limits.max_entries or size > limits.max_bytes:
                raise InvalidConfig(f"Refusing tree '{root.name}': '{rel}' takes it past "
                                    f"{limits.max_entries} entries or {limits.max_bytes} bytes")
            _strip_xattrs(os.path.join(dirpath, name))
    return TreeStats(entries, size)


def _strip_xattrs(path: str) -> None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as err:
        if err.errno == errno.EOPNOTSUPP:
            return
        raise
    for name in names:
        if not name.startswith(ALLOWED_XATTRS):
            log.debug("Dropping xattr %s of %s", name, path)
            os.removexattr(path, name, follow_symlinks=False)
