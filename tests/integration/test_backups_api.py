"""Backups follow their instance through the API: a renamed instance takes its backups along
(a new instance of the old name has none), an ephemeral instance stopped through the API
leaves no backup behind, expired backups go, and each change is an instance-backup-* event
on /1.0/events, as LXD's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from lxmgr import paths
from lxmgr.daemon.keys import MANAGER
from tests.integration.conftest import call, wait
from tests.integration.test_api import launch
from tests.integration.test_api_extensions import download, op, tiny_instance

pytestmark = pytest.mark.kernel


async def backup_events(events: Any, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    """The next `count` instance-backup-* lifecycle events (others are skipped)."""
    seen = []
    while len(seen) < count:
        meta = (await asyncio.wait_for(events.receive_json(), 30))["metadata"]
        if meta["action"].startswith("instance-backup-"):
            seen.append((meta["action"], meta["source"], meta["context"]))
    return seen


async def test_backups_move_with_a_renamed_instance(api) -> None:  # type: ignore[no-untyped-def]
    events = await api.ws_connect("/1.0/events?type=lifecycle")
    await tiny_instance(api, "bm1")
    await op(api, "POST", "/1.0/instances/bm1/backups", {"name": "b0",
                                                         "compression_algorithm": "none"})
    await op(api, "POST", "/1.0/instances/bm1", {"name": "bm2"})
    assert (await call(api, "GET", "/1.0/instances/bm2/backups"))["metadata"] == [
        "/1.0/instances/bm2/backups/b0"]
    assert (await download(api, "/1.0/instances/bm2/backups/b0/export"))[257:262] == b"ustar"
    await tiny_instance(api, "bm1")  # the old name again: none of bm2's backups
    assert (await call(api, "GET", "/1.0/instances/bm1/backups"))["metadata"] == []
    await call(api, "GET", "/1.0/instances/bm1/backups/b0", status=404)

    # Expired backups go (the daemon's minute duty calls this).
    await op(api, "POST", "/1.0/instances/bm1/backups",
             {"name": "old", "expires_at": "2001-01-01T00:00:00Z"})
    manager = api.app[MANAGER]
    assert await asyncio.to_thread(manager.backups.expire, datetime.now(UTC)) == [
        ("bm1", "old")]
    assert (await call(api, "GET", "/1.0/instances/bm1/backups"))["metadata"] == []

    await op(api, "DELETE", "/1.0/instances/bm2")
    assert not (paths.root() / "backups" / "instances" / "bm2").exists()
    assert await backup_events(events, 6) == [
        ("instance-backup-created", "/1.0/instances/bm1/backups/b0", {}),
        ("instance-backup-renamed", "/1.0/instances/bm2/backups/b0", {"old_name": "bm1/b0"}),
        ("instance-backup-retrieved", "/1.0/instances/bm2/backups/b0", {}),
        ("instance-backup-created", "/1.0/instances/bm1/backups/old", {}),
        ("instance-backup-deleted", "/1.0/instances/bm1/backups/old", {}),
        ("instance-backup-deleted", "/1.0/instances/bm2/backups/b0", {})]
    await events.close()


async def test_a_stopped_ephemeral_leaves_no_backups(api) -> None:  # type: ignore[no-untyped-def]
    await launch(api, "eb1", ephemeral=True)
    events = await api.ws_connect("/1.0/events?type=lifecycle")
    await op(api, "POST", "/1.0/instances/eb1/backups",
             {"name": "b0", "instance_only": True, "compression_algorithm": "none"})
    assert (paths.root() / "backups" / "instances" / "eb1" / "b0.tar").is_file()
    await wait(api, await call(api, "PUT", "/1.0/instances/eb1/state",
                               {"action": "stop", "force": True}, status=202))
    await call(api, "GET", "/1.0/instances/eb1", status=404)
    assert not (paths.root() / "backups" / "instances" / "eb1").exists()
    assert await backup_events(events, 2) == [
        ("instance-backup-created", "/1.0/instances/eb1/backups/b0", {}),
        ("instance-backup-deleted", "/1.0/instances/eb1/backups/b0", {})]
    await events.close()
