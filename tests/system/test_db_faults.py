"""A real lxmgrd on a faulty state database: a corrupt file at start is refused in one line
(exit 1, no traceback), a lock another process holds makes writes fail within seconds with a
one-line 503 while reads go on, and everything works again once it is released."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.system.conftest import ROOT, Daemon, private_state, running_daemon

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def test_corrupt_database_refused_at_start_in_one_line() -> None:
    with private_state("lxmdb", link_image=False) as (root, base):
        os.makedirs(root)
        db = f"{root}/lxmgr.db"
        with open(db, "wb") as f:
            f.write(b"\xde\xad\xbe\xef" * 4096)
        daemon = Daemon(root, base)
        daemon.log.close()  # not started: its env only
        env = daemon.env
        proc = subprocess.run([sys.executable, "-m", "lxmgr.daemon"], env=env, cwd=ROOT,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
        assert errors == [f"Error: Database {db} is corrupt (file is not a database): restore "
                          "it from a backup or move it away, then restart lxmgrd"], proc.stderr
        with open(db, "rb") as f:
            assert f.read(4) == b"\xde\xad\xbe\xef"  # left for the user to recover


def test_locked_database_answers_503_in_seconds_and_reads_go_on() -> None:
    with running_daemon("lxmdb", link_image=False) as daemon:
        db = f"{daemon.root}/lxmgr.db"
        other = sqlite3.connect(db, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # as `sqlite3 lxmgr.db 'BEGIN EXCLUSIVE'`
            started = time.monotonic()
            resp = daemon.api("POST", "/1.0/profiles", {"name": "p1"}, check=False)
            assert time.monotonic() - started < 15
            assert resp["error_code"] == 503
            assert resp["error"] == f"Database {db} is locked by another process"
            cli = daemon.cli("profile", "create", "p2", check=False)
            assert cli.returncode != 0
            assert cli.stderr.strip() == f"Error: Database {db} is locked by another process"
            started = time.monotonic()
            listing = daemon.cli("profile", "list", "--format", "json")
            assert time.monotonic() - started < 5
            assert "default" in listing.stdout
        finally:
            other.close()
        daemon.cli("profile", "create", "p1")
        assert "p1" in daemon.cli("profile", "list", "--format", "json").stdout
        with open(f"{daemon.root}/lxmgrd-test.log", errors="replace") as log:
            assert "Traceback" not in log.read()
