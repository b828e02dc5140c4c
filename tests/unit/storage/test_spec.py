"""Driver registry, pure RootfsSpec building, IdMap and the shift helpers' byte formats."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lxmgr.errors import InvalidConfig, UnknownDriver
from lxmgr.model.idmap import IdMap
from lxmgr.storage import shift
from lxmgr.storage.base import DRIVERS, RootfsSpec, load
from lxmgr.storage.dir import DirDriver
from lxmgr.storage.overlay import OverlayDriver, shifted_dir

IDMAP = IdMap(1000000, 1000000)
IMAGE = "/var/lib/lxmgr/images/" + "f" * 64 + "/rootfs"


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    return tmp_path


def test_registry() -> None:
    assert isinstance(load("dir"), DirDriver)
    assert isinstance(load("overlay"), OverlayDriver)
    assert set(DRIVERS) >= {"dir", "overlay"}
    assert OverlayDriver.constant_time_create and not DirDriver.constant_time_create
    with pytest.raises(UnknownDriver, match="'zfs'"):
        load("zfs")


def test_overlay_spec_idmapped(state: Path) -> None:
    spec = OverlayDriver(idmapped=True).rootfs_spec("c1", IMAGE, IDMAP)
    vol = state / "storage" / "overlay" / "c1"
    assert spec == RootfsSpec("overlay", target=f"{vol}/rootfs", lower=IMAGE,
                              upper=f"{vol}/upper", work=f"{vol}/work", idmap_lower=True)
    assert spec.overlay_options("/proc/self/fd/7") == (
        f"lowerdir=/proc/self/fd/7,upperdir={vol}/upper,workdir={vol}/work,"
        "index=off,metacopy=off,redirect_dir=off")
    assert "idmapped" in spec.describe()


def test_overlay_spec_privileged_and_shifted(state: Path) -> None:
    assert OverlayDriver(idmapped=True).rootfs_spec("c1", IMAGE, None).idmap_lower is False
    spec = OverlayDriver(idmapped=False).rootfs_spec("c1", IMAGE, IDMAP)
    assert not spec.idmap_lower
    assert spec.lower == str(state / "storage" / "shifted" / ("f" * 64 + "-1000000"))
    assert shifted_dir(IMAGE, IdMap(100000, 200000)).name == "f" * 64 + "-100000-200000"


def test_dir_spec(state: Path) -> None:
    spec = DirDriver(idmapped=True).rootfs_spec("c1", IMAGE, IDMAP)
    rootfs = str(state / "storage" / "dir" / "c1" / "rootfs")
    assert spec == RootfsSpec("bind", target=rootfs, source=rootfs, idmap_lower=True)
    assert DirDriver(idmapped=True).rootfs_spec("c1", IMAGE, None).idmap_lower is False


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "-x", "", "a" * 64])
def test_volume_names_are_checked(name: str) -> None:
    with pytest.raises(InvalidConfig):
        OverlayDriver(idmapped=True).rootfs_spec(name, IMAGE, None)


def test_overlay_options_reject_separators() -> None:
    spec = RootfsSpec("overlay", "/t", lower="/l", upper="/u,x", work="/w")
    with pytest.raises(InvalidConfig):
        spec.overlay_options("/l")


def test_idmap() -> None:
    assert IDMAP.uid_map_text() == "0 1000000 65536\n"
    assert IdMap(1000, 2000, 10).gid_map_text() == "0 2000 10\n"
    assert IDMAP.host_uid(5) == 1000005 and IDMAP.host_gid(0) == 1000000
    with pytest.raises(InvalidConfig):
        IDMAP.host_uid(65536)
    with pytest.raises(InvalidConfig):
        IdMap(0, 1000000)


def test_shift_caps_v2_becomes_v3_with_rootid() -> None:
    v2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_raw=ep
    v3 = shift.shift_caps(v2, IDMAP)
    assert struct.unpack("<IIIIII", v3) == (0x03000001, 1 << 13, 0, 0, 0, 1000000)
    assert shift.shift_caps(v3[:20] + struct.pack("<I", 0), IDMAP) == v3
    with pytest.raises(InvalidConfig):
        shift.shift_caps(struct.pack("<I", 0x01000000) + b"\0" * 8, IDMAP)


def test_shift_acl_moves_named_entries_only() -> None:
    entries = [(0x01, 7, 0xFFFFFFFF), (0x02, 6, 33), (0x04, 5, 0xFFFFFFFF), (0x08, 4, 5),
               (0x10, 7, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    out = shift.shift_acl(value, IDMAP)
    got = [struct.unpack_from("<HHI", out, 4 + 8 * i) for i in range(len(entries))]
    assert got[1] == (0x02, 6, 1000033) and got[3] == (0x08, 4, 1000005)
    assert [g for i, g in enumerate(got) if i not in (1, 3)] == \
        [e for i, e in enumerate(entries) if i not in (1, 3)]
