"""The btrfs driver on a real loop-backed pool: image import, constant-time volumes,
snapshot/restore/copy/rename, qgroup limits, idmapped binds, the shifted fallback, and pools
that leave no mount, loop device or file behind.

Each test runs in a forked child that unshares its mount namespace and makes / private, so
the pool mount never shows in the host's table; the pool's loop device is bound with
autoclear, so even a crashed child releases it when its namespace dies. The child reports
JSON and leaves through os._exit; the parent asserts, then checks from the host side that
no loop device still backs the pool file and removes it.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import stat
import struct
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from lxmgr.linux import btrfs as btrfs_ioctl
from lxmgr.linux import consts as c
from lxmgr.linux import libc, loop
from lxmgr.linux.idmapped import open_userns_fd
from lxmgr.model.idmap import IdMap
from lxmgr.runtime.rootfs import mount_rootfs
from lxmgr.storage import btrfs_pool
from lxmgr.storage.btrfs import BtrfsDriver

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(60)]
IDMAP = IdMap(1000000, 1000000)
POOL_SIZE = 512 * 1024 * 1024
CAPS_V2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_raw=ep
Work = Callable[[BtrfsDriver], dict[str, object]]


def missing_prerequisite() -> str:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("mkfs.btrfs", "btrfs", "cp"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt-get install btrfs-progs)"
    if not os.path.exists(loop.LOOP_CONTROL):
        return "no /dev/loop-control (loop module)"
    with open("/proc/filesystems") as f:
        if "btrfs" not in f.read().split():
            return "the kernel has no btrfs"
    return ""


@pytest.fixture(autouse=True)
def prerequisites() -> None:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)


class FakeImage:
    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeImage:
    """A tiny image in a tmp LXMGR_DIR: a setuid file, file caps, a symlink, a hard link."""
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path / "state"))
    rootfs = tmp_path / "state" / "images" / secrets.token_hex(32) / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    os.chmod(rootfs, 0o755)
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


def in_pool(tmp_path: Path, work: Work, idmapped: bool = True) -> dict[str, object]:
    """Run work(driver) in a forked child, on a fresh loop pool in a private mount namespace;
    the pool is deleted in the child and its traces checked from both sides."""
    pool_file = tmp_path / f"pool-{secrets.token_hex(4)}.img"
    mount_dir = tmp_path / "mnt"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(pool_file, mount_dir, work, idmapped, w)
    os.close(w)
    try:
        with os.fdopen(r) as f:
            raw = f.read()
        _, wstatus = os.waitpid(pid, 0)
    finally:
        left = btrfs_pool.wait_detached(pool_file)  # autoclear, once the child's ns is gone
        pool_file.unlink(missing_ok=True)
    assert left == [], f"loop devices still back {pool_file}: {left}"
    assert os.waitstatus_to_exitcode(wstatus) == 0
    result = json.loads(raw)
    assert "error" not in result, result["error"]
    assert result["mounted_after"] is False and result["loops_after"] == []
    assert result["file_after"] is False
    assert not btrfs_pool.is_mounted(mount_dir)
    return result


def _child(pool_file: Path, mount_dir: Path, work: Work, idmapped: bool, w: int) -> None:
    status = 1
    try:
        libc.unshare(c.CLONE_NEWNS)
        libc.mount(None, "/", None, c.MS_REC | c.MS_PRIVATE)
        result: dict[str, object] = {}
        try:
            pool = btrfs_pool.create_loop_pool(pool_file, POOL_SIZE, mount_dir)
            try:
                result = work(BtrfsDriver(pool.mount_dir, idmapped=idmapped))
            finally:
                btrfs_pool.delete_pool(pool)
            result.update(mounted_after=btrfs_pool.is_mounted(mount_dir),
                          loops_after=loop.devices_backed_by(pool_file),
                          file_after=pool_file.exists())
        except Exception:  # report, do not raise out of the fork
            result = {"error": traceback.format_exc()}
        os.write(w, json.dumps(result).encode())
        status = 0
    finally:
        os._exit(status)


def timed(fn: Callable[[], object]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def test_volume_lifecycle(image: FakeImage, tmp_path: Path) -> None:
    def work(driver: BtrfsDriver) -> dict[str, object]:
        out: dict[str, object] = {}
        out["t_import"] = timed(lambda: driver.ensure_image(image))
        out["t_create"] = timed(lambda: driver.create_volume("c1", image, IDMAP))
        img = driver.image_dir(image.rootfs.parent.name)
        rootfs = driver.volume_dir("c1") / "rootfs"
        out["image_ro"] = bool(btrfs_ioctl.subvol_getflags(img) & btrfs_ioctl.BTRFS_SUBVOL_RDONLY)
        out["suid"] = stat.S_IMODE(os.stat(rootfs / "suid").st_mode)
        out["caps"] = os.getxattr(rootfs / "ping", "security.capability") == CAPS_V2
        out["link"] = os.readlink(rootfs / "link")
        out["hardlink"] = os.stat(rootfs / "home5").st_ino == os.stat(rootfs / "home5-link").st_ino
        out["home5_uid"] = os.stat(rootfs / "home5").st_uid
        out["root_mode"] = stat.S_IMODE(os.stat(rootfs).st_mode)
        (rootfs / "data").write_text("one\n")
        out["t_snapshot"] = timed(lambda: driver.snapshot_volume("c1", "s0"))
        try:
            (driver.snapshot_dir("c1", "s0") / "rootfs" / "x").write_text("x")
            out["snap_writable"] = True
        except OSError as err:
            out["snap_writable"] = err.errno
        (rootfs / "data").write_text("two\n")
        (rootfs / "etc" / "hostname").unlink()
        out["t_restore"] = timed(lambda: driver.restore_volume("c1", "s0"))
        out["restored"] = (rootfs / "data").read_text()
        out["hostname_back"] = (rootfs / "etc" / "hostname").exists()
        (rootfs / "data").write_text("three\n")
        driver.copy_volume("c1", "fromsnap", snapshot="s0")
        driver.copy_volume("c1", "live")
        out["copies"] = [(driver.volume_dir(n) / "rootfs" / "data").read_text()
                         for n in ("fromsnap", "live")]
        btrfs_ioctl.subvol_create(driver.volume_dir("live") / "rootfs" / "nested")
        (driver.volume_dir("live") / "rootfs" / "nested" / "f").write_text("n")
        driver.rename_volume("c1", "c2")
        out["renamed"] = [driver.volume_exists("c1"), driver.volume_exists("c2"),
                          driver.list_snapshots("c2"), driver.snapshots_dir("c1").exists()]
        for name in ("c2", "fromsnap", "live"):
            driver.delete_volume(name)
        driver.delete_image(image.rootfs.parent.name)
        pool = driver.pool_dir()
        out["left"] = sorted(str(p.relative_to(pool)) for p in pool.rglob("*"))
        out["usage"] = driver.usage()
        return out

    result = in_pool(tmp_path, work)
    print({k: round(v * 1000, 2) for k, v in result.items() if k.startswith("t_")}, "ms")
    assert result["t_create"] < 0.05 and result["t_snapshot"] < 0.05
    assert result["t_restore"] < 0.1
    assert result["image_ro"] is True
    assert result["suid"] == 0o4755 and result["caps"] is True
    assert result["link"] == "/etc/hostname" and result["hardlink"] is True
    assert result["home5_uid"] == 5  # idmapped: the volume stays unshifted on disk
    assert result["root_mode"] == 0o755
    assert result["snap_writable"] == errno.EROFS
    assert result["restored"] == "one\n" and result["hostname_back"] is True
    assert result["copies"] == ["one\n", "three\n"]
    assert result["renamed"] == [False, True, ["s0"], False]
    assert result["left"] == [".snapshots", "containers", "images"]
    usage = result["usage"]
    assert isinstance(usage, dict) and usage["total"] > 400 * 1024 * 1024
    assert 0 < usage["used"] < usage["total"]


def test_qgroup_limit(image: FakeImage, tmp_path: Path) -> None:
    def work(driver: BtrfsDriver) -> dict[str, object]:
        driver.create_volume("q1", image, None)
        before = driver.volume_usage("q1")
        driver.set_size("q1", 8 * 1024 * 1024)
        driver.snapshot_volume("q1", "s0")
        driver.restore_volume("q1", "s0")  # the limit follows the swapped-in subvolume
        out: dict[str, object] = {"before": before, "write": _fill(driver, "q1", 32)}
        out["usage"] = driver.volume_usage("q1")
        driver.set_size("q1", None)
        out["unlimited"] = _fill(driver, "q1", 16)
        driver.delete_volume("q1")
        return out

    result = in_pool(tmp_path, work)
    assert result["before"] is None  # quotas are off until the first set_size
    assert result["write"] in (errno.EDQUOT, errno.ENOSPC)
    assert isinstance(result["usage"], int) and result["usage"] <= 8 * 1024 * 1024
    assert result["unlimited"] == 0


def _fill(driver: BtrfsDriver, name: str, mib: int) -> int:
    """Write mib MiB into the volume; 0 or the errno that stopped it."""
    try:
        with open(driver.volume_dir(name) / "rootfs" / f"big{mib}", "wb") as f:
            for _ in range(mib):
                f.write(b"\xa5" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        return err.errno or -1
    return 0


def test_idmapped_bind(image: FakeImage, tmp_path: Path) -> None:
    def work(driver: BtrfsDriver) -> dict[str, object]:
        driver.create_volume("m1", image, IDMAP)
        spec = driver.rootfs_spec("m1", image.rootfs, IDMAP)
        userns_fd = open_userns_fd(IDMAP.uid_map_text(), IDMAP.gid_map_text())
        mount_rootfs(spec, userns_fd)
        host_view = os.stat(Path(spec.target) / "home5").st_uid
        pid = os.fork()
        if pid == 0:  # container root writes a file through the idmapped bind
            try:
                os.chdir(spec.target)
                libc.setns(userns_fd, c.CLONE_NEWUSER)
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
                Path("new").write_text("x")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        libc.umount2(spec.target)
        on_disk = os.stat(driver.volume_dir("m1") / "rootfs" / "new").st_uid
        driver.delete_volume("m1")
        return {"host": host_view, "on_disk": on_disk}

    assert in_pool(tmp_path, work) == {"host": 1000005, "on_disk": 0, "mounted_after": False,
                                       "loops_after": [], "file_after": False}


def test_shifted_fallback(image: FakeImage, tmp_path: Path) -> None:
    def work(driver: BtrfsDriver) -> dict[str, object]:
        driver.create_volume("s1", image, IDMAP)
        rootfs = driver.volume_dir("s1") / "rootfs"
        img = driver.image_dir(image.rootfs.parent.name) / "rootfs"
        caps = os.getxattr(rootfs / "ping", "security.capability")
        out = {"uids": [os.lstat(rootfs / n).st_uid for n in ("home5", "link", ".")],
               "suid": stat.S_IMODE(os.stat(rootfs / "suid").st_mode),
               "caps_rootid": struct.unpack("<IIIIII", caps)[5],
               "image_uid": os.stat(img / "home5").st_uid,
               "spec_idmapped": driver.rootfs_spec("s1", image.rootfs, IDMAP).idmap_lower}
        driver.delete_volume("s1")
        return out

    result = in_pool(tmp_path, work, idmapped=False)
    assert result["uids"] == [1000005, 1000000, 1000000]
    assert result["suid"] == 0o4755 and result["caps_rootid"] == 1000000
    assert result["image_uid"] == 5 and result["spec_idmapped"] is False


def test_pool_remount_keeps_data(tmp_path: Path) -> None:
    def work(driver: BtrfsDriver) -> dict[str, object]:
        (driver.pool_dir() / "marker").write_text("kept\n")
        source = _pool_file(driver.pool_dir())
        pool = btrfs_pool.PoolSource("loop", source, driver.pool_dir())
        btrfs_pool.unmount_pool(pool)
        out: dict[str, object] = {"unmounted": not btrfs_pool.is_mounted(pool.mount_dir),
                                  "loops": loop.devices_backed_by(source)}
        again = btrfs_pool.mount_pool(pool)
        out["device"] = again.device.startswith("/dev/loop")
        out["marker"] = (driver.pool_dir() / "marker").read_text()
        out["idempotent"] = btrfs_pool.mount_pool(pool) == pool
        return out

    result = in_pool(tmp_path, work)
    assert result["unmounted"] is True and result["loops"] == []
    assert result["device"] is True and result["marker"] == "kept\n"
    assert result["idempotent"] is True


def _pool_file(mount_dir: Path) -> Path:
    """The image file of the loop pool mounted on mount_dir (in_pool puts it next to it)."""
    return next(p for p in mount_dir.parent.glob("pool-*.img"))


def test_failed_mount_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool_file = tmp_path / f"fail-{secrets.token_hex(4)}.img"

    def broken_mount(*args: object) -> None:
        raise OSError(errno.EIO, "mount: injected")

    monkeypatch.setattr(libc, "mount", broken_mount)
    with pytest.raises(Exception, match="Failed to mount pool"):
        btrfs_pool.create_loop_pool(pool_file, POOL_SIZE, tmp_path / "mnt")
    assert btrfs_pool.wait_detached(pool_file) == []
    assert not pool_file.exists() and not (tmp_path / "mnt").exists()
