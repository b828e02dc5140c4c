"""A snapshot whose copy fails (a full disk) leaves nothing behind: no partial snapshot, no
temp dir, not even the instance's snapshots directory made for it."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from lxmgr.errors import CommandError
from lxmgr.model.idmap import IdMap
from lxmgr.storage import copies
from lxmgr.storage.overlay import OverlayDriver

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def test_failed_snapshot_copy_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path / "state"))
    rootfs = tmp_path / "image" / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    driver = OverlayDriver(idmapped=True)
    driver.create_volume("c1", SimpleNamespace(rootfs=rootfs), IdMap(1000000, 1000000))

    def full(src: Path, dest: Path) -> None:
        (dest / "half-copied").write_text("x")
        raise CommandError(["cp", "-a"], 1, f"cp: error writing '{dest}': No space left on "
                           "device")

    monkeypatch.setattr(copies, "copy_tree", full)
    with pytest.raises(CommandError, match="No space left on device"):
        driver.snapshot_volume("c1", "s1")
    assert not driver.snapshot_exists("c1", "s1")
    assert not driver.snapshots_dir("c1").exists()
    monkeypatch.undo()
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path / "state"))
    driver.snapshot_volume("c1", "s1")  # with room again it works
    assert driver.snapshot_exists("c1", "s1")
