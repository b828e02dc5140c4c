"""Cancelling an operation (DELETE /1.0/operations/ID) stops its work at the next step and
undoes what it did: a cancelled create, copy, snapshot-bearing copy, publish or backup
leaves nothing (no record, volume, directory, image, tarball or staging), and the
operation ends Cancelled only once the undo has run. The cancel arrives while the work is
held at a named checkpoint (lxmgr.instances.checkpoints.on), so no timing is involved."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from lxmgr import paths
from lxmgr.instances import checkpoints
from tests.integration.conftest import call, wait
from tests.integration.test_images_api import tiny_image

pytestmark = pytest.mark.kernel


@contextmanager
def held(point: str) -> Iterator[threading.Event]:
    """Work that reaches `point` waits there until the test lets it go; yields the event
    that says it arrived."""
    arrived, go = threading.Event(), threading.Event()

    def hook() -> None:
        arrived.set()
        go.wait(30)
    with checkpoints.on(point, hook):
        try:
            yield arrived
        finally:
            go.set()


async def cancel_at(api: Any, point: str, method: str, path: str, body: Any) -> dict[str, Any]:
    """Start the operation, cancel it while its work sits at point; the finished op."""
    with held(point) as arrived:
        started = await call(api, method, path, body, status=202)
        assert await asyncio.to_thread(arrived.wait, 30), f"never reached {point}"
        await call(api, "DELETE", started["operation"])
        # The work goes on to its checkpoint, sees the cancel and undoes itself.
    return await wait(api, started, ok=False)


def leftovers() -> list[str]:
    """What a cancelled create may have left in the state dir."""
    root = paths.root()
    found = [str(p) for p in (root / "instances").glob("*")]
    found += [str(p) for p in (root / "intents").glob("*")] if (root / "intents").is_dir() \
        else []
    found += [str(p) for p in (root / "backups").rglob("*") if p.name.startswith(".")] \
        if (root / "backups").is_dir() else []
    return found


@pytest.mark.parametrize("point", ["create.record", "create.volume", "create.files"])
async def test_a_cancelled_create_leaves_nothing(api, point: str) -> None:  # type: ignore[no-untyped-def]
    op = await cancel_at(api, point, "POST", "/1.0/instances",
                         {"name": "cx1", "source": {"type": "image", "alias": "debian"}})
    assert op["status"] == "Cancelled" and op["err"] == "Operation cancelled"
    await call(api, "GET", "/1.0/instances/cx1", status=404)
    assert leftovers() == []
    # The name is free again.
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "cx1", "source": {"type": "image", "alias": "debian"}}, status=202))


async def test_cancelled_copy_publish_and_backup_leave_nothing(api) -> None:  # type: ignore[no-untyped-def]
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "src", "source": {"type": "image", "alias": "debian"}}, status=202))
    await wait(api, await call(api, "POST", "/1.0/instances/src/snapshots", {"name": "s0"},
                               status=202))
    before = sorted(os.listdir(paths.instances_dir()))
    op = await cancel_at(api, "copy.snapshot", "POST", "/1.0/instances", {
        "name": "dst", "source": {"type": "copy", "source": "src"}})
    assert op["status"] == "Cancelled"
    await call(api, "GET", "/1.0/instances/dst", status=404)
    assert sorted(os.listdir(paths.instances_dir())) == before

    # Publish and export of an instance of a one-file image: the same steps, quicker.
    resp = await api.post("/1.0/images", data=tiny_image(), headers={
        "Content-Type": "application/octet-stream", "X-LXD-aliases": "tiny"})
    assert resp.status == 202
    await wait(api, await resp.json())
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "small", "source": {"type": "image", "alias": "tiny"}}, status=202))
    images = sorted(os.listdir(paths.root() / "images"))
    op = await cancel_at(api, "publish.fingerprint", "POST", "/1.0/images", {
        "source": {"type": "instance", "name": "small"}, "aliases": [{"name": "pub"}]})
    assert op["status"] == "Cancelled"
    assert sorted(os.listdir(paths.root() / "images")) == images
    await call(api, "GET", "/1.0/images/aliases/pub", status=404)

    op = await cancel_at(api, "export.tree", "POST", "/1.0/instances/small/backups",
                         {"name": "b0"})
    assert op["status"] == "Cancelled"
    listed = (await call(api, "GET", "/1.0/instances/small/backups"))["metadata"]
    assert listed == []
    backups = paths.root() / "backups"
    assert [p for p in backups.rglob("*") if p.is_file()] == []
    await wait(api, await call(api, "DELETE", "/1.0/instances/src", status=202))
    await wait(api, await call(api, "DELETE", "/1.0/instances/small", status=202))


async def test_work_that_cannot_be_cancelled_says_so(api) -> None:  # type: ignore[no-untyped-def]
    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "cx2", "source": {"type": "image", "alias": "debian"}}, status=202))
    with held("delete.begin") as arrived:
        started = await call(api, "DELETE", "/1.0/instances/cx2", status=202)
        assert await asyncio.to_thread(arrived.wait, 30)
        refused = await call(api, "DELETE", started["operation"], status=400)
        assert refused["error"] == "This operation can't be cancelled"
    await wait(api, started)
    await call(api, "GET", "/1.0/instances/cx2", status=404)


async def test_a_backup_reports_its_progress(api) -> None:  # type: ignore[no-untyped-def]
    """The operation's metadata carries LXD's create_backup_progress ("12.34MB (5.60MB/s)",
    what lxc shows) while the tarball grows, announced on /1.0/events."""
    import re

    await wait(api, await call(api, "POST", "/1.0/instances", {
        "name": "bp1", "source": {"type": "image", "alias": "debian"}}, status=202))
    events = await api.ws_connect("/1.0/events?type=operation")
    try:
        await wait(api, await call(api, "POST", "/1.0/instances/bp1/backups",
                                   {"name": "b0", "compression_algorithm": "none"},
                                   status=202))
        texts = []
        while True:
            try:
                event = await asyncio.wait_for(events.receive_json(), 2)
            except TimeoutError:
                break
            text = event["metadata"]["metadata"].get("create_backup_progress")
            if text:
                texts.append(text)
    finally:
        await events.close()
    assert texts and all(re.fullmatch(r"\d+(\.\d\d[kMGT])?B \(\d+(\.\d\d[kMGT])?B/s\)", t)
                         for t in texts), texts
    await wait(api, await call(api, "DELETE", "/1.0/instances/bp1", status=202))
