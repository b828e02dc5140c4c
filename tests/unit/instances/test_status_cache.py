"""The caches behind fast listings: Database.generation() moves on every committed write
(ours and other connections'), and status_fast() never answers from a stale state.json or
for a supervisor that has exited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lxmgr.errors import NotFound
from lxmgr.instances import manager_status
from lxmgr.instances.db import Database
from lxmgr.instances.manager_status import StatusMixin, SupervisorWatch
from lxmgr.model.profile import Profile

# A stand-in supervisor: a process named like one (PR_SET_NAME = 15) that sleeps.
FAKE_SUPERVISOR = ("import ctypes, time; ctypes.CDLL(None).prctl(15, b'lxmgr-sup', 0, 0, 0); "
                   "print('ready', flush=True); time.sleep(120)")


def test_generation_moves_on_every_write(tmp_path: Path) -> None:
    ours, other = Database(tmp_path / "x.db"), Database(tmp_path / "x.db")
    try:
        seen = {ours.generation()}
        ours.profile_add(Profile("p1", "", {}, {}))
        seen.add(ours.generation())
        other.profile_save(Profile("p1", "changed", {}, {}))  # another connection's commit
        seen.add(ours.generation())
        ours.instance_touch("nosuch", "now")  # matches no row: nothing changed
        assert ours.generation() in seen and len(seen) == 3
        assert ours.generation() == ours.generation()
    finally:
        ours.close()
        other.close()


class FakeManager(StatusMixin):
    """StatusMixin's needs: a store (every name exists), socket paths, a SupervisorWatch."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.supervisors = SupervisorWatch()
        self.asked: list[str] = []

    @property
    def store(self) -> FakeManager:
        return self

    def get(self, name: str) -> None:
        self.asked.append(name)
        if name == "gone":
            raise NotFound(f"Instance '{name}' not found")

    def socket_path(self, name: str) -> str:
        return str(self.root / "instances" / name / "supervisor.sock")


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    fake = FakeManager(tmp_path)
    yield fake
    fake.supervisors.close()


def write_state(directory: Path, status: str, pid: int, age: float = 0.0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "supervisor.sock").touch()  # not a socket: a connect is refused
    tmp = directory / "state.json.tmp"
    tmp.write_text(json.dumps({"status": status, "supervisor_pid": pid}))
    if age:
        then = time.time() - age
        os.utime(tmp, (then, then))
    os.replace(tmp, directory / "state.json")


@pytest.fixture
def supervisor():  # type: ignore[no-untyped-def]
    proc = subprocess.Popen([sys.executable, "-c", FAKE_SUPERVISOR], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


def test_status_follows_state_json_and_supervisor(manager, supervisor, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    directory = manager.root / "instances" / "c1"
    monkeypatch.setattr(manager_status, "RACY_NS", 0)  # cache even a state.json just written
    write_state(directory, "Running", supervisor.pid)
    assert manager.statuses_fast(["c1"]) == ["Running"]
    assert manager.statuses_fast(["c1"]) == ["Running"] and manager.asked == []
    write_state(directory, "Frozen", supervisor.pid)
    assert manager.statuses_fast(["c1"]) == ["Frozen"]
    monkeypatch.setattr(manager_status, "RACY_NS", 10**9)
    write_state(directory, "Running", supervisor.pid)  # fresh: read again every time
    assert manager.status_fast("c1") == "Running" and manager.asked == []
    supervisor.kill()
    supervisor.wait()
    # state.json still says Running, but its supervisor is gone: ask (refused: Stopped).
    assert manager.statuses_fast(["c1"]) == ["Stopped"] and manager.asked == ["c1"]


def test_recycled_supervisor_pid_is_not_trusted(manager, supervisor) -> None:  # type: ignore[no-untyped-def]
    # Written 10 s before this process started: by an earlier supervisor with that pid.
    write_state(manager.root / "instances" / "c1", "Running", supervisor.pid, age=10)
    assert manager.statuses_fast(["c1"]) == ["Stopped"] and manager.asked == ["c1"]


def test_status_without_socket_or_state(manager) -> None:  # type: ignore[no-untyped-def]
    (manager.root / "instances" / "c2").mkdir(parents=True)
    (manager.root / "instances" / "gone").mkdir(parents=True)
    (manager.root / "instances" / "gone" / "supervisor.sock").touch()
    # No control socket: Stopped without a question; a socket without state.json: asked.
    assert manager.statuses_fast(["c2", "gone"]) == ["Stopped", None]
    assert manager.asked == ["gone"]
    write_state(manager.root / "instances" / "c2", "Running", os.getpid())  # not ours
    assert manager.statuses_fast(["c2"]) == ["Stopped"]
