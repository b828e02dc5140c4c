"""cloud-init.* keys: a NoCloud seed in images that have cloud-init, refused elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.instances import cloudinit
from lxmgr.model.idmap import IdMap
from lxmgr.model.rootfs import RootfsSpec

USER_DATA = "#cloud-config\npackages: [htop]\n"


def test_seed_written_with_meta_data(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "var" / "lib").mkdir(parents=True)
    spec = RootfsSpec(kind="bind", target=str(tmp_path / "t"), source=str(root))
    cloudinit.write_seed(spec, IdMap(100000, 100000), "web1", "u-1",
                         {"cloud-init.user-data": USER_DATA, "limits.cpu": "1"})
    seed = root / "var/lib/cloud/seed/nocloud-net"
    assert (seed / "meta-data").read_text() == "instance-id: u-1\nlocal-hostname: web1\n"
    assert (seed / "user-data").read_text() == USER_DATA
    assert not (seed / "vendor-data").exists()
    assert (seed.stat().st_uid, (seed / "user-data").stat().st_uid) == (100000, 100000)


def test_no_keys_no_seed(tmp_path: Path) -> None:
    spec = RootfsSpec(kind="bind", target=str(tmp_path / "t"), source=str(tmp_path))
    cloudinit.write_seed(spec, None, "web1", "u-1", {"cloud-init.user-data": ""})
    assert list(tmp_path.iterdir()) == []


def test_images_without_cloud_init_and_later_changes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="^Invalid config key 'cloud-init.user-data': "
                                            "image 'debian' has no cloud-init to read it$"):
        cloudinit.check_image({"cloud-init.user-data": USER_DATA}, tmp_path, "debian")
    cloudinit.check_image({}, tmp_path, "debian")
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/cloud-init").write_text("")
    cloudinit.check_image({"cloud-init.user-data": USER_DATA}, tmp_path, "ubuntu")
    cloudinit.check_unchanged({"cloud-init.user-data": "x"}, {"cloud-init.user-data": "x"},
                              "web1")
    with pytest.raises(InvalidConfig, match="first boot of 'web1' only"):
        cloudinit.check_unchanged({}, {"cloud-init.vendor-data": "x"}, "web1")
