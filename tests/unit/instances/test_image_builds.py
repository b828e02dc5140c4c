"""ImageBuilds: one build per recipe shared by every waiter, progress to all of them, the
build stopped (and awaited) only when its last waiter is cancelled; operations that wait
for it end Cancelled."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from lxmgr.errors import Cancelled, LxmgrError
from lxmgr.images.progress import Progress
from lxmgr.images.store import ImageInfo
from lxmgr.instances.events import EventBus
from lxmgr.instances.image_builds import ImageBuilds, progress_metadata
from lxmgr.instances.operations import Operations
from tests.unit.instances.test_operations_cancel import MemoryDb


class FakeBuild:
    """A build run in the worker thread: reports progress, then waits to be released or
    cancelled (as debootstrap.build does with its cancel event)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.stopped = threading.Event()
        self.fail: LxmgrError | None = None

    def __call__(self, recipe: str, progress: Any, cancel: threading.Event) -> ImageInfo:
        self.calls.append(recipe)
        progress(Progress("download", 0.3, "Retrieving"))
        while not self.release.wait(0.01):
            if cancel.is_set():
                self.stopped.set()
                raise Cancelled("Cancelled: the image build was stopped")
        if self.fail is not None:
            raise self.fail
        return ImageInfo("f" * 64, Path("/nonexistent"), Path("/nonexistent/rootfs"), "amd64",
                         "debian", "12", 0, ("debian",), 0)


async def _until(predicate: Any) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_two_waiters_share_one_build_and_its_progress() -> None:
    fake = FakeBuild()
    builds = ImageBuilds(fake)
    seen: dict[str, list[str]] = {"a": [], "b": []}
    first = asyncio.create_task(builds.build("debian", lambda p: seen["a"].append(p.stage)))
    await _until(lambda: seen["a"])
    second = asyncio.create_task(builds.build("debian", lambda p: seen["b"].append(p.stage)))
    await _until(lambda: seen["b"])  # a late joiner gets the last progress at once
    fake.release.set()
    one, two = await asyncio.gather(first, second)
    assert one.fingerprint == two.fingerprint == "f" * 64
    assert fake.calls == ["debian"]
    assert builds.running() == []


async def test_cancelling_one_waiter_keeps_the_build_for_the_other() -> None:
    fake = FakeBuild()
    builds = ImageBuilds(fake)
    first = asyncio.create_task(builds.build("debian"))
    second = asyncio.create_task(builds.build("debian"))
    await _until(lambda: fake.calls)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert not fake.stopped.is_set()
    fake.release.set()
    assert (await second).fingerprint == "f" * 64


async def test_cancelling_the_last_waiter_stops_the_build_before_returning() -> None:
    fake = FakeBuild()
    builds = ImageBuilds(fake)
    waiter = asyncio.create_task(builds.build("debian"))
    await _until(lambda: fake.calls)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert fake.stopped.is_set()  # the build had ended (and cleaned up) before we returned
    assert builds.running() == []


async def test_a_failed_build_fails_every_waiter_and_the_next_one_builds_again() -> None:
    fake = FakeBuild()
    fake.fail = LxmgrError("Failed to build image 'debian': debootstrap exited with status 1")
    builds = ImageBuilds(fake)
    waiters = [asyncio.create_task(builds.build("debian")) for _ in range(2)]
    await _until(lambda: fake.calls)
    fake.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, LxmgrError) and "status 1" in str(r) for r in results)
    fake.fail = None
    assert (await builds.build("debian")).fingerprint == "f" * 64
    assert fake.calls == ["debian", "debian"]


async def test_operation_cancel_stops_the_build_and_ends_cancelled() -> None:
    fake = FakeBuild()
    builds = ImageBuilds(fake)
    ops = Operations(MemoryDb(), EventBus())  # type: ignore[arg-type]

    async def work(op: Any) -> None:
        await builds.build("debian", lambda p: ops.update(op, **progress_metadata(p)))

    op = ops.create("Building image debian", work, may_cancel=True)
    await _until(lambda: "progress" in op.metadata)
    assert op.metadata["build_progress"] == "Building image: download 30%"
    ops.cancel(op.id)
    await ops.wait(op.id, 5)
    assert op.status == "Cancelled" and fake.stopped.is_set()


async def test_shutdown_stops_running_builds() -> None:
    fake = FakeBuild()
    builds = ImageBuilds(fake)
    waiter = asyncio.create_task(builds.build("debian"))
    await _until(lambda: fake.calls)
    await builds.shutdown()
    assert fake.stopped.is_set()
    with pytest.raises(Cancelled):
        await waiter
