"""Faults of the state database file as one-line errors naming it: a lock another process
holds (prompt DatabaseLocked, reads going on meanwhile), corruption found at open (quick_check)
or later (SQLITE_CORRUPT on the damaged table only), a full database."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from lxmgr.errors import LxmgrError
from lxmgr.instances import db as db_module
from lxmgr.instances.db import Database, DatabaseError, DatabaseLocked
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.profile import Profile


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT", 0.3)
    return 0.3


def _populated(path: Path) -> None:
    db = Database(path)
    try:
        for i in range(3):
            db.instance_add(InstanceSpec(name=f"c{i}", image_fingerprint="x"))
        for i in range(40):  # enough rows for the profiles table to have pages of its own
            db.profile_add(Profile(f"p{i}", "x" * 200, {}, {}))
        with db.transaction() as conn:  # everything into the main file, no WAL left
            conn.execute("SELECT 1")
        db._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def _smash(path: Path, table: str) -> None:
    """Garbage over the root page of table, as a bad disk or a stray write would leave."""
    with sqlite3.connect(path) as probe:
        page = probe.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                             (table,)).fetchone()[0]
        size = probe.execute("PRAGMA page_size").fetchone()[0]
    probe.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xa5" * size)


def test_locked_database_fails_promptly_in_one_line(tmp_path: Path, short_timeout: float
                                                    ) -> None:
    path = tmp_path / "lxmgr.db"
    db = Database(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # `sqlite3 lxmgr.db 'BEGIN EXCLUSIVE'` held open
        started = time.monotonic()
        with pytest.raises(DatabaseLocked) as caught:
            db.profile_add(Profile("p", "", {}, {}))
        assert time.monotonic() - started < short_timeout + 2
        assert str(caught.value) == f"Database {path} is locked by another process"
        assert caught.value.status == 503 and isinstance(caught.value, LxmgrError)
        assert db.profile_names() == []  # reads go on (WAL readers never wait)
        other.execute("ROLLBACK")
        db.profile_add(Profile("p", "", {}, {}))  # nothing left half done
        assert db.profile_names() == ["p"]
    finally:
        other.close()
        db.close()


def test_reads_do_not_wait_behind_a_waiting_writer(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT", 2.0)
    path = tmp_path / "lxmgr.db"
    db = Database(path)
    db.instance_add(InstanceSpec(name="c1", image_fingerprint="x"))
    other = sqlite3.connect(path, isolation_level=None)
    errors: list[Exception] = []

    def write() -> None:
        try:
            db.profile_add(Profile("p", "", {}, {}))
        except DatabaseLocked as err:
            errors.append(err)

    try:
        other.execute("BEGIN EXCLUSIVE")
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.2)  # the writer now waits for the lock, holding the writer connection
        started = time.monotonic()
        assert db.instance_names() == ["c1"]
        db.generation()
        assert time.monotonic() - started < 0.5
        writer.join()
        assert len(errors) == 1
    finally:
        other.close()
        db.close()


def test_a_second_writer_does_not_queue_for_ever(tmp_path: Path, short_timeout: float) -> None:
    """Writers queued behind one that waits for another process fail too, each within about
    the busy timeout, instead of one timeout after the other."""
    path = tmp_path / "lxmgr.db"
    db = Database(path)
    other = sqlite3.connect(path, isolation_level=None)
    failures: list[str] = []

    def write(i: int) -> None:
        try:
            db.profile_add(Profile(f"p{i}", "", {}, {}))
        except DatabaseLocked as err:
            failures.append(str(err))

    try:
        other.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert len(failures) == 4
        assert time.monotonic() - started < 4 * short_timeout + 2
    finally:
        other.close()
        db.close()


def test_not_a_database_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "lxmgr.db"
    path.write_bytes(b"this is not sqlite" * 500)
    with pytest.raises(DatabaseError) as caught:
        Database(path)
    message = str(caught.value)
    assert message == (f"Database {path} is corrupt (file is not a database): restore it "
                       "from a backup or move it away, then restart lxmgrd")
    assert "\n" not in message
    assert path.read_bytes().startswith(b"this is not sqlite")  # left as it was


def test_damaged_page_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "lxmgr.db"
    _populated(path)
    _smash(path, "profiles")
    with pytest.raises(DatabaseError) as caught:
        Database(path)
    assert str(caught.value).startswith(f"Database {path} is corrupt (")
    assert "\n" not in str(caught.value)


def test_damage_while_running_fails_only_what_it_hit(tmp_path: Path) -> None:
    path = tmp_path / "lxmgr.db"
    _populated(path)
    db = Database(path)
    try:
        _smash(path, "profiles")
        db._reader.execute("PRAGMA shrink_memory")  # drop the pages it had read already
        with pytest.raises(DatabaseError) as caught:
            db.profiles()
        assert str(caught.value).startswith(f"Database {path} is corrupt (")
        assert db.instance_names() == ["c0", "c1", "c2"]  # the rest is still there
        with pytest.raises(DatabaseError):
            db.profile_add(Profile("new", "", {}, {}))
        db.instance_add(InstanceSpec(name="c3", image_fingerprint="x"))  # writes go on
        assert db.instance_names() == ["c0", "c1", "c2", "c3"]
    finally:
        db.close()


def test_full_database_fails_in_one_line_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "lxmgr.db"
    db = Database(path)
    try:
        db.instance_add(InstanceSpec(name="c0", image_fingerprint="x"))
        pages = db._conn.execute("PRAGMA page_count").fetchone()[0]
        db._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL as on a full disk
        with pytest.raises(DatabaseError) as caught:
            for i in range(200):
                db.profile_add(Profile(f"p{i}", "x" * 2000, {}, {}))
        assert str(caught.value) == f"No space left on device to write database {path}"
        assert not db._conn.in_transaction
        assert "c0" in db.instance_names()
        db.instance_touch("c0", "now")  # the connection is still usable
    finally:
        db.close()


def test_sql_and_constraint_errors_are_not_taken_for_faults(tmp_path: Path) -> None:
    db = Database(tmp_path / "lxmgr.db")
    try:
        with pytest.raises(sqlite3.OperationalError):
            db._query("SELECT nosuch FROM instances")
        db.instance_add(InstanceSpec(name="c0", image_fingerprint="x"))
        with pytest.raises(LxmgrError, match="already exists"):
            db.instance_add(InstanceSpec(name="c0", image_fingerprint="x"))
    finally:
        db.close()
