"""Snapshots, restore, copy and rename of real containers (overlay, the default driver)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotFound
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


def sh(manager, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    code, out, err = exec_out(manager, name, ["sh", "-c", script])
    assert code == 0, err
    return out


def test_snapshot_change_restore_running(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("sn1", "debian")
    manager.start("sn1")
    assert wait_running(manager, "sn1") == "running"
    sh(manager, "sn1", "echo before > /root/state; sync")
    snap = manager.snapshot("sn1")  # running: frozen while its upper is copied
    assert snap.name == "snap0" and snap.expires_at is None
    assert manager.status("sn1") == "Running"  # thawed again
    sh(manager, "sn1", "echo after > /root/state; touch /root/new")
    manager.update("sn1", config={"user.marker": "changed"})
    manager.restore("sn1", "snap0")  # stops, restores, starts again
    assert wait_running(manager, "sn1") == "running"
    assert sh(manager, "sn1", "cat /root/state; ls /root").split() == ["before", "state"]
    assert "user.marker" not in manager.get("sn1").config
    assert [s.name for s in manager.snapshots("sn1")] == ["snap0"]
    with pytest.raises(Conflict):
        manager.snapshot("sn1", "snap0")
    with pytest.raises(InvalidConfig):
        manager.snapshot("sn1", "../evil")
    with pytest.raises(NotFound):
        manager.restore("sn1", "nope")
    manager.delete("sn1", force=True)
    assert not (paths.storage_dir() / "overlay" / ".snapshots" / "sn1").exists()
    assert manager.db.snapshots("sn1") == []


def test_copy_from_snapshot_and_rename(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("cp1", "debian", config={"user.a": "1"})
    manager.start("cp1")
    assert wait_running(manager, "cp1") == "running"
    sh(manager, "cp1", "echo one > /root/file")
    manager.snapshot("cp1", "first")
    sh(manager, "cp1", "echo two > /root/file")
    manager.copy("cp1/first", "cp2")
    manager.copy("cp1", "cp3")  # with its snapshot
    src, dup = manager.get("cp1"), manager.get("cp2")
    assert dup.config["user.a"] == "1"
    assert dup.config["volatile.uuid"] != src.config["volatile.uuid"]
    assert [s.name for s in manager.snapshots("cp3")] == ["first"]
    assert manager.snapshots("cp2") == []
    manager.start("cp2")
    assert wait_running(manager, "cp2") == "running"
    assert sh(manager, "cp2", "cat /root/file; hostname").split() == ["one", "cp2"]
    with pytest.raises(Conflict, match="running"):
        manager.rename("cp2", "cp4")
    manager.stop("cp2", force=True)
    manager.rename("cp3", "cp5")
    assert "cp3" not in manager.list()
    assert [s.name for s in manager.snapshots("cp5")] == ["first"]
    manager.start("cp5")
    assert wait_running(manager, "cp5") == "running"
    assert sh(manager, "cp5", "cat /root/file; hostname").split() == ["two", "cp5"]
    with pytest.raises(Conflict):
        manager.copy("cp1", "cp5")
    for name in ("cp1", "cp2", "cp5"):
        manager.delete(name, force=True)


def test_expiry_and_schedule(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("ex1", "debian", config={"snapshots.expiry": "1H",
                                            "snapshots.schedule": "*/5 * * * *",
                                            "snapshots.schedule.stopped": "true",
                                            "snapshots.pattern": "auto%d"})
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert manager.scheduled_snapshots(now) == [("ex1", "auto0")]
    assert manager.scheduled_snapshots(now + timedelta(minutes=1)) == []
    kept = manager.snapshot("ex1", "keep", no_expiry=True, now=now)
    assert kept.expires_at is None
    assert manager.get_snapshot("ex1", "auto0").expires_at == now + timedelta(hours=1)
    assert manager.expire_snapshots(now + timedelta(minutes=30)) == []
    assert manager.expire_snapshots(now + timedelta(hours=2)) == [("ex1", "auto0")]
    assert [s.name for s in manager.snapshots("ex1")] == ["keep"]
    manager.rename_snapshot("ex1", "keep", "kept")
    assert [s.name for s in manager.snapshots("ex1")] == ["kept"]
    manager.delete_snapshot("ex1", "kept")
    assert manager.snapshots("ex1") == []
    manager.delete("ex1")
