"""The host-shutdown sequence and the restore of the last state, on a stand-in manager that
records when each stop began and ended (the real stops are in
tests/system/test_host_shutdown.py): batches by boot.stop.priority, parallel within one,
boot.host_shutdown_timeout passed to the stop, LXD's last-state rules at the next start."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from lxmgr.errors import Conflict
from lxmgr.instances import lifecycle
from lxmgr.instances.events import EventBus
from lxmgr.model.instance import InstanceSpec


class FakeManager:
    """What the lifecycle functions use of a Manager; stop() takes `delays[name]` seconds."""

    def __init__(self, configs: dict[str, dict[str, str]], running: set[str]) -> None:
        self.specs = {n: InstanceSpec(n, "f00d", config=dict(c)) for n, c in configs.items()}
        self.running = set(running)
        self.delays: dict[str, float] = {}
        self.stops: list[tuple[str, float, float, float]] = []  # name, timeout, began, ended
        self.started: list[str] = []
        self.lock = threading.Lock()
        self.events = EventBus()  # the real Manager announces its stops and starts
        self.observer = self  # observe_all: nothing happened while the daemon was down

    def observe_all(self, names: list[str]) -> None:
        pass

    def recover(self) -> None:
        pass

    @property
    def store(self) -> FakeManager:
        return self

    def save(self, spec: InstanceSpec) -> None:
        self.specs[spec.name] = spec

    def list(self) -> list[str]:
        return sorted(self.specs)

    def get(self, name: str) -> InstanceSpec:
        return self.specs[name]

    def expanded(self, spec: InstanceSpec) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        return dict(spec.config), {}

    def is_running(self, name: str) -> bool:
        return name in self.running

    def statuses_fast(self, names: list[str]) -> list[str | None]:
        return ["Running" if n in self.running else "Stopped" for n in names]

    def stop(self, name: str, *, timeout: float) -> None:
        if name not in self.running:
            raise Conflict(f"Instance '{name}' is not running")
        began = time.monotonic()
        time.sleep(self.delays.get(name, 0.0))
        with self.lock:
            self.running.discard(name)
            self.stops.append((name, timeout, began, time.monotonic()))
            self.events.lifecycle("instance-shutdown", name)

    def start(self, name: str) -> int:
        self.started.append(name)
        self.running.add(name)
        return 1


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    return tmp_path


def test_batches_by_stop_priority() -> None:
    mgr = FakeManager({
        "a": {"boot.stop.priority": "1"}, "b": {"boot.stop.priority": "10",
                                                "boot.host_shutdown_timeout": "5"},
        "c": {"boot.stop.priority": "1", "boot.host_shutdown_timeout": "-3"},
        "d": {}, "off": {"boot.stop.priority": "99"}}, running={"a", "b", "c", "d"})
    assert lifecycle.stop_batches(mgr) == [  # type: ignore[arg-type]
        [("b", 5.0)], [("a", 30.0), ("c", 0.0)], [("d", 30.0)]]


async def test_shutdown_order_parallel_batches_and_last_state() -> None:
    mgr = FakeManager({"high": {"boot.stop.priority": "10"},
                       "mid1": {"boot.stop.priority": "5", "boot.host_shutdown_timeout": "7"},
                       "mid2": {"boot.stop.priority": "5"}, "low": {},
                       "idle": {}}, running={"high", "mid1", "mid2", "low"})
    mgr.delays = {"high": 0.2, "mid1": 0.3, "mid2": 0.3}
    sub = mgr.events.subscribe()
    stopped = await lifecycle.shutdown(mgr)  # type: ignore[arg-type]
    assert stopped[0] == "high" and sorted(stopped[1:3]) == ["mid1", "mid2"]
    assert stopped[3] == "low"
    times = {name: (timeout, began, ended) for name, timeout, began, ended in mgr.stops}
    assert times["mid1"][0] == 7.0 and times["high"][0] == 30.0
    assert times["mid1"][1] >= times["high"][2] and times["mid2"][1] >= times["high"][2]
    if (lifecycle.os.cpu_count() or 1) > 1:  # LXD: at most one per CPU at a time
        assert times["mid2"][1] < times["mid1"][2] and times["mid1"][1] < times["mid2"][2]
    assert times["low"][1] >= max(times["mid1"][2], times["mid2"][2])
    events = [sub.queue.get_nowait()["metadata"] for _ in range(sub.queue.qsize())]
    assert [(e["action"], e["name"]) for e in events] == \
        [("instance-shutdown", n) for n in stopped]
    assert {n for n, s in mgr.specs.items() if s.config.get(lifecycle.LAST_STATE) ==
            lifecycle.RUNNING} == {"high", "mid1", "mid2", "low"}


async def test_second_shutdown_while_one_runs_is_refused() -> None:
    mgr = FakeManager({"a": {}}, running={"a"})
    mgr.delays = {"a": 0.3}
    first = asyncio.create_task(lifecycle.shutdown(mgr))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    with pytest.raises(Conflict, match="^Shutdown already in progress$"):
        await lifecycle.shutdown(mgr)  # type: ignore[arg-type]
    assert await first == ["a"]
    assert await lifecycle.shutdown(mgr) == []  # type: ignore[arg-type]


async def test_autostart_starts_nothing_after_a_shutdown_began() -> None:
    mgr = FakeManager({"a": {"boot.autostart": "true"}}, running=set())
    await lifecycle.shutdown(mgr)  # type: ignore[arg-type]
    await lifecycle.autostart(mgr)  # type: ignore[arg-type]
    assert mgr.started == []


@pytest.mark.parametrize("autostart,recorded,state,expected", [
    (None, None, None, False),  # never started, or stopped by the user
    (None, "RUNNING", "Stopped", True),  # stopped by the host-shutdown sequence
    (None, None, "Running", True),  # its supervisor went down with the host
    (None, None, "Frozen", True),
    (None, None, "Stopped", False),
    ("true", None, None, True),
    ("yes", None, "Stopped", True),
    ("false", "RUNNING", "Running", False),  # LXD: false means never
])
def test_last_state_rules(state_dir: Path, autostart: str | None, recorded: str | None,
                          state: str | None, expected: bool) -> None:
    config = {} if autostart is None else {"boot.autostart": autostart}
    if recorded is not None:
        config[lifecycle.LAST_STATE] = recorded
    if state is not None:
        (state_dir / "instances" / "c1").mkdir(parents=True)
        (state_dir / "instances" / "c1" / "state.json").write_text(json.dumps(
            {"status": state, "pid": 0, "supervisor_pid": 4242}))
    mgr = FakeManager({"c1": config}, running=set())
    assert lifecycle.autostart_order(mgr) == ([("c1", 0.0)] if expected else [])  # type: ignore[arg-type]


async def test_autostart_order_and_the_record_is_consumed() -> None:
    mgr = FakeManager({
        "a": {lifecycle.LAST_STATE: "RUNNING", "boot.autostart.priority": "1"},
        "b": {lifecycle.LAST_STATE: "RUNNING", "boot.autostart.priority": "5"},
        "c": {"boot.autostart": "false", lifecycle.LAST_STATE: "RUNNING"},
        "d": {}}, running=set())
    await lifecycle.autostart(mgr)  # type: ignore[arg-type]
    assert mgr.started == ["b", "a"]
    assert not any(lifecycle.LAST_STATE in s.config for s in mgr.specs.values())
    mgr.running.clear()  # stopped by their users: a later daemon start leaves them
    mgr.started.clear()
    await lifecycle.autostart(mgr)  # type: ignore[arg-type]
    assert mgr.started == []
