"""Pure parts of the btrfs driver and pools: layout, mount plans, argv builders, qgroup
parsing, ioctl numbers and struct sizes, loop lookup on a fake sysfs tree."""

from __future__ import annotations

import ctypes
import errno
from pathlib import Path

import pytest

from lxmgr.errors import Conflict, InvalidConfig, KernelError, NotFound, NotSupported
from lxmgr.linux import btrfs, loop
from lxmgr.model.idmap import IdMap
from lxmgr.storage import btrfs_pool
from lxmgr.storage.base import DRIVERS
from lxmgr.storage.btrfs import BtrfsDriver, translated
from lxmgr.storage.btrfs_utils import Qgroup, build_limit_argv, parse_qgroup_show

IDMAP = IdMap(1000000, 1000000)

SHOW_6_2 = """\
Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path
--------    ----------    ---------  --------------  -------------   ----
0/259         10469376        16384        10485760           none   containers/c 1
"""
SHOW_5_X = """\
qgroupid         rfer         excl     max_rfer     max_excl
--------         ----         ----     --------     --------
0/5             16384        16384         none         none
0/257          409600         8192      1048576         none
"""


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    return tmp_path


def test_registered_with_flags() -> None:
    assert DRIVERS["btrfs"] is BtrfsDriver
    assert BtrfsDriver.can_snapshot and BtrfsDriver.constant_time_snapshot
    assert BtrfsDriver.constant_time_create and not BtrfsDriver.shares_image


def test_layout(state: Path, tmp_path: Path) -> None:
    assert BtrfsDriver().pool_dir() == state / "storage" / "btrfs"
    driver = BtrfsDriver(tmp_path / "pool")
    assert driver.volume_dir("c1") == tmp_path / "pool" / "containers" / "c1"
    assert driver.snapshot_dir("c1", "s0") == tmp_path / "pool" / ".snapshots" / "c1" / "s0"
    assert driver.image_dir("ab" * 32) == tmp_path / "pool" / "images" / ("ab" * 32)
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(InvalidConfig):
            driver.image_dir(bad)
    with pytest.raises(InvalidConfig):
        driver.volume_dir("../etc")


@pytest.mark.parametrize(("idmapped", "idmap", "expect"),
                         [(True, IDMAP, True), (False, IDMAP, False), (True, None, False)])
def test_rootfs_spec_binds_the_volume_rootfs(tmp_path: Path, idmapped: bool,
                                             idmap: IdMap | None, expect: bool) -> None:
    driver = BtrfsDriver(tmp_path, idmapped=idmapped)
    spec = driver.rootfs_spec("c1", "/unused", idmap)
    rootfs = str(tmp_path / "containers" / "c1" / "rootfs")
    assert (spec.kind, spec.source, spec.target) == ("bind", rootfs, rootfs)
    assert spec.idmap_lower is expect
    # the runtime wants the rootfs strictly inside the volume dir (check_rootfs)
    assert Path(spec.source).parent == driver.volume_dir("c1")


def test_not_a_btrfs_pool(tmp_path: Path) -> None:
    driver = BtrfsDriver(tmp_path)

    class Image:
        rootfs = tmp_path / ("e" * 64) / "rootfs"

    if btrfs_pool.is_btrfs(tmp_path):
        pytest.skip("the tmp dir is on btrfs")
    with pytest.raises(NotSupported, match="not a mounted btrfs"):
        driver.create_volume("c1", Image(), None)
    with pytest.raises(NotFound, match="Volume 'c1' does not exist"):
        driver.snapshot_volume("c1", "s0")


def test_parse_qgroup_show_current_progs() -> None:
    assert parse_qgroup_show(SHOW_6_2) == [Qgroup("0/259", 10469376, 16384, 10485760, None)]


def test_parse_qgroup_show_old_progs() -> None:
    rows = parse_qgroup_show(SHOW_5_X)
    assert rows[1] == Qgroup("0/257", 409600, 8192, 1048576, None)
    assert rows[0].max_referenced is None
    assert parse_qgroup_show("ERROR: can't list qgroups: quotas not enabled\n") == []


def test_limit_argv(tmp_path: Path) -> None:
    assert build_limit_argv(tmp_path, 1 << 20) == ["btrfs", "qgroup", "limit", "1048576",
                                                   str(tmp_path)]
    assert build_limit_argv(tmp_path, None)[3] == "none"
    with pytest.raises(ValueError):
        build_limit_argv(tmp_path, 0)


def test_mkfs_argv() -> None:
    assert btrfs_pool.build_mkfs_argv(Path("/f.img"), "p1") == \
        ["mkfs.btrfs", "-q", "-L", "p1", "/f.img"]
    assert "-f" in btrfs_pool.build_mkfs_argv(Path("/dev/sdz"), force=True)
    assert "-f" not in btrfs_pool.build_mkfs_argv(Path("/dev/sdz"))


def test_loop_pool_too_small(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="below the btrfs minimum"):
        btrfs_pool.create_loop_pool(tmp_path / "p.img", 1 << 20, tmp_path / "mnt")
    assert not (tmp_path / "p.img").exists()


def test_block_pool_needs_a_block_device(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(InvalidConfig, match="not a block device"):
        btrfs_pool.create_block_pool(tmp_path / "f", tmp_path / "mnt", format=True)


def test_ioctl_numbers_match_the_header() -> None:
    # values of the _IOW/_IOR macros as compiled from <linux/btrfs.h> on x86_64
    assert btrfs.BTRFS_IOC_SUBVOL_CREATE == 0x5000940E
    assert btrfs.BTRFS_IOC_SNAP_DESTROY == 0x5000940F
    assert btrfs.BTRFS_IOC_INO_LOOKUP == 0xD0009412
    assert btrfs.BTRFS_IOC_SNAP_CREATE_V2 == 0x50009417
    assert btrfs.BTRFS_IOC_SUBVOL_GETFLAGS == 0x80089419
    assert btrfs.BTRFS_IOC_SUBVOL_SETFLAGS == 0x4008941A
    assert btrfs.BTRFS_IOC_FS_INFO == 0x8400941F
    assert ctypes.sizeof(loop.loop_info64) == 232
    assert ctypes.sizeof(loop.loop_config) == 304


def test_devices_backed_by_reads_sysfs(tmp_path: Path) -> None:
    image = tmp_path / "pool.img"
    for dev, backing in (("loop0", "/other.img"), ("loop3", f"{image}"),
                         ("loop7", f"{image} (deleted)")):
        (tmp_path / "sys" / dev / "loop").mkdir(parents=True)
        (tmp_path / "sys" / dev / "loop" / "backing_file").write_text(backing + "\n")
    (tmp_path / "sys" / "loop9").mkdir()  # unbound: no loop/ directory
    assert loop.devices_backed_by(image, str(tmp_path / "sys")) == ["/dev/loop3", "/dev/loop7"]


def test_mountinfo_unescape() -> None:
    assert btrfs_pool._unescape("/tmp/a\\040b") == "/tmp/a b"
    assert btrfs_pool._unescape("/plain") == "/plain"


@pytest.mark.parametrize(("code", "cls"), [(errno.EEXIST, Conflict), (errno.ENOENT, NotFound),
                                           (errno.EIO, KernelError)])
def test_translated(code: int, cls: type[Exception]) -> None:
    with pytest.raises(cls, match="^Failed to snapshot 'c1': "), \
            translated("Failed to snapshot 'c1'"):
        raise OSError(code, "BTRFS_IOC_SNAP_CREATE_V2: x", "/p")
