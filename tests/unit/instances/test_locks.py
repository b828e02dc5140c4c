"""Per-instance locks (lxmgr.instances.locks): one operation at a time on an instance,
re-entrant in one thread, instances in parallel, sorted acquisition, nothing kept after."""

from __future__ import annotations

import threading
import time

from lxmgr.instances.locks import InstanceLocks, serialized


def test_same_instance_is_serialized_others_run_in_parallel() -> None:
    locks = InstanceLocks()
    inside: list[str] = []
    overlap = threading.Event()

    def work(name: str, tag: str) -> None:
        with locks.hold(name):
            inside.append(tag)
            if len([t for t in inside if t.startswith(name)]) > 1:
                overlap.set()
            time.sleep(0.05)
            inside.remove(tag)

    threads = [threading.Thread(target=work, args=("c1", f"c1-{i}")) for i in range(4)]
    started = time.monotonic()
    other = threading.Thread(target=work, args=("c2", "c2-0"))
    for thread in [*threads, other]:
        thread.start()
    for thread in [*threads, other]:
        thread.join()
    assert not overlap.is_set()
    assert time.monotonic() - started >= 0.2  # four turns on c1, c2 beside them
    assert locks.held() == []


def test_reentrant_and_pairs_in_sorted_order() -> None:
    locks = InstanceLocks()
    with locks.hold("b", "a", "a", ""):
        with locks.hold("a"):  # the same thread: restore -> stop -> delete
            assert locks.held() == ["a", "b"]
    done = []

    def copy(source: str, target: str) -> None:
        for _ in range(50):
            with locks.hold(source, target):
                done.append(1)

    pair = [threading.Thread(target=copy, args=("x", "y")),
            threading.Thread(target=copy, args=("y", "x"))]
    for thread in pair:
        thread.start()
    for thread in pair:
        thread.join(10)
    assert len(done) == 100 and locks.held() == []


class Fake:
    def __init__(self) -> None:
        self.locks = InstanceLocks()
        self.seen: list[list[str]] = []

    @serialized("source", "target")
    def copy(self, source: str, target: str, *, flag: bool = False) -> bool:
        self.seen.append(self.locks.held())
        return flag


def test_serialized_locks_the_named_instances() -> None:
    fake = Fake()
    assert fake.copy("c1/snap0", target="c2", flag=True) is True
    assert fake.seen == [["c1", "c2"]] and fake.locks.held() == []


def test_try_hold_skips_a_busy_instance_at_once() -> None:
    locks = InstanceLocks()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.hold("c1"):
            holding.set()
            release.wait(10)
    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    with locks.try_hold("c1") as free, locks.try_hold("c2") as other:
        assert (free, other) == (False, True)
        with locks.try_hold("c2") as again:  # re-entrant for its holder
            assert again
    release.set()
    thread.join(10)
    with locks.try_hold("c1") as free:
        assert free
    assert locks.held() == []
