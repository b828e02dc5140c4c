"""archive: one crafted tar per hostile case (refused, nothing left behind, nothing written
outside), the happy path (setuid, absolute symlink, hard link, xattr, every compression),
check_tree and deterministic write_archive."""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from lxmgr.errors import Conflict, InvalidConfig, LxmgrError
from lxmgr.images import archive
from lxmgr.images.archive import Limits, check_tree, detect_compression, extract_archive
from lxmgr.images.archive_write import write_archive

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")
UID, GID = os.getuid(), os.getgid()


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object
           ) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.uid, info.gid, info.mtime = kind, len(data), UID, GID, 1_600_000_000
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]],
             mode: str = "w") -> Path:
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def refused(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], **kw: object) -> str:
    """Extract a crafted archive, expect InvalidConfig; check nothing was left behind."""
    src = make_tar(tmp_path / "evil.tar", members)
    dest = tmp_path / "dest"
    with pytest.raises(InvalidConfig) as exc:
        extract_archive(src, dest, **kw)  # type: ignore[arg-type]
    assert not dest.exists()
    message = str(exc.value)
    assert "\n" not in message and message.startswith("Refusing archive 'evil.tar': member '")
    return message


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory a hostile archive aims at; must stay empty."""
    path = tmp_path / "outside"
    path.mkdir()
    yield path
    assert os.listdir(path) == []


def test_absolute_names_land_beneath_the_target(tmp_path: Path, outside: Path) -> None:
    """GNU tar (and so LXD) strip the leading '/': the member is written inside dest."""
    src = make_tar(tmp_path / "abs.tar", [
        member("/rootfs", tarfile.DIRTYPE), member("/rootfs/etc/inittab", data=b"id:2"),
        member(f"/{outside}/x", data=b"y"), member("//rootfs/link", tarfile.LNKTYPE,
                                                   linkname="/rootfs/etc/inittab")])
    dest = tmp_path / "dest"
    extract_archive(src, dest)
    assert (dest / "rootfs/etc/inittab").read_bytes() == b"id:2"
    assert (dest / outside.relative_to("/") / "x").read_bytes() == b"y"
    assert os.stat(dest / "rootfs/link").st_ino == os.stat(dest / "rootfs/etc/inittab").st_ino


@pytest.mark.parametrize("name", ["../evil", "rootfs/../../evil", "a/./../b", "/../evil",
                                  "//../../evil"])
def test_dotdot_component(tmp_path: Path, name: str) -> None:
    assert refused(tmp_path, [member(name, data=b"x")]).endswith("has a '..' component")


def test_write_through_symlink(tmp_path: Path, outside: Path) -> None:
    msg = refused(tmp_path, [member("rootfs", tarfile.DIRTYPE),
                             member("rootfs/x", tarfile.SYMTYPE, linkname=str(outside)),
                             member("rootfs/x/passwd", data=b"pwned")])
    assert msg.endswith("member 'rootfs/x/passwd' would be written through symlink 'rootfs/x'")


def test_write_through_relative_symlink_chain(tmp_path: Path, outside: Path) -> None:
    msg = refused(tmp_path, [member("a", tarfile.SYMTYPE, linkname="."),
                             member("b", tarfile.SYMTYPE, linkname="a/../../outside"),
                             member("b/passwd", data=b"pwned")])
    assert msg.endswith("member 'b/passwd' would be written through symlink 'b'")


def test_directory_over_symlink(tmp_path: Path, outside: Path) -> None:
    msg = refused(tmp_path, [member("x", tarfile.SYMTYPE, linkname=str(outside)),
                             member("x", tarfile.DIRTYPE)])
    assert msg.endswith("member 'x' would replace a non-directory with a directory")


def test_file_replacing_directory(tmp_path: Path) -> None:
    msg = refused(tmp_path, [member("d", tarfile.DIRTYPE), member("d/f", data=b"1"),
                             member("d", data=b"file now")])
    assert msg.endswith("member 'd' would replace a directory")


def test_symlink_replacing_directory(tmp_path: Path) -> None:
    msg = refused(tmp_path, [member("etc", tarfile.DIRTYPE),
                             member("etc", tarfile.SYMTYPE, linkname="/")])
    assert msg.endswith("member 'etc' would replace a directory")


@pytest.mark.parametrize("target", ["../../etc/shadow", "/../etc/shadow"])
def test_hardlink_outside(tmp_path: Path, target: str) -> None:
    msg = refused(tmp_path, [member("h", tarfile.LNKTYPE, linkname=target)])
    assert msg.endswith(f"member 'h' is a hard link outside the archive ('{target}')")


def test_absolute_hardlink_stays_inside(tmp_path: Path) -> None:
    """'/etc/shadow' means dest/etc/shadow (stripped as GNU tar does): not extracted here."""
    msg = refused(tmp_path, [member("h", tarfile.LNKTYPE, linkname="/etc/shadow")])
    assert "member 'h' is a hard link to '/etc/shadow', which is not a regular file" in msg


def test_hardlink_to_missing_file(tmp_path: Path) -> None:
    msg = refused(tmp_path, [member("h", tarfile.LNKTYPE, linkname="later"),
                             member("later", data=b"x")])
    assert "member 'h' is a hard link to 'later', which is not a regular file" in msg


def test_hardlink_to_symlink(tmp_path: Path, outside: Path) -> None:
    msg = refused(tmp_path, [member("s", tarfile.SYMTYPE, linkname=str(outside)),
                             member("h", tarfile.LNKTYPE, linkname="s")])
    assert "member 'h' is a hard link to 's', which is not a regular file" in msg


def test_hardlink_to_file_replaced_by_symlink(tmp_path: Path) -> None:
    msg = refused(tmp_path, [member("f", data=b"x"),
                             member("f", tarfile.SYMTYPE, linkname="/etc/shadow"),
                             member("h", tarfile.LNKTYPE, linkname="f")])
    assert "member 'h' is a hard link to 'f', which is not a regular file" in msg


@pytest.mark.parametrize(("kind", "what", "dev"), [
    (tarfile.CHRTYPE, "a character device", (1, 3)),
    (tarfile.CHRTYPE, "a character device", (0, 0)),  # whiteouts only with allow_whiteouts
    (tarfile.BLKTYPE, "a block device", (8, 0)),
    (tarfile.FIFOTYPE, "a fifo", (0, 0)),
])
def test_special_files(tmp_path: Path, kind: bytes, what: str, dev: tuple[int, int]) -> None:
    msg = refused(tmp_path, [member("dev/x", kind, devmajor=dev[0], devminor=dev[1])])
    assert msg.endswith(f"member 'dev/x' is {what}")


def test_whiteout_allowed_only_as_0_0(tmp_path: Path) -> None:
    msg = refused(tmp_path, [member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)],
                  allow_whiteouts=True)
    assert msg.endswith("is a character device")


@needs_root
def test_whiteout_with_flag(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "w.tar", [member("gone", tarfile.CHRTYPE)])
    extract_archive(src, tmp_path / "dest", allow_whiteouts=True)
    st = os.lstat(tmp_path / "dest" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_entry_limit(tmp_path: Path) -> None:
    msg = refused(tmp_path, [member(f"f{i}") for i in range(5)], limits=Limits(max_entries=3))
    assert msg.endswith("member 'f3' exceeds the limit of 3 entries")


def test_total_size_limit(tmp_path: Path) -> None:
    msg = refused(tmp_path, [member("a", data=b"x" * 60), member("b", data=b"x" * 60)],
                  limits=Limits(max_bytes=100))
    assert msg.endswith("member 'b' takes the archive past 100 bytes")


def test_member_size_limit(tmp_path: Path) -> None:
    msg = refused(tmp_path, [member("big", data=b"x" * 60)], limits=Limits(max_member_bytes=50))
    assert msg.endswith("member 'big' is larger than 50 bytes")


def test_oversized_pax_header(tmp_path: Path) -> None:
    info, data = member("f", data=b"x")
    info.pax_headers = {"comment": "y" * (2 << 20)}
    assert "extended header" in refused(tmp_path, [(info, data)])


def test_decompression_bomb_stops_at_limit(tmp_path: Path) -> None:
    """A gzip of zeros that declares a huge member: refused from the header, unread."""
    src = tmp_path / "bomb.tar.gz"
    with tarfile.open(src, "w:gz") as tf:
        info = tarfile.TarInfo("zeros")
        info.size = 50 << 20
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    with pytest.raises(InvalidConfig, match="member 'zeros' is larger than 1048576 bytes"):
        extract_archive(src, tmp_path / "dest", limits=Limits(max_member_bytes=1 << 20))
    assert not (tmp_path / "dest").exists()


def test_root_member_must_be_directory(tmp_path: Path) -> None:
    assert refused(tmp_path, [member("./", data=b"x")]).endswith("root but not a directory")


@pytest.mark.parametrize("content", [b"", b"not a tar at all" * 64, b"\x1f\x8b\x08garbage"])
def test_not_a_tar(tmp_path: Path, content: bytes) -> None:
    src = tmp_path / "junk.tar"
    src.write_bytes(content)
    with pytest.raises(InvalidConfig, match="^Archive 'junk.tar' is not a valid tar archive"):
        extract_archive(src, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_truncated_archive(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "t.tar", [member("big", data=b"x" * 100_000)])
    src.write_bytes(src.read_bytes()[:50_000])
    with pytest.raises(InvalidConfig, match="not a valid tar archive"):
        extract_archive(src, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_full_disk_is_not_a_bad_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive.shutil, "copyfileobj", no_space)
    src = make_tar(tmp_path / "ok.tar", [member("f", data=b"x")])
    with pytest.raises(LxmgrError) as exc:
        extract_archive(src, tmp_path / "dest")
    assert not isinstance(exc.value, InvalidConfig) and exc.value.status == 500
    assert str(exc.value) == "Cannot extract archive member 'f': No space left on device"
    assert not (tmp_path / "dest").exists()


def test_existing_destination(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "ok.tar", [member("f", data=b"x")])
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep").write_text("mine")
    with pytest.raises(Conflict):
        extract_archive(src, tmp_path / "dest")
    assert (tmp_path / "dest" / "keep").read_text() == "mine"


def happy_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    xattr_file = member("rootfs/usr/bin/ping", data=b"ELF", mode=0o755)
    xattr_file[0].pax_headers = {"SCHILY.xattr.user.lxmgr-test": "v\xff".encode(
        "latin-1").decode("utf-8", "surrogateescape"),
                                 "SCHILY.xattr.trusted.overlay.opaque": "y"}
    return [
        member("./", tarfile.DIRTYPE, mode=0o751),
        member("rootfs", tarfile.DIRTYPE, mode=0o755, mtime=1_500_000_000),
        member("rootfs/tmp", tarfile.DIRTYPE, mode=0o1777),
        member("rootfs/usr/bin/passwd", data=b"suid", mode=0o4755, uid=0, gid=0),
        member("rootfs/usr/bin/wall", data=b"sgid", mode=0o2755, uid=0, gid=5),
        member("rootfs/etc/owned", data=b"by 1234", uid=1234, gid=4321),
        member("rootfs/etc/resolv.conf", tarfile.SYMTYPE, linkname="/run/resolv.conf"),
        member("rootfs/usr/bin/passwd-link", tarfile.LNKTYPE, linkname="./rootfs/usr/bin/passwd"),
        member("rootfs/etc/dup", data=b"first"),
        member("rootfs/etc/dup", data=b"second"),
        xattr_file,
    ]


def xattrs_supported(path: Path) -> bool:
    probe = path / ".xattr-probe"
    probe.write_text("")
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError as err:
        if err.errno != errno.EOPNOTSUPP:
            raise
        return False
    finally:
        probe.unlink()


@needs_root
@pytest.mark.parametrize("mode", ["w", "w:gz", "w:xz", "w:bz2", "zstd"])
def test_happy_path(tmp_path: Path, mode: str) -> None:
    src = make_tar(tmp_path / "img.tar", happy_members(), "w" if mode == "zstd" else mode)
    if mode == "zstd":
        if shutil.which("zstd") is None:
            pytest.skip("no zstd command")
        os.system(f"zstd -q --rm {src} -o {tmp_path}/img.tar.zst")
        src = tmp_path / "img.tar.zst"
    dest = tmp_path / "dest"
    stats = extract_archive(src, dest)
    assert stats.compression == {"w": "none", "w:gz": "gzip", "w:xz": "xz", "w:bz2": "bzip2",
                                 "zstd": "zstd"}[mode]
    assert stats.entries == 11
    root = dest / "rootfs"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o751
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    passwd = (root / "usr/bin/passwd").stat()
    assert (stat.S_IMODE(passwd.st_mode), passwd.st_uid, passwd.st_gid) == (0o4755, 0, 0)
    assert stat.S_IMODE((root / "usr/bin/wall").stat().st_mode) == 0o2755
    assert ((root / "etc/owned").stat().st_uid, (root / "etc/owned").stat().st_gid) == \
        (1234, 4321)
    assert os.readlink(root / "etc/resolv.conf") == "/run/resolv.conf"
    assert (root / "usr/bin/passwd-link").stat().st_ino == passwd.st_ino
    assert (root / "etc/dup").read_bytes() == b"second"
    assert root.stat().st_mtime == 1_500_000_000
    assert (root / "usr").stat().st_mode & 0o777 == 0o755  # implicit parent
    if xattrs_supported(tmp_path):
        ping = root / "usr/bin/ping"
        assert os.getxattr(ping, "user.lxmgr-test") == b"v\xff"
        assert not [x for x in os.listxattr(ping) if x.startswith("trusted.")]


def test_check_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_bytes(b"12345")
    os.symlink("/nowhere", tree / "l")
    stats = check_tree(tree)
    assert (stats.entries, stats.size) == (3, 5)
    with pytest.raises(InvalidConfig, match="past 2 entries"):
        check_tree(tree, limits=Limits(max_entries=2))
    os.mkfifo(tree / "d" / "fifo")
    with pytest.raises(InvalidConfig, match="'d/fifo' is not a regular file, directory"):
        check_tree(tree)


@needs_root
def test_check_tree_strips_trusted_xattrs(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    f = tmp_path / "t" / "f"
    f.write_text("")
    try:
        os.setxattr(f, "trusted.overlay.redirect", b"/etc")
    except OSError:
        pytest.skip("no trusted xattrs here")
    check_tree(tmp_path / "t")
    assert "trusted.overlay.redirect" not in os.listxattr(f)


def make_tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("box\n")
    (root / "bin").mkdir()
    (root / "bin" / "su").write_bytes(b"suid")
    os.chmod(root / "bin" / "su", 0o4755)
    os.link(root / "bin" / "su", root / "bin" / "su2")
    os.symlink("/etc/hostname", root / "etc" / "name")
    os.mkfifo(root / "fifo")  # skipped by export


def test_write_archive_deterministic(tmp_path: Path) -> None:
    make_tree(tmp_path / "tree")
    out1, out2 = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    sha1 = write_archive(out1, [("rootfs/", tmp_path / "tree")], files={"metadata.yaml": b"x"})
    sha2 = write_archive(out2, [("rootfs/", tmp_path / "tree")], files={"metadata.yaml": b"x"})
    assert sha1 == sha2 and out1.read_bytes() == out2.read_bytes()
    assert detect_compression(out1.read_bytes()[:8]) == "gzip"
    with tarfile.open(out1) as tf:
        names = tf.getnames()
        assert names == sorted(names, key=os.fsencode)
        assert names[:2] == ["metadata.yaml", "rootfs"] and "rootfs/fifo" not in names
        assert tf.getmember("rootfs/bin/su").mode == 0o4755
        assert tf.getmember("rootfs/bin/su2").islnk()


@needs_root
@pytest.mark.parametrize("compression", ["gzip", "xz", "none"])
def test_write_then_extract_round_trip(tmp_path: Path, compression: str) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    os.unlink(tree / "fifo")
    os.chown(tree / "etc" / "hostname", 1000, 1000)
    if xattrs_supported(tmp_path):
        os.setxattr(tree / "bin" / "su", "user.bin", b"\x00\x01\xfe")
    out = tmp_path / "t.tar"
    write_archive(out, [("", tree)], compression=compression)
    extract_archive(out, tmp_path / "back")
    from lxmgr.images.fingerprint import fingerprint_tree
    assert fingerprint_tree(tree) == fingerprint_tree(tmp_path / "back")
