"""Snapshot, restore, copy and rename for the overlay and dir drivers, on plain tmp trees."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from lxmgr.errors import Conflict, InvalidConfig, NotFound, NotSupported
from lxmgr.model.idmap import IdMap
from lxmgr.storage.base import StorageDriver
from lxmgr.storage.dir import DirDriver
from lxmgr.storage.overlay import OverlayDriver

IDMAP = IdMap(1000000, 1000000)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path / "state"))
    return tmp_path


@pytest.fixture
def image(tmp_path: Path) -> SimpleNamespace:
    rootfs = tmp_path / "image" / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "os-release").write_text("ID=debian\n")
    return SimpleNamespace(rootfs=rootfs)


def _state(driver: StorageDriver, name: str) -> Path:
    return driver.volume_dir(name) / ("upper" if driver.name == "overlay" else "rootfs")


def _write(driver: StorageDriver, name: str, rel: str, text: str) -> Path:
    path = _state(driver, name) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@needs_root
@pytest.mark.parametrize("kind", [OverlayDriver, DirDriver])
def test_snapshot_restore_copy_rename(kind: type[StorageDriver], image: SimpleNamespace
                                      ) -> None:
    driver = kind(idmapped=True)
    driver.create_volume("c1", image, IDMAP)
    _write(driver, "c1", "srv/data", "v1")
    os.chown(_state(driver, "c1") / "srv" / "data", 1000033, 1000033)
    driver.snapshot_volume("c1", "snap0")
    assert driver.snapshot_exists("c1", "snap0")
    with pytest.raises(Conflict, match="snap0"):
        driver.snapshot_volume("c1", "snap0")
    _write(driver, "c1", "srv/data", "v2")
    _write(driver, "c1", "srv/extra", "x")
    driver.restore_volume("c1", "snap0")
    restored = _state(driver, "c1") / "srv" / "data"
    assert restored.read_text() == "v1" and os.stat(restored).st_uid == 1000033
    assert not (_state(driver, "c1") / "srv" / "extra").exists()
    assert sorted(p.name for p in driver.volume_dir("c1").iterdir() if p.name.startswith("."))\
        == []
    if kind is OverlayDriver:
        assert list((driver.volume_dir("c1") / "work").iterdir()) == []
        assert os.stat(driver.volume_dir("c1") / "work").st_uid == IDMAP.uid_base
    driver.copy_volume("c1", "c2", snapshot="snap0")
    assert (_state(driver, "c2") / "srv" / "data").read_text() == "v1"
    assert not driver.snapshot_exists("c2", "snap0")  # copies take no snapshots along
    with pytest.raises(Conflict):
        driver.copy_volume("c1", "c2")
    driver.rename_volume("c1", "c3")
    assert not driver.volume_exists("c1") and driver.snapshot_exists("c3", "snap0")
    with pytest.raises(Conflict):
        driver.rename_volume("c3", "c2")
    driver.delete_snapshot("c3", "snap0")
    driver.delete_snapshot("c3", "snap0")  # missing: fine
    assert not driver.snapshots_dir("c3").exists()
    driver.snapshot_volume("c3", "keep")
    driver.delete_volume("c3")
    assert not driver.volume_exists("c3") and not driver.snapshots_dir("c3").exists()


@needs_root
def test_overlay_snapshot_keeps_whiteouts_and_xattrs(image: SimpleNamespace) -> None:
    driver = OverlayDriver(idmapped=True)
    driver.create_volume("w1", image, IDMAP)
    upper = _state(driver, "w1")
    (upper / "etc").mkdir()
    os.mknod(upper / "etc" / "os-release", 0o20000 | 0o600, os.makedev(0, 0))  # whiteout
    os.setxattr(upper / "etc", "trusted.overlay.opaque", b"y")
    driver.snapshot_volume("w1", "s")
    snap = driver.snapshot_dir("w1", "s") / "upper" / "etc"
    assert os.stat(snap / "os-release").st_rdev == 0
    assert os.getxattr(snap, "trusted.overlay.opaque") == b"y"


@needs_root
def test_failures_leave_nothing(image: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
                                ) -> None:
    driver = OverlayDriver(idmapped=True)
    driver.create_volume("f1", image, IDMAP)
    with pytest.raises(NotFound):
        driver.restore_volume("f1", "nope")
    with pytest.raises(NotFound):
        driver.copy_volume("nope", "f2")
    assert not driver.volume_exists("f2")
    import lxmgr.storage.copies as copies

    def broken(src: Path, dest: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(copies, "copy_tree", broken)
    with pytest.raises(OSError):
        driver.snapshot_volume("f1", "s1")
    assert not driver.snapshots_dir("f1").exists() or \
        list(driver.snapshots_dir("f1").iterdir()) == []
    with pytest.raises(OSError):
        driver.copy_volume("f1", "f2")
    assert not driver.volume_exists("f2")


def test_names_are_checked(image: SimpleNamespace) -> None:
    driver = OverlayDriver(idmapped=True)
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(InvalidConfig):
            driver.snapshot_dir("c1", bad)


def test_unsupported_by_default() -> None:
    class Plain(StorageDriver):
        name = "plain-test"

        def create_volume(self, name: str, image: object, idmap: object) -> None:
            pass

        def rootfs_spec(self, name: str, image_rootfs: object, idmap: object) -> object:
            return None

    from lxmgr.storage.base import DRIVERS

    try:
        with pytest.raises(NotSupported, match="plain-test"):
            Plain().snapshot_volume("c1", "s")
    finally:
        DRIVERS.pop("plain-test", None)
