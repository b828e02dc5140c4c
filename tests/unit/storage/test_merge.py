"""merge: an overlay's merged view written without a mount (whiteouts, opaque dirs, replaced
files and dirs, hard links, unshifted owners, setuid, caps, ACLs), hostile uppers that try to
write outside dest, refused redirect/metacopy uppers, and unshift_tree."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from lxmgr.errors import Conflict, InvalidConfig
from lxmgr.model.idmap import IdMap
from lxmgr.storage import shift
from lxmgr.storage.merge import (
    OVERFLOW_ID,
    merge_overlay,
    unshift_acl,
    unshift_caps,
    unshift_tree,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod, xattrs)")
IDMAP = IdMap(1_000_000, 1_000_000, 65536)
BASE = IDMAP.uid_base
CAP_NET_RAW = 1 << 13
CAPS_V2 = struct.pack("<IIIII", 0x02000000 | 1, CAP_NET_RAW, 0, 0, 0)  # effective flag set
ACL_HEADER = struct.pack("<I", 2)


def acl(user: int, group: int) -> bytes:
    """A posix_acl xattr value (entries in the kernel's tag order) naming one user and group."""
    undefined = 0xFFFFFFFF
    entries = ((0x01, 6, undefined), (0x02, 6, user), (0x04, 4, undefined), (0x08, 4, group),
               (0x10, 6, undefined), (0x20, 0, undefined))
    return ACL_HEADER + b"".join(struct.pack("<HHI", *e) for e in entries)


def put(path: Path, data: str = "", *, owner: tuple[int, int] = (0, 0), mode: int = 0o644,
        mtime: int = 1_600_000_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    os.chown(path, *owner)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))
    return path


def mkdir(path: Path, *, owner: tuple[int, int] = (BASE, BASE), mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, *owner)
    os.chmod(path, mode)
    return path


def whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def opaque(path: Path) -> None:
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def symlink(path: Path, target: str, owner: tuple[int, int] = (BASE, BASE)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    os.chown(path, *owner, follow_symlinks=False)


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Everything under root: mode and content (or link target), to prove it unchanged."""
    out: dict[str, tuple[int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            p = Path(dirpath, name)
            st = os.lstat(p)
            data = os.readlink(p).encode() if p.is_symlink() else \
                p.read_bytes() if p.is_file() else b""
            out[str(p.relative_to(root))] = (st.st_mode, data)
    return out


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path]:
    """A lower (image, root-owned) and the upper a container with IDMAP left over it."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    mkdir(lower, owner=(0, 0))
    put(lower / "etc/hostname", "lower\n")
    put(lower / "etc/removed.conf", "gone\n")
    put(lower / "etc/kept.conf", "kept\n")
    put(lower / "var/cache/apt/pkgcache.bin", "cache")
    put(lower / "var/cache/old", "old")
    put(lower / "opt/old/file", "in a dir the upper replaces with a file")
    put(lower / "usr/bin/ping", "ELF", mode=0o755)
    os.chown(lower / "etc", 0, 0)
    mkdir(upper, mode=0o755)
    mkdir(upper / "etc")
    put(upper / "etc/hostname", "upper\n", owner=(BASE, BASE))
    whiteout(upper / "etc/removed.conf")
    mkdir(upper / "var")
    mkdir(upper / "var/cache", mode=0o750)
    opaque(upper / "var/cache")
    put(upper / "var/cache/new", "new", owner=(BASE + 7, BASE + 7))
    mkdir(upper / "opt")
    put(upper / "opt/old", "now a file", owner=(BASE, BASE))
    mkdir(upper / "home/alice", owner=(BASE + 1000, BASE + 1000), mode=0o700)
    put(upper / "home/alice/notes", "hi", owner=(BASE + 1000, BASE + 1000), mode=0o600,
        mtime=1_500_000_000)
    os.link(upper / "home/alice/notes", upper / "home/alice/notes.hard")
    mkdir(upper / "usr/bin")
    ping = put(upper / "usr/bin/ping", "ELF2", owner=(BASE, BASE), mode=0o4755)
    os.setxattr(ping, "security.capability", shift.shift_caps(CAPS_V2, IDMAP))
    os.chmod(ping, 0o4755)  # setting caps does not clear setuid, chown did: make sure
    shared = put(upper / "srv/shared", "acl", owner=(BASE, BASE), mode=0o664)
    os.setxattr(shared, "system.posix_acl_access",
                acl(BASE + 1000, BASE + 33))
    os.setxattr(shared, "user.note", b"kept")
    os.setxattr(shared, "trusted.overlay.origin", b"\x00dropped")
    put(upper / "srv/stray", "owned by host uid 5", owner=(5, 5))
    symlink(upper / "srv/link", "/etc/shadow")
    os.mkfifo(upper / "srv/fifo")
    os.chown(upper / "srv/fifo", BASE + 1, BASE + 1)
    return lower, upper


@needs_root
def test_merge_overlay_applies_whiteouts_opaque_dirs_and_replacements(
        layers: tuple[Path, Path], tmp_path: Path) -> None:
    lower, upper = layers
    dest = tmp_path / "merged"
    merge_overlay(lower, upper, dest, unshift=IDMAP)
    assert (dest / "etc/hostname").read_text() == "upper\n"
    assert (dest / "etc/kept.conf").read_text() == "kept\n"
    assert not (dest / "etc/removed.conf").exists()
    assert sorted(os.listdir(dest / "var/cache")) == ["new"]
    assert (dest / "opt/old").read_text() == "now a file"
    assert (dest / "home/alice/notes").read_text() == "hi"
    assert os.readlink(dest / "srv/link") == "/etc/shadow"
    assert stat.S_ISFIFO(os.lstat(dest / "srv/fifo").st_mode)
    assert lower.joinpath("etc/removed.conf").exists()  # the lower is never touched


@needs_root
def test_merge_overlay_unshifts_owners_caps_and_acls(layers: tuple[Path, Path],
                                                      tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    lower, upper = layers
    dest = tmp_path / "merged"
    with caplog.at_level(logging.WARNING):
        merge_overlay(lower, upper, dest, unshift=IDMAP)
    assert owner(dest) == (0, 0) and owner(dest / "etc/hostname") == (0, 0)
    assert owner(dest / "etc/kept.conf") == (0, 0)  # from the lower, as it was
    assert owner(dest / "var/cache/new") == (7, 7)
    assert owner(dest / "home/alice") == (1000, 1000)
    assert stat.S_IMODE(os.lstat(dest / "home/alice").st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(dest / "var/cache").st_mode) == 0o750
    assert os.lstat(dest / "home/alice/notes").st_mtime == 1_500_000_000
    assert owner(dest / "srv/link") == (0, 0) and owner(dest / "srv/fifo") == (1, 1)
    assert owner(dest / "srv/stray") == (OVERFLOW_ID, OVERFLOW_ID)
    assert "outside the idmap" in caplog.text and "srv/stray" in caplog.text
    ping = dest / "usr/bin/ping"
    assert owner(ping) == (0, 0) and stat.S_IMODE(os.lstat(ping).st_mode) == 0o4755
    assert os.getxattr(ping, "security.capability") == CAPS_V2
    shared = dest / "srv/shared"
    assert os.getxattr(shared, "system.posix_acl_access") == acl(1000, 33)
    assert os.getxattr(shared, "user.note") == b"kept"
    assert not [x for x in os.listxattr(dest / "var/cache") if x.startswith("trusted.")]
    assert "trusted.overlay.origin" not in os.listxattr(shared)


@needs_root
def test_merge_overlay_keeps_hard_links_within_the_upper(layers: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    lower, upper = layers
    dest = tmp_path / "merged"
    merge_overlay(lower, upper, dest, unshift=IDMAP)
    a, b = os.lstat(dest / "home/alice/notes"), os.lstat(dest / "home/alice/notes.hard")
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    assert a.st_ino != os.lstat(upper / "home/alice/notes").st_ino


@needs_root
def test_merge_overlay_without_unshift_keeps_ids(layers: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    lower, upper = layers
    dest = tmp_path / "merged"
    merge_overlay(lower, upper, dest, unshift=None)
    assert owner(dest / "var/cache/new") == (BASE + 7, BASE + 7)
    assert owner(dest / "srv/stray") == (5, 5)


@needs_root
def test_hostile_upper_writes_nothing_outside_dest(tmp_path: Path) -> None:
    """Symlinks in the lower or the upper are replaced, never written or deleted through."""
    outside = tmp_path / "outside"
    put(outside / "passwd", "host secret\n")
    put(outside / "victim", "must survive\n")
    before = snapshot(outside)
    lower, upper = mkdir(tmp_path / "lower", owner=(0, 0)), mkdir(tmp_path / "upper")
    put(lower / "etc/passwd", "root:x:0:0\n")
    symlink(lower / "srv", str(outside), owner=(0, 0))  # a dir in the upper over it
    symlink(lower / "data/passwd", str(outside / "passwd"), owner=(0, 0))
    symlink(lower / "wh", str(outside), owner=(0, 0))
    symlink(upper / "etc", "/")  # replaces the lower's etc/ directory
    put(upper / "srv/passwd", "pwned\n", owner=(BASE, BASE))
    put(upper / "data/passwd", "pwned\n", owner=(BASE, BASE))
    whiteout(upper / "wh/victim")
    dest = tmp_path / "merged"
    merge_overlay(lower, upper, dest, unshift=IDMAP)
    assert snapshot(outside) == before
    assert os.readlink(dest / "etc") == "/"
    assert (dest / "srv").is_dir() and not (dest / "srv").is_symlink()
    assert (dest / "srv/passwd").read_text() == "pwned\n"
    assert not (dest / "data/passwd").is_symlink()
    assert (dest / "wh").is_dir() and os.listdir(dest / "wh") == []
    assert sorted(os.listdir(tmp_path)) == ["lower", "merged", "outside", "upper"]


@needs_root
@pytest.mark.parametrize(("xattr", "kind"), [("trusted.overlay.redirect", "dir"),
                                             ("trusted.overlay.metacopy", "file")])
def test_redirect_and_metacopy_uppers_are_refused(tmp_path: Path, xattr: str,
                                                  kind: str) -> None:
    lower, upper = mkdir(tmp_path / "lower", owner=(0, 0)), mkdir(tmp_path / "upper")
    entry = mkdir(upper / "moved") if kind == "dir" else put(upper / "big", owner=(BASE, BASE))
    os.setxattr(entry, xattr, b"/elsewhere" if kind == "dir" else b"")
    dest = tmp_path / "merged"
    with pytest.raises(InvalidConfig, match=r"^Refusing to merge upper entry '(moved|big)'"):
        merge_overlay(lower, upper, dest, unshift=IDMAP)
    assert not dest.exists()


@needs_root
def test_merge_overlay_refuses_an_existing_dest(tmp_path: Path) -> None:
    lower, upper = mkdir(tmp_path / "lower", owner=(0, 0)), mkdir(tmp_path / "upper")
    (tmp_path / "merged").mkdir()
    with pytest.raises(Conflict, match="already exists"):
        merge_overlay(lower, upper, tmp_path / "merged", unshift=None)


@needs_root
def test_unshift_tree_is_the_inverse_of_shift_tree(tmp_path: Path) -> None:
    root = mkdir(tmp_path / "rootfs", owner=(0, 0))
    ping = put(root / "usr/bin/ping", "ELF", mode=0o4755)
    os.setxattr(ping, "security.capability", CAPS_V2)
    os.chmod(ping, 0o4755)
    shared = put(root / "srv/shared", "x", owner=(1000, 33))
    access = acl(1000, 33)
    os.setxattr(shared, "system.posix_acl_access", access)
    symlink(root / "srv/link", "/nowhere", owner=(1000, 1000))
    os.link(shared, root / "srv/shared.hard")
    shift.shift_tree(root, IDMAP)
    assert owner(shared) == (BASE + 1000, BASE + 33)
    put(root / "srv/stray", owner=(5, 5))
    unshift_tree(root, IDMAP)
    assert owner(root) == (0, 0) and owner(ping) == (0, 0)
    assert stat.S_IMODE(os.lstat(ping).st_mode) == 0o4755
    assert os.getxattr(ping, "security.capability") == CAPS_V2
    assert owner(shared) == (1000, 33) and owner(root / "srv/link") == (1000, 1000)
    assert os.getxattr(shared, "system.posix_acl_access") == access
    assert owner(root / "srv/stray") == (OVERFLOW_ID, OVERFLOW_ID)


def test_unshift_caps_inverts_shift_caps() -> None:
    v3_root = shift.shift_caps(CAPS_V2, IDMAP)
    assert unshift_caps(v3_root, IDMAP) == CAPS_V2
    v3_user = CAPS_V2[:20] + struct.pack("<I", BASE + 5)
    v3_user = struct.pack("<I", 0x03000000 | 1) + v3_user[4:]
    assert unshift_caps(v3_user, IDMAP) == v3_user[:20] + struct.pack("<I", 5)
    assert unshift_caps(CAPS_V2, IDMAP) == CAPS_V2
    assert unshift_caps(v3_user[:20] + struct.pack("<I", 42), IDMAP) is None  # host rootid
    assert unshift_caps(b"\x01\x00\x00\x01" + b"\0" * 8, IDMAP) is None


def test_unshift_acl_inverts_shift_acl_and_overflows_strangers() -> None:
    container = acl(1000, 33)
    assert unshift_acl(shift.shift_acl(container, IDMAP), IDMAP) == container
    assert unshift_acl(acl(7, BASE + 33), IDMAP) == acl(OVERFLOW_ID, 33)


_OVERLAY_SCRIPT = """
set -e
mount -t overlay overlay -o lowerdir={t}/lower,upperdir={t}/upper,workdir={t}/work {t}/merged
cd {t}/merged
rm etc/removed.conf
echo changed > etc/hostname
rm -rf var/cache && mkdir var/cache && echo new > var/cache/new
rm -rf opt/old && echo file > opt/old
mkdir -p new/deep && echo z > new/deep/z && ln new/deep/z new/deep/z2 && chmod 4755 new/deep/z
cd /
cp -a {t}/merged {t}/reference
umount {t}/merged
"""


def _listing(root: Path) -> dict[str, tuple[int, int, int, int, int, bytes]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (".", *dirnames, *filenames):
            p = Path(dirpath, name)
            st = os.lstat(p)
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink,
                                             st.st_mtime_ns, data)
    return out


@pytest.mark.kernel
def test_merge_matches_what_the_kernel_overlay_shows(tmp_path: Path) -> None:
    """A real overlay (in a private mount namespace of its own) makes the whiteouts and
    opaque dirs; merge_overlay must produce what the mount showed."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is missing")
    lower = mkdir(tmp_path / "lower", owner=(0, 0))
    put(lower / "etc/hostname", "lower\n")
    put(lower / "etc/removed.conf", "gone\n")
    put(lower / "var/cache/apt/pkgcache.bin", "cache")
    put(lower / "opt/old/file", "x")
    for sub in ("upper", "work", "merged"):
        (tmp_path / sub).mkdir()
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           _OVERLAY_SCRIPT.format(t=tmp_path)], capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {proc.stderr.strip()}")
    assert stat.S_ISCHR(os.lstat(tmp_path / "upper/etc/removed.conf").st_mode)
    merge_overlay(lower, tmp_path / "upper", tmp_path / "mine", unshift=None)
    assert _listing(tmp_path / "mine") == _listing(tmp_path / "reference")
