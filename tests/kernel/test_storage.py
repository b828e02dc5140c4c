"""Real volumes and rootfs mounts: overlay over an idmapped lower, dir, the shifted fallback.

Every mount happens in a forked child that first unshares its mount namespace and makes /
private, so the host mount table never changes; the child reports its findings as JSON and
always leaves through os._exit. State lives under a per-test LXMGR_DIR.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lxmgr.errors import RuntimeSetupError
from lxmgr.images.fingerprint import fingerprint_tree
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.linux.idmapped import open_userns_fd
from lxmgr.model.idmap import IdMap
from lxmgr.runtime.rootfs import mount_rootfs
from lxmgr.storage.base import RootfsSpec
from lxmgr.storage.dir import DirDriver
from lxmgr.storage.mount import supports_idmapped_overlay
from lxmgr.storage.overlay import OverlayDriver, shifted_dir

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]
IDMAP = IdMap(1000000, 1000000)
CAPS_V2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_raw=ep


class FakeImage:
    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeImage:
    """A tiny 'image' in a tmp LXMGR_DIR: root-owned files, one owned by uid 5."""
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path / "state"))
    rootfs = tmp_path / "state" / "images" / ("e" * 64) / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hostname").write_text("image\n")
    (rootfs / "home5").write_text("uid five\n")
    os.chown(rootfs / "home5", 5, 5)
    (rootfs / "suid").write_text("x")
    os.chmod(rootfs / "suid", 0o4755)
    (rootfs / "ping").write_text("x")
    os.setxattr(rootfs / "ping", "security.capability", CAPS_V2)
    os.link(rootfs / "home5", rootfs / "home5-link")
    os.symlink("/etc/hostname", rootfs / "link")
    return FakeImage(rootfs)


def in_child(work: Callable[[], dict[str, object]]) -> dict[str, object]:
    """Run work() in a forked child with a private mount namespace; return its dict."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(r)
            libc.unshare(c.CLONE_NEWNS)
            libc.mount(None, "/", None, c.MS_REC | c.MS_PRIVATE)
            try:
                result = work()
            except Exception as err:  # report, do not raise out of the fork
                result = {"error": f"{type(err).__name__}: {err}"}
            os.write(w, json.dumps(result).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r) as f:
        raw = f.read()
    _, wstatus = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wstatus) == 0
    result = json.loads(raw)
    assert "error" not in result, result["error"]
    return result


def enter_userns(userns_fd: int) -> None:
    """Become container root: setns into the userns, then uid/gid 0 there (host 1000000).

    Call after chdir() into the rootfs: pytest's tmp dirs are mode 0700, host-root owned."""
    libc.setns(userns_fd, c.CLONE_NEWUSER)
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def host_mounts_mention(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(str(path) in line for line in f)


def test_probe_finds_idmapped_overlay(image: FakeImage) -> None:
    assert supports_idmapped_overlay() is True


def test_mount_refused_in_host_namespace(image: FakeImage, tmp_path: Path) -> None:
    spec = RootfsSpec("bind", target=str(tmp_path), source=str(image.rootfs))
    with pytest.raises(RuntimeSetupError, match="shared mount namespace"):
        mount_rootfs(spec, None)
    assert not host_mounts_mention(tmp_path)


def test_overlay_idmapped(image: FakeImage, tmp_path: Path) -> None:
    driver = OverlayDriver()
    before = fingerprint_tree(image.rootfs)
    started = time.monotonic()
    driver.create_volume("c1", image, IDMAP)
    elapsed = time.monotonic() - started
    vol = driver.volume_dir("c1")
    try:
        assert elapsed < 0.1
        assert list((vol / "upper").iterdir()) == []  # nothing copied
        assert os.stat(vol / "upper").st_uid == 1000000
        assert os.stat(vol / "work").st_gid == 1000000
        assert os.stat(image.rootfs / "etc").st_uid == 0  # no recursive chown
        spec = driver.rootfs_spec("c1", image.rootfs, IDMAP)
        assert spec.kind == "overlay" and spec.idmap_lower

        def work() -> dict[str, object]:
            userns_fd = open_userns_fd(IDMAP.uid_map_text(), IDMAP.gid_map_text())
            mount_rootfs(spec, userns_fd)
            root = Path(spec.target)
            host_view = [os.stat(root / n).st_uid for n in ("etc/hostname", "home5", ".")]
            os.chdir(root)  # the tmp path above is not searchable by container root
            enter_userns(userns_fd)
            inside = [os.stat(n).st_uid for n in ("etc/hostname", "home5")]
            Path("newfile").write_text("new\n")
            with open("etc/hostname", "a") as f:  # copy-up
                f.write("more\n")
            os.chown("newfile", 33, 33)
            return {"host": host_view, "inside": inside}

        result = in_child(work)
        assert result == {"host": [1000000, 1000005, 1000000], "inside": [0, 5]}
        assert os.stat(vol / "upper" / "newfile").st_uid == 1000033
        assert os.stat(vol / "upper" / "etc" / "hostname").st_uid == 1000000
        assert not host_mounts_mention(tmp_path)
    finally:
        driver.delete_volume("c1")
    assert not vol.exists()
    assert fingerprint_tree(image.rootfs) == before  # the image is untouched


def test_overlay_privileged(image: FakeImage, tmp_path: Path) -> None:
    driver = OverlayDriver()
    driver.create_volume("priv", image, None)
    try:
        spec = driver.rootfs_spec("priv", image.rootfs, None)
        assert not spec.idmap_lower

        def work() -> dict[str, object]:
            mount_rootfs(spec, None)
            (Path(spec.target) / "new").write_text("x")
            return {"uids": [os.stat(Path(spec.target) / n).st_uid for n in ("home5", "new")]}

        assert in_child(work) == {"uids": [5, 0]}
        assert (driver.volume_dir("priv") / "upper" / "new").exists()
        assert not (image.rootfs / "new").exists()
        assert not host_mounts_mention(tmp_path)
    finally:
        driver.delete_volume("priv")


def test_dir_idmapped(image: FakeImage, tmp_path: Path) -> None:
    driver = DirDriver()
    driver.create_volume("d1", image, IDMAP)
    try:
        rootfs = driver.volume_dir("d1") / "rootfs"
        assert os.stat(rootfs / "home5").st_uid == 5  # the copy stays unshifted on disk
        assert os.getxattr(rootfs / "ping", "security.capability") == CAPS_V2
        spec = driver.rootfs_spec("d1", image.rootfs, IDMAP)

        def work() -> dict[str, object]:
            userns_fd = open_userns_fd(IDMAP.uid_map_text(), IDMAP.gid_map_text())
            mount_rootfs(spec, userns_fd)
            host_view = os.stat(Path(spec.target) / "home5").st_uid
            os.chdir(spec.target)
            enter_userns(userns_fd)
            Path("new").write_text("x")
            return {"host": host_view}

        assert in_child(work) == {"host": 1000005}
        assert os.stat(rootfs / "new").st_uid == 0  # written by container root
        assert not host_mounts_mention(tmp_path)
    finally:
        driver.delete_volume("d1")
    assert not driver.volume_exists("d1")


def test_overlay_shifted_fallback(image: FakeImage, tmp_path: Path) -> None:
    driver = OverlayDriver(idmapped=False)
    driver.create_volume("s1", image, IDMAP)
    driver.create_volume("s2", image, IDMAP)  # reuses the same shifted copy
    try:
        lower = shifted_dir(image.rootfs, IDMAP)
        assert os.lstat(lower / "home5").st_uid == 1000005
        assert os.lstat(lower / "link").st_uid == 1000000
        assert os.stat(lower / "suid").st_mode & 0o7777 == 0o4755
        caps = os.getxattr(lower / "ping", "security.capability")
        assert struct.unpack("<IIIIII", caps) == (0x03000001, 1 << 13, 0, 0, 0, 1000000)
        assert os.stat(image.rootfs / "home5").st_uid == 5  # the image is untouched
        spec = driver.rootfs_spec("s1", image.rootfs, IDMAP)
        assert spec.lower == str(lower) and not spec.idmap_lower

        def work() -> dict[str, object]:
            mount_rootfs(spec, None)
            return {"uid": os.stat(Path(spec.target) / "home5").st_uid}

        assert in_child(work) == {"uid": 1000005}
        assert not host_mounts_mention(tmp_path)
    finally:
        driver.delete_volume("s1")
        driver.delete_volume("s2")
