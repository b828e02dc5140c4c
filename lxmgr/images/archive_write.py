"""Deterministic tar writing (image export, backups): trees and in-memory files, members
sorted by name, owners, modes, hard links and the allowed xattrs kept, no host user names,
gzip header without time or name.

Imports lxmgr.images.archive (the xattr allowlist, suffixes) and the stdlib only.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import logging
import lzma
import os
import stat
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, BinaryIO

from lxmgr.images.archive import ALLOWED_XATTRS, suffix_for

log = logging.getLogger(__name__)


class _HashingWriter:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, f: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
        self.f = f
        self.sha256 = hashlib.sha256()
        self.progress = progress
        self.written = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        written = self.f.write(data)
        self.written += written
        if self.progress is not None:
            self.progress(self.written)
        return written

    def flush(self) -> None:
        self.f.flush()


def write_archive(out: Path, trees: Sequence[tuple[str, Path]], *,
                  files: Mapping[str, bytes] | None = None, compression: str = "gzip",
                  mtime: int = 0, progress: Callable[[int], None] | None = None) -> str:
    """Write a tar of trees [(prefix, dir)] plus in-memory files {name: bytes} (root-owned,
    0644, mtime), members sorted by name; owners, modes, hard links and ALLOWED_XATTRS kept.

    Deterministic for a given input (no host user names, gzip header without time or name).
    Devices, fifos and sockets are skipped. Returns the sha256 of the bytes written.
    progress(bytes written so far) is called as the archive grows (it may raise to stop).
    """
    suffix_for(compression)
    members = [(name, None) for name in (files or {})]
    for prefix, root in trees:
        members.extend(_walk(prefix, root))
    members.sort(key=lambda item: os.fsencode(item[0]))
    with open(out, "wb") as raw:
        sink = _HashingWriter(raw, progress)
        with _compressor(sink, compression) as stream, \
                tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            _add_members(tf, members, files or {}, mtime)
        raw.flush()
        os.fsync(raw.fileno())
    return sink.sha256.hexdigest()


@contextlib.contextmanager
def _compressor(sink: _HashingWriter, compression: str) -> Iterator[IO[bytes]]:
    if compression == "gzip":
        with gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0,  # type: ignore[arg-type]
                           compresslevel=6) as gz:
            yield gz
    elif compression == "xz":
        with lzma.LZMAFile(sink, "wb") as xz:  # type: ignore[arg-type]
            yield xz
    else:
        yield sink  # type: ignore[misc]


def _walk(prefix: str, root: Path) -> list[tuple[str, Path | None]]:
    """(archive name, path) for root and everything below it, not following symlinks."""
    top = prefix.rstrip("/") or "."
    found: list[tuple[str, Path | None]] = [(top, root)]
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in (*dirnames, *filenames):
            sub = name if rel == "." else f"{rel}/{name}"
            found.append((f"{prefix}{sub}" if prefix else f"./{sub}", Path(dirpath, name)))
    return found


def _add_members(tf: tarfile.TarFile, members: list[tuple[str, Path | None]],
                 files: Mapping[str, bytes], mtime: int) -> None:
    links: dict[tuple[int, int], str] = {}
    skipped = 0
    for name, path in members:
        if path is None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, mtime
            tf.addfile(info, io.BytesIO(files[name]))
            continue
        info = _tarinfo(name, path, links)
        if info is None:
            skipped += 1
        elif info.isreg():
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                tf.addfile(info, f)
        else:
            tf.addfile(info)
    if skipped:
        log.info("Export skipped %d device nodes, fifos or sockets", skipped)


def _tarinfo(name: str, path: Path, links: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    st = os.lstat(path)
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.mode = st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            links[key] = name
            info.size = st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        return info
    else:
        return None
    info.pax_headers = _xattr_headers(path)
    return info


def _xattr_headers(path: Path) -> dict[str, str]:
    headers = {}
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError as err:
        if err.errno == errno.EOPNOTSUPP:
            return {}
        raise
    for xname in names:
        if xname.startswith(ALLOWED_XATTRS):
            value = os.getxattr(path, xname, follow_symlinks=False)
            headers[f"SCHILY.xattr.{xname}"] = value.decode("utf-8", "surrogateescape")
    return headers

