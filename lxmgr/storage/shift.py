"""Fallback for kernels without idmapped mounts: copy a tree and shift its owners on disk.

Imports lxmgr.linux, lxmgr.model, lxmgr.errors. shift_tree() lchowns every entry into the
idmap (base + id, or the host id a raw.idmap entry gives) and repairs what chown(2) destroys:
the kernel clears setuid/setgid bits and drops the security.capability xattr on chown, so
both are restored; file capabilities are rewritten as v3 with rootid = container root, else
they would be ignored inside the userns. POSIX ACL entries naming a user or group are
shifted as well. Hard links are shifted once.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

from lxmgr.errors import InvalidConfig
from lxmgr.linux import commands
from lxmgr.model.idmap import IdMap

XATTR_CAPS = "security.capability"
XATTR_ACLS = ("system.posix_acl_access", "system.posix_acl_default")
# <linux/capability.h>
VFS_CAP_REVISION_MASK = 0xFF000000
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_REVISION_3 = 0x03000000
# <linux/posix_acl_xattr.h>, <linux/posix_acl.h>
ACL_USER = 0x02
ACL_GROUP = 0x08
_ACL_HEADER = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")


def copy_tree(src: Path, dest: Path) -> None:
    """cp -a (reflinks where the filesystem can): keeps owners, modes, xattrs, ACLs, links."""
    commands.run(["cp", "-a", "--reflink=auto", "--", f"{src}/.", str(dest)])


def shifted_copy(image_rootfs: Path, dest: Path, idmap: IdMap) -> None:
    """Copy image_rootfs to dest (which must not exist) and shift it; atomic via a temp dir."""
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    tmp.mkdir(mode=0o755, parents=True)
    try:
        copy_tree(image_rootfs, tmp)
        shift_tree(tmp, idmap)
        os.rename(tmp, dest)
    except BaseException:
        commands.run(["rm", "-rf", "--one-file-system", "--", str(tmp)], check=False)
        raise


def shift_tree(root: Path, idmap: IdMap) -> None:
    """Move the owner of every entry under root (root included) into idmap: base + id, or
    the host id a raw.idmap entry gives it."""
    seen: set[tuple[int, int]] = set()
    root_dev = os.lstat(root).st_dev
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (".", *dirnames, *filenames):
            path = dirpath if name == "." else os.path.join(dirpath, name)
            st = os.lstat(path)
            if st.st_dev != root_dev:
                raise InvalidConfig(f"Refusing to shift '{path}': it is on another filesystem")
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            shift_entry(path, st, idmap)


def shift_entry(path: str, st: os.stat_result, idmap: IdMap) -> None:
    """lchown one entry into the idmap, restoring suid/sgid bits, file caps and ACLs."""
    is_link = stat.S_ISLNK(st.st_mode)
    caps = None if is_link else _getxattr(path, XATTR_CAPS)
    acls = {} if is_link else {n: v for n in XATTR_ACLS if (v := _getxattr(path, n))}
    os.chown(path, idmap.host_uid(st.st_uid), idmap.host_gid(st.st_gid),
             follow_symlinks=False)
    if is_link:
        return
    if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    for name, value in acls.items():
        os.setxattr(path, name, shift_acl(value, idmap))
    if caps is not None:
        os.setxattr(path, XATTR_CAPS, shift_caps(caps, idmap))


def shift_caps(value: bytes, idmap: IdMap) -> bytes:
    """A v2 or v3 vfs_cap_data value rewritten as v3 owned by the container's root."""
    (magic,) = struct.unpack_from("<I", value)
    revision, flags = magic & VFS_CAP_REVISION_MASK, magic & ~VFS_CAP_REVISION_MASK
    if revision == VFS_CAP_REVISION_2 and len(value) >= 20:
        rootid = idmap.host_uid(0)
    elif revision == VFS_CAP_REVISION_3 and len(value) >= 24:
        rootid = idmap.host_uid(struct.unpack_from("<I", value, 20)[0])
    else:
        raise InvalidConfig(f"Unsupported file capability revision {revision >> 24}")
    return struct.pack("<I", VFS_CAP_REVISION_3 | flags) + value[4:20] + struct.pack("<I", rootid)


def shift_acl(value: bytes, idmap: IdMap) -> bytes:
    """A posix_acl xattr with ACL_USER/ACL_GROUP ids moved into the idmap."""
    out = bytearray(value[: _ACL_HEADER.size])
    for off in range(_ACL_HEADER.size, len(value) - _ACL_ENTRY.size + 1, _ACL_ENTRY.size):
        tag, perm, ident = _ACL_ENTRY.unpack_from(value, off)
        if tag == ACL_USER:
            ident = idmap.host_uid(ident)
        elif tag == ACL_GROUP:
            ident = idmap.host_gid(ident)
        out += _ACL_ENTRY.pack(tag, perm, ident)
    return bytes(out)


def _getxattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None
