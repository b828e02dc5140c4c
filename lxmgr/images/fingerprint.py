"""Deterministic image fingerprint: sha256 over a sorted walk of the rootfs.

Imports nothing from lxmgr. We hash the tree, not a tarball, so no archive format or
timestamp leaks in: for each entry, in sorted order of its relative path, one record

    relpath NUL type NUL mode(octal) NUL uid NUL gid NUL detail NUL xattrs-sha256 LF
    (+ the 32-byte sha256 of the content, for regular files)

where type is f/d/l/c/b/p/s and detail is the symlink target, the device number or the size.
mtimes and inode numbers are left out. Measured on the debian image (~170 MB, ~9k entries):
about 1 s on this VM, dominated by hashing file bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

_TYPES = ((stat.S_ISREG, "f"), (stat.S_ISDIR, "d"), (stat.S_ISLNK, "l"), (stat.S_ISCHR, "c"),
          (stat.S_ISBLK, "b"), (stat.S_ISFIFO, "p"), (stat.S_ISSOCK, "s"))


@dataclass(frozen=True)
class TreeDigest:
    """The fingerprint and the bytes of regular-file content it covered."""

    fingerprint: str
    size: int
    entries: int


def fingerprint_tree(root: str | os.PathLike[str]) -> TreeDigest:
    """Hash the tree under root (root itself included as '.'); never follows symlinks."""
    h = hashlib.sha256()
    size = entries = 0
    for rel in _sorted_walk(Path(root)):
        path = os.path.join(root, rel)
        st = os.lstat(path)
        h.update(_record(rel, path, st))
        if stat.S_ISREG(st.st_mode):
            h.update(_file_digest(path))
            size += st.st_size
        entries += 1
    return TreeDigest(h.hexdigest(), size, entries)


def _sorted_walk(root: Path) -> list[str]:
    """All relative paths under root, '.' first, sorted bytewise (locale independent)."""
    rels = ["."]
    for dirpath, dirnames, filenames in os.walk(root):
        base = os.path.relpath(dirpath, root)
        for name in (*dirnames, *filenames):
            rels.append(name if base == "." else os.path.join(base, name))
    return sorted(rels, key=os.fsencode)


def _type(mode: int) -> str:
    for check, letter in _TYPES:
        if check(mode):
            return letter
    return "?"


def _record(rel: str, path: str, st: os.stat_result) -> bytes:
    kind = _type(st.st_mode)
    if kind == "l":
        detail = os.fsencode(os.readlink(path))
    elif kind in ("c", "b"):
        detail = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}".encode()
    elif kind == "f":
        detail = str(st.st_size).encode()
    else:
        detail = b""
    fields = [os.fsencode(rel), kind.encode(), f"{stat.S_IMODE(st.st_mode):o}".encode(),
              str(st.st_uid).encode(), str(st.st_gid).encode(), detail, _xattrs(path)]
    return b"\0".join(fields) + b"\n"


def _xattrs(path: str) -> bytes:
    """sha256 of the sorted xattrs (file capabilities, ACLs), or b'-' when there are none."""
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return b"-"
    if not names:
        return b"-"
    h = hashlib.sha256()
    for name in names:
        value = os.getxattr(path, name, follow_symlinks=False)
        h.update(f"{name}\0{len(value)}\0".encode() + value)
    return h.hexdigest().encode()


def _file_digest(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()
