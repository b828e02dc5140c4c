"""The pre-started supervisor: one at a time, refilled later (or at once in a burst)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lxmgr.instances import warm


class FakeProc:
    count = 0

    def __init__(self) -> None:
        FakeProc.count += 1
        self.n = FakeProc.count
        self.stdin_closed = False

    def communicate(self, data: str, timeout: float | None = None) -> tuple[str, str]:
        self.stdin_closed = data == ""
        return "", ""


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[FakeProc]:
    made: list[FakeProc] = []

    def spawn() -> Any:
        made.append(FakeProc())
        return made[-1]

    monkeypatch.setattr(warm, "spawn_supervisor", spawn)
    return made


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_take_hands_over_the_waiting_one_and_refills_after_the_delay(
        spawned: list[FakeProc]) -> None:
    pool = warm.WarmSupervisor(delay=0.2)
    pool.prestart()
    pool.prestart()  # still one
    assert len(spawned) == 1
    started = time.monotonic()
    assert pool.take() is spawned[0]
    time.sleep(0.05)
    assert len(spawned) == 1  # not while the container boots
    _wait_for(lambda: len(spawned) == 2)
    assert time.monotonic() - started >= 0.2
    pool.close()
    assert spawned[1].stdin_closed


def test_a_burst_refills_at_once_and_an_empty_pool_spawns(spawned: list[FakeProc]) -> None:
    pool = warm.WarmSupervisor(delay=30)
    first = pool.take()  # nothing waiting: a fresh one
    assert first is spawned[0]
    assert pool.take() is spawned[1]  # second take within the delay: a burst
    _wait_for(lambda: len(spawned) == 3)  # refilled without waiting 30 s
    pool.close()
    assert spawned[2].stdin_closed


def test_close_cancels_a_pending_refill(spawned: list[FakeProc]) -> None:
    pool = warm.WarmSupervisor(delay=0.1)
    pool.take()
    pool.close()
    time.sleep(0.2)
    assert len(spawned) == 1
    pool.prestart()  # closed: nothing more
    assert len(spawned) == 1
