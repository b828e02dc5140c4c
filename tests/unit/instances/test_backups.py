"""Backups (lxmgr.instances.backups) on a tmp dir with a fake export: records written after
their tarball, rename and delete with their undo, the instance hooks, expiry, the sweep of
what a crash leaves, the instance lock, and the instance-backup-* events."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lxmgr.errors import Conflict, InvalidConfig, LxmgrError, NotFound
from lxmgr.instances import backups as backups_mod
from lxmgr.instances.backups import Backups
from lxmgr.instances.events import EventBus
from lxmgr.instances.locks import InstanceLocks

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


class Recorder:
    """The lifecycle() of an EventBus, recorded."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def lifecycle(self, action: str, name: str, **context: Any) -> None:
        self.seen.append((action, name, context))


class Setup:
    def __init__(self, tmp_path: Path, events: Any = None) -> None:
        self.root = tmp_path / "backups" / "instances"
        self.events = events or Recorder()
        self.locks = InstanceLocks()
        self.instances = {"c1", "c2", "p_c1"}
        self.exported: list[tuple[str, Path, dict[str, Any]]] = []
        self.fail: BaseException | None = None
        self.during: Any = None  # called once the tarball is in place
        self.backups = Backups(self.root, self.events, self.locks, self.export,
                               lambda name: name in self.instances)

    def export(self, name: str, out: Path, **options: Any) -> str:
        """As write_backup: a temporary beside out, renamed into place."""
        assert name in self.locks.held()  # create holds the instance's lock
        if name not in self.instances:
            raise NotFound(f"Instance '{name}' not found")
        self.exported.append((name, out, options))
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_bytes(b"tarball of " + name.encode())
        if self.fail is not None:
            tmp.unlink()
            raise self.fail
        os.rename(tmp, out)
        if self.during is not None:
            self.during()
        return "sha256"

    def files(self, name: str = "c1") -> list[str]:
        directory = self.root / name
        return sorted(os.listdir(directory)) if directory.exists() else []


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_create_writes_the_tarball_then_its_record(setup: Setup) -> None:
    record = setup.backups.create("c1", "b0", compression="none", instance_only=True,
                                  expires_at="2031-01-02T03:04:05Z")
    assert setup.files() == ["b0.json", "b0.tar"]
    assert json.loads((setup.root / "c1" / "b0.json").read_text()) == record
    assert record["expires_at"] == "2031-01-02T03:04:05Z" and record["instance_only"]
    assert setup.exported == [("c1", setup.root / "c1" / "b0.tar",
                               {"instance_only": True, "compression": "none"})]
    assert setup.backups.names("c1") == ["b0"]
    assert setup.backups.views("c1") == [{k: v for k, v in record.items() if k != "file"}]
    assert setup.backups.get("c1", "b0") == record
    assert setup.backups.export_path("c1", "b0") == setup.root / "c1" / "b0.tar"
    assert setup.events.seen == [("instance-backup-created", "c1", {"backup": "b0"}),
                                 ("instance-backup-retrieved", "c1", {"backup": "b0"})]
    for path in (setup.root.parent, setup.root, setup.root / "c1"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700  # whole root filesystems inside


def test_create_defaults_and_refusals(setup: Setup) -> None:
    record = setup.backups.create("c1", "b0")
    assert record["file"] == "b0.tar.gz" and record["expires_at"] == "0001-01-01T00:00:00Z"
    with pytest.raises(Conflict, match="Backup 'c1/b0' already exists"):
        setup.backups.create("c1", "b0")
    with pytest.raises(InvalidConfig, match="Invalid backup name 'a/b'"):
        setup.backups.create("c1", "a/b")
    with pytest.raises(InvalidConfig, match="Invalid backup name '.hidden'"):
        setup.backups.check_create("c1", ".hidden")
    with pytest.raises(InvalidConfig, match="Unsupported compression 'zstd'"):
        setup.backups.check_create("c1", "b1", "zstd")
    with pytest.raises(InvalidConfig, match="'soon' is not an RFC 3339 time"):
        setup.backups.check_create("c1", "b1", "gzip", "soon")
    with pytest.raises(NotFound, match="Backup 'c1/nope' not found"):
        setup.backups.get("c1", "nope")
    assert len(setup.exported) == 1


def test_a_failed_export_or_record_leaves_nothing(setup: Setup,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    setup.fail = LxmgrError("Disk full")
    with pytest.raises(LxmgrError, match="Disk full"):
        setup.backups.create("c1", "b0")
    assert not (setup.root / "c1").exists()
    with pytest.raises(NotFound):
        setup.backups.create("gone", "b0")
    assert not (setup.root / "gone").exists()

    setup.fail = None

    def no_space(path: Path, text: str, mode: int = 0o600) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(backups_mod, "write_atomic", no_space)
    with pytest.raises(LxmgrError) as err:
        setup.backups.create("c1", "b0")
    assert str(err.value) == "Failed to record backup 'c1/b0': No space left on device"
    assert not (setup.root / "c1").exists()  # its tarball went
    assert setup.events.seen == []


def test_rename_moves_the_tarball_and_the_record(setup: Setup) -> None:
    setup.backups.create("c1", "b0", compression="xz")
    renamed = setup.backups.rename("c1", "b0", "b1")
    assert renamed["name"] == "b1" and renamed["file"] == "b1.tar.xz"
    assert setup.files() == ["b1.json", "b1.tar.xz"]
    assert setup.backups.get("c1", "b1") == renamed
    assert setup.events.seen[-1] == ("instance-backup-renamed", "c1",
                                     {"backup": "b1", "old_name": "c1/b0"})
    setup.backups.create("c1", "b2")
    with pytest.raises(Conflict, match="Backup 'c1/b2' already exists"):
        setup.backups.rename("c1", "b1", "b2")
    with pytest.raises(NotFound):
        setup.backups.rename("c1", "b0", "b3")
    with pytest.raises(InvalidConfig):
        setup.backups.rename("c1", "b1", "x/y")
    assert setup.files() == ["b1.json", "b1.tar.xz", "b2.json", "b2.tar.gz"]


@pytest.mark.parametrize("step", ["tarball", "old record"])
def test_a_failed_rename_is_undone(setup: Setup, monkeypatch: pytest.MonkeyPatch,
                                   step: str) -> None:
    setup.backups.create("c1", "b0")
    before = setup.files()
    if step == "tarball":
        real = os.rename

        def rename(src: Any, dst: Any) -> None:
            if str(dst).endswith("b1.tar.gz"):
                raise OSError(5, "Input/output error")
            real(src, dst)
        monkeypatch.setattr(backups_mod.os, "rename", rename)
    else:
        real_unlink = Path.unlink

        def unlink(self: Path, missing_ok: bool = False) -> None:
            if self.name == "b0.json":
                raise OSError(5, "Input/output error")
            real_unlink(self, missing_ok=missing_ok)
        monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(LxmgrError, match="^Failed to rename backup 'c1/b0': Input/output error$"):
        setup.backups.rename("c1", "b0", "b1")
    monkeypatch.undo()
    assert setup.files() == before and setup.backups.names("c1") == ["b0"]
    assert [e[0] for e in setup.events.seen] == ["instance-backup-created"]


def test_delete_removes_the_record_the_tarball_and_the_empty_directory(setup: Setup) -> None:
    setup.backups.create("c1", "b0")
    setup.backups.create("c1", "b1")
    setup.backups.delete("c1", "b0")
    assert setup.files() == ["b1.json", "b1.tar.gz"]
    setup.backups.delete("c1", "b1")
    assert not (setup.root / "c1").exists()
    with pytest.raises(NotFound):
        setup.backups.delete("c1", "b1")
    assert [e[:2] for e in setup.events.seen[-2:]] == [
        ("instance-backup-deleted", "c1"), ("instance-backup-deleted", "c1")]
    assert [e[2]["backup"] for e in setup.events.seen[-2:]] == ["b0", "b1"]


def test_what_a_crash_leaves_is_invisible_then_swept(setup: Setup) -> None:
    setup.backups.create("c1", "kept")
    directory = setup.root / "c1"
    (directory / "lost.tar.gz").write_bytes(b"no record: crashed before it")
    (directory / "gone.json").write_text(json.dumps(
        {"name": "gone", "file": "gone.tar", "expires_at": "0001-01-01T00:00:00Z"}))
    (directory / "bad.json").write_text("{not json")
    (directory / ".half.tar.gz.tmp-99999").write_bytes(b"an export that died")
    (directory / ".kept.json.tmp").write_text("{")
    assert setup.backups.names("c1") == ["kept"]
    removed = setup.backups.sweep("c1")
    assert sorted(Path(p).name for p in removed) == [
        ".half.tar.gz.tmp-99999", ".kept.json.tmp", "bad.json", "gone.json", "lost.tar.gz"]
    assert setup.files() == ["kept.json", "kept.tar.gz"]
    assert setup.backups.sweep("c1") == []

    orphan = setup.root / "old"  # an instance deleted by an older lxmgr: not ours any more
    orphan.mkdir()
    (orphan / "b.tar").write_bytes(b"x")
    assert setup.backups.expire(NOW) == []
    assert not orphan.exists() and setup.files() == ["kept.json", "kept.tar.gz"]
    assert [e[0] for e in setup.events.seen] == ["instance-backup-created"]


def test_the_sweep_waits_for_a_backup_being_made(setup: Setup) -> None:
    """A tarball whose record is not written yet is not a leftover: the sweep takes the
    instance's lock before it removes anything."""
    swept: list[list[str]] = []
    sweeper = threading.Thread(target=lambda: swept.append(setup.backups.sweep("c1")))

    def during() -> None:
        assert (setup.root / "c1" / "b0.tar.gz").exists()
        sweeper.start()
        sweeper.join(0.3)
        assert sweeper.is_alive()  # blocked on the lock
    setup.during = during
    setup.backups.create("c1", "b0")
    sweeper.join(5)
    assert swept == [[]] and setup.files() == ["b0.json", "b0.tar.gz"]


def test_expire_deletes_backups_past_their_time(setup: Setup) -> None:
    setup.backups.create("c1", "past", expires_at="2030-06-01T11:59:00Z")
    setup.backups.create("c1", "now", expires_at="2030-06-01T14:00:00+02:00")
    setup.backups.create("c1", "later", expires_at="2030-06-01T12:01:00Z")
    setup.backups.create("c2", "never")
    setup.events.seen.clear()
    assert setup.backups.expire(NOW) == [("c1", "now"), ("c1", "past")]
    assert setup.backups.names("c1") == ["later"] and setup.backups.names("c2") == ["never"]
    assert setup.events.seen == [("instance-backup-deleted", "c1", {"backup": "now"}),
                                 ("instance-backup-deleted", "c1", {"backup": "past"})]
    assert setup.backups.expire(datetime(9999, 1, 1, tzinfo=UTC)) == [("c1", "later")]


def test_backups_move_with_a_renamed_instance(setup: Setup) -> None:
    setup.backups.create("c1", "b0")
    setup.backups.create("c1", "b1")
    stale = setup.root / "new"  # left by an older lxmgr when a former "new" went
    stale.mkdir()
    (stale / "old.json").write_text("{}")
    setup.events.seen.clear()
    setup.instances |= {"new"}
    setup.backups.on_instance_renamed("c1", "new")
    assert not (setup.root / "c1").exists() and setup.files("new") == [
        "b0.json", "b0.tar.gz", "b1.json", "b1.tar.gz"]
    assert setup.backups.names("new") == ["b0", "b1"] and setup.backups.names("c1") == []
    assert setup.events.seen == [
        ("instance-backup-renamed", "new", {"backup": "b0", "old_name": "c1/b0"}),
        ("instance-backup-renamed", "new", {"backup": "b1", "old_name": "c1/b1"})]
    setup.backups.on_instance_renamed("c2", "c3")  # no backups: nothing to do
    assert not (setup.root / "c3").exists()


def test_backups_go_with_a_deleted_instance(setup: Setup) -> None:
    setup.backups.create("c1", "b0")
    setup.backups.create("c2", "b0")
    setup.events.seen.clear()
    setup.backups.on_instance_deleted("c1")
    assert not (setup.root / "c1").exists() and setup.backups.names("c2") == ["b0"]
    assert setup.events.seen == [("instance-backup-deleted", "c1", {"backup": "b0"})]
    setup.backups.on_instance_deleted("c1")  # again: nothing
    assert len(setup.events.seen) == 1


async def test_events_name_the_backup_as_lxd_does(tmp_path: Path) -> None:
    bus = EventBus()
    sub = bus.subscribe(frozenset({"lifecycle"}))
    setup = Setup(tmp_path, events=bus)
    await asyncio.to_thread(setup.backups.create, "p_c1", "b0")
    await asyncio.to_thread(setup.backups.rename, "p_c1", "b0", "b1")
    await asyncio.to_thread(setup.backups.delete, "p_c1", "b1")
    seen = [(await asyncio.wait_for(sub.queue.get(), 5))["metadata"] for _ in range(3)]
    assert [(e["action"], e["source"], e["context"], e["project"]) for e in seen] == [
        ("instance-backup-created", "/1.0/instances/c1/backups/b0?project=p", {}, "p"),
        ("instance-backup-renamed", "/1.0/instances/c1/backups/b1?project=p",
         {"old_name": "c1/b0"}, "p"),
        ("instance-backup-deleted", "/1.0/instances/c1/backups/b1?project=p", {}, "p")]


async def test_the_minute_duty_expires_backups(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from lxmgr.instances import lifecycle

    setup = Setup(tmp_path)
    setup.backups.create("c1", "b0", expires_at="2001-01-01T00:00:00Z")

    class FakeManager:
        backups = setup.backups

        def scheduled_snapshots(self, now: datetime) -> list[tuple[str, str]]:
            raise LxmgrError("Database is locked")  # the backups expire all the same

    with caplog.at_level(logging.INFO, logger="lxmgr.instances.lifecycle"):
        await lifecycle.snapshot_duties(FakeManager(), NOW)  # type: ignore[arg-type]
    assert setup.backups.names("c1") == []
    assert caplog.messages == ["Snapshot duties: Database is locked",
                               "Expired backup c1/b0 deleted"]


def test_a_failed_removal_with_its_instance_is_swept_later(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    setup.backups.create("c1", "b0")
    setup.events.seen.clear()

    def busy(path: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(16, "Device or resource busy")
    with monkeypatch.context() as patch:
        patch.setattr(backups_mod.shutil, "rmtree", busy)
        setup.backups.on_instance_deleted("c1")  # the instance is gone: no error to raise
    assert setup.backups.names("c1") == ["b0"] and setup.events.seen == []
    setup.instances.discard("c1")
    assert setup.backups.expire(NOW) == []
    assert not (setup.root / "c1").exists()


def test_a_failure_in_one_instance_does_not_stop_the_expiry(
        setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    setup.backups.create("c1", "b0", expires_at="2001-01-01T00:00:00Z")
    setup.backups.create("c2", "b0", expires_at="2001-01-01T00:00:00Z")
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.parent.name == "c1":
            raise OSError(30, "Read-only file system")
        real_unlink(self, missing_ok=missing_ok)
    monkeypatch.setattr(Path, "unlink", unlink)
    assert setup.backups.expire(NOW) == [("c2", "b0")]
    assert caplog.messages == [
        "Backups of c1: Failed to delete backup 'c1/b0': Read-only file system"]
