"""Custom volumes of dir and overlay pools on a tmp tree: a fresh volume's root, snapshots
that are copies, restore, copies in and across pools, renames, and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lxmgr.errors import Conflict, NotFound, NotSupported
from lxmgr.storage import custom
from lxmgr.storage.custom import DirCustomVolumes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a volume's root is chowned to root")


@pytest.fixture
def vols(tmp_path: Path) -> DirCustomVolumes:
    volumes = custom.load("overlay", "p1", tmp_path / "pool")
    assert isinstance(volumes, DirCustomVolumes)
    return volumes


def test_new_volume_is_an_empty_root_owned_0711_dir(vols: DirCustomVolumes,
                                                    tmp_path: Path) -> None:
    vols.create("data")
    path = vols.existing("data")
    assert path == tmp_path / "pool" / ".custom" / "data"
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o711)
    assert list(path.iterdir()) == []
    with pytest.raises(Conflict, match="already exists"):
        vols.create("data")


def test_snapshot_restore_rename_delete(vols: DirCustomVolumes) -> None:
    vols.create("data")
    (vols.volume_path("data") / "f").write_text("one\n")
    os.chown(vols.volume_path("data") / "f", 1000, 1000)
    vols.snapshot("data", "s0")
    snap = vols.existing("data", "s0")
    assert (snap / "f").read_text() == "one\n" and (snap / "f").stat().st_uid == 1000
    (vols.volume_path("data") / "f").write_text("two\n")
    (vols.volume_path("data") / "g").write_text("new\n")
    vols.restore("data", "s0")
    assert sorted(p.name for p in vols.existing("data").iterdir()) == ["f"]
    assert (vols.volume_path("data") / "f").read_text() == "one\n"
    assert vols.existing("data").stat().st_mode & 0o7777 == 0o711
    with pytest.raises(Conflict, match="already exists"):
        vols.snapshot("data", "s0")
    vols.rename_snapshot("data", "s0", "s1")
    vols.rename("data", "moved")
    assert vols.list_snapshots("moved") == ["s1"] and not vols.exists("data")
    vols.delete("moved")
    assert not vols.exists("moved") and vols.list_snapshots("moved") == []
    leftovers = [p.name for p in (vols.pool_dir / ".custom").iterdir()]
    assert leftovers == []


def test_import_across_pools(vols: DirCustomVolumes, tmp_path: Path) -> None:
    other = custom.load("dir", "p2", tmp_path / "other")
    vols.create("data")
    (vols.volume_path("data") / "f").write_text("one\n")
    vols.snapshot("data", "s0")
    other.import_snapshot(vols.existing("data", "s0"), "copy", "s0")
    other.import_volume(vols.existing("data"), "copy")
    assert (other.existing("copy") / "f").read_text() == "one\n"
    assert other.list_snapshots("copy") == ["s0"]
    with pytest.raises(Conflict):
        other.import_volume(vols.existing("data"), "copy")


def test_leftovers_are_never_taken_over(vols: DirCustomVolumes) -> None:
    vols.volume_path("stale").mkdir(parents=True)
    with pytest.raises(Conflict, match="already exists"):
        vols.check_free("stale")
    with pytest.raises(Conflict):
        vols.create("stale")
    assert vols.volume_path("stale").is_dir()


def test_missing_and_unsupported(vols: DirCustomVolumes) -> None:
    with pytest.raises(NotFound, match=r"^Storage volume 'nope' is missing from pool 'p1'$"):
        vols.existing("nope")
    vols.create("data")
    with pytest.raises(NotFound, match="snapshot 'data/s9'"):
        vols.restore("data", "s9")
    with pytest.raises(NotSupported, match="can't limit a volume's size"):
        vols.set_size("data", 1 << 30)
    vols.delete_snapshot("data", "s9")  # missing is fine
    with pytest.raises(NotSupported, match="driver 'zfs'"):
        custom.load("zfs", "z", vols.pool_dir)
