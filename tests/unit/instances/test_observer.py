"""The engine's watch (lxmgr.instances.observer) on state.json files written as a supervisor
writes them: each change announced once, whoever observes, across daemon restarts (the
observation is kept beside the instance), stops the daemon made left to their makers."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from lxmgr.instances import observer as obs
from lxmgr.instances.manager_status import SupervisorWatch


class World:
    """Callables of an Observer that record what it does."""

    def __init__(self, root: Path, *, alive: bool = True, ephemeral: bool = False) -> None:
        self.root = root
        self.alive = alive
        self.is_ephemeral = ephemeral
        self.events: list[tuple[str, str]] = []
        self.reaped: list[str] = []
        self.deleted: list[str] = []

    def observer(self) -> obs.Observer:
        o = obs.Observer(watch=SupervisorWatch(), hold=lambda name: contextlib.nullcontext(),
                         try_hold=lambda name: contextlib.nullcontext(True),
                         ephemeral=lambda name: self.is_ephemeral,
                         responds=lambda name: self.alive,
                         announce=lambda action, name: self.events.append((action, name)),
                         reap=self.reaped.append, delete_ephemeral=self.deleted.append)
        o._alive = lambda pid, written: self.alive  # type: ignore[method-assign]
        return o

    def write(self, name: str, status: str, pid: int = 100, boots: int = 1,
              exit: str = "") -> None:
        directory = self.root / "instances" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "state.json").write_text(json.dumps({
            "status": status, "pid": 5, "supervisor_pid": pid, "boots": boots, "exit": exit}))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    return World(tmp_path)


def test_reboot_poweroff_and_crash_are_announced_once(world: World) -> None:
    o = world.observer()
    world.write("c1", "Running")
    o.observe("c1")
    assert world.events == []  # the first look
    world.write("c1", "Running", boots=2, exit="reboot")
    o.observe("c1")
    o.observe("c1")
    assert world.events == [("instance-shutdown", "c1"), ("instance-restarted", "c1")]
    world.events.clear()
    world.write("c1", "Stopped", boots=2, exit="poweroff")
    world.observer().observe("c1")  # another daemon (restarted): the observation was kept
    o.observe("c1")
    assert world.events == [("instance-shutdown", "c1")]
    world.events.clear()
    world.write("c1", "Running", pid=200)  # the daemon started it (and announced that)
    o.observe("c1")
    world.write("c1", "Stopped", pid=200, exit="crash")
    o.observe("c1")
    assert world.events == [("instance-shutdown", "c1")]


def test_stops_the_daemon_asked_for_are_not_announced_here(world: World) -> None:
    o = world.observer()
    world.write("c1", "Running")
    o.observe("c1")
    world.write("c1", "Stopping", exit="stop")
    o.observe("c1")
    world.write("c1", "Stopped", exit="stop")
    o.observe("c1")
    # A supervisor of an older lxmgr records no exit: only the stops asked here are ours.
    world.write("c1", "Running", pid=300, boots=0)
    o.observe("c1")
    o.expected.add("c1")
    world.write("c1", "Stopped", pid=300, boots=0)
    o.observe("c1")
    assert world.events == []
    world.write("c1", "Running", pid=301, boots=0)
    o.observe("c1")
    world.write("c1", "Stopped", pid=301, boots=0)
    o.observe("c1")
    assert world.events == [("instance-shutdown", "c1")]


def test_a_lost_supervisor_is_reaped_and_announced(world: World) -> None:
    world.is_ephemeral = True
    o = world.observer()
    world.write("c1", "Running")
    o.observe("c1")
    world.alive = False
    o.observe("c1")
    o.observe("c1")
    assert world.reaped == ["c1"] and world.deleted == ["c1"]
    assert world.events == [("instance-stopped", "c1")]
    state = json.loads((world.root / "instances" / "c1" / "state.json").read_text())
    assert state["status"] == "Stopped" and state["exit"] == "lost"


def test_an_ephemeral_instance_that_stopped_by_itself_is_deleted(world: World) -> None:
    world.is_ephemeral = True
    o = world.observer()
    world.write("e1", "Running")
    o.observe("e1")
    world.write("e1", "Stopped", exit="poweroff")
    o.observe("e1")
    assert world.events == [("instance-shutdown", "e1")] and world.deleted == ["e1"]
    world.write("e2", "Stopped", exit="poweroff")  # never seen running: left alone
    o.observe("e2")
    assert world.deleted == ["e1"]


def test_unreadable_files_are_skipped(world: World) -> None:
    o = world.observer()
    directory = world.root / "instances" / "c1"
    directory.mkdir(parents=True)
    o.observe("c1")  # never started
    (directory / "state.json").write_text("{not json")
    (directory / obs.OBSERVED).write_text("[]")
    o.observe_all(["c1", "gone"])
    assert world.events == [] and not os.path.exists(world.root / "instances" / "gone")
