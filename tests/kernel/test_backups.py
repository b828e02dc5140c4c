"""Exporting an instance with its snapshots as an LXD backup tarball and importing it back."""

from __future__ import annotations

import io
import tarfile

import pytest

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


def sh(manager, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    code, out, err = exec_out(manager, name, ["sh", "-c", script])
    assert code == 0, err
    return out


def test_export_delete_import_boots_with_snapshots(manager, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manager.create("bk1", "debian", config={"user.note": "kept"})
    manager.start("bk1")
    assert wait_running(manager, "bk1") == "running"
    sh(manager, "bk1", "useradd -u 1500 svc; echo old > /srv/f; chown svc /srv/f; sync")
    manager.snapshot("bk1", "before")
    sh(manager, "bk1", "echo new > /srv/f; sync")
    out = tmp_path / "bk1.tar"
    manager.export_backup("bk1", out, compression="none")  # running: frozen while read
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "backup/index.yaml" in names and "backup/snapshots/before/rootfs/srv/f" in names
    uuid = manager.get("bk1").config["volatile.uuid"]
    manager.delete("bk1", force=True)
    spec = manager.import_backup(out)
    assert spec.name == "bk1" and spec.config["user.note"] == "kept"
    assert spec.config["volatile.uuid"] != uuid  # an import is a new instance
    assert [s.name for s in manager.snapshots("bk1")] == ["before"]
    manager.start("bk1")
    assert wait_running(manager, "bk1") == "running"
    assert sh(manager, "bk1", "cat /srv/f; stat -c %U /srv/f; hostname") == "new\nsvc\nbk1\n"
    manager.restore("bk1", "before")
    assert wait_running(manager, "bk1") == "running"
    assert sh(manager, "bk1", "cat /srv/f") == "old\n"
    with pytest.raises(Conflict):
        manager.import_backup(out, name="bk1")  # refused before the archive is unpacked
    manager.delete("bk1", force=True)


def test_hostile_backup_leaves_nothing(manager, tmp_path) -> None:  # type: ignore[no-untyped-def]
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = b"name: evil\nbackend: dir\ntype: container\n"
        info = tarfile.TarInfo("backup/index.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("backup/container")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    with pytest.raises(InvalidConfig):
        manager.import_backup(evil)
    assert manager.list() == []
    assert list((paths.root() / "backups").iterdir()) == []
