"""Daemon-side lifecycle duties: boot.autostart when the daemon starts, deleting
ephemeral instances that stopped on their own (poweroff inside, crash), once a minute
the scheduled snapshots (snapshots.schedule) and the expiry of old ones, and hourly the
images' auto-update and cache expiry (server config images.*)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from lxmgr.errors import LxmgrError
from lxmgr.instances.events import EventBus
from lxmgr.instances.manager import Manager

log = logging.getLogger(__name__)
WATCH_INTERVAL = 2.0


def autostart_order(manager: Manager) -> list[tuple[str, float]]:
    """(name, delay) of stopped instances with boot.autostart=true, highest priority first."""
    chosen = []
    for name in manager.list():
        config, _ = manager.expanded(manager.get(name))
        if config.get("boot.autostart") != "true" or manager.is_running(name):
            continue
        priority = int(config.get("boot.autostart.priority", "0"))
        delay = float(config.get("boot.autostart.delay", "0"))
        chosen.append((priority, name, delay))
    return [(name, delay) for _, name, delay in sorted(chosen, key=lambda t: (-t[0], t[1]))]


async def autostart(manager: Manager, events: EventBus) -> None:
    for name, delay in await asyncio.to_thread(autostart_order, manager):
        try:
            await asyncio.to_thread(manager.start, name)
            events.lifecycle("instance-started", name)
        except LxmgrError as err:
            log.error("Autostart of '%s' failed: %s", name, err)
        if delay:
            await asyncio.sleep(delay)


def stopped_ephemerals(manager: Manager, running_before: set[str]) -> tuple[list[str], set[str]]:
    """Ephemeral instances seen running before and stopped now; and who runs now.

    Every WATCH_INTERVAL: statuses come from the supervisors' state files and one poll of
    their pidfds (no control-socket round trip per instance); only an ephemeral candidate
    is asked, to be sure before it is deleted."""
    running = set()
    gone = []
    names = manager.list()
    for name, status in zip(names, manager.statuses_fast(names), strict=True):
        if status is None:  # deleted meanwhile
            continue
        if status != "Stopped":
            running.add(name)
        elif (name in running_before or not running_before) and manager.get(name).ephemeral \
                and not manager.is_running(name):
            gone.append(name)
    return gone, running


async def run(manager: Manager, events: EventBus) -> None:
    """Autostart, then every few seconds remove ephemeral instances that stopped and
    restart any network's dnsmasq that died (the daemon supervises them)."""
    await asyncio.to_thread(manager.pools.mount_all)  # btrfs loop pools, after a reboot
    await autostart(manager, events)
    await asyncio.to_thread(manager.warm.prestart)  # the first start need not wait for it
    running: set[str] = set()
    last_minute: datetime | None = None
    last_images: datetime | None = None
    while True:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        if now != last_minute:
            last_minute = now
            await snapshot_duties(manager, events, now)
            if now.minute == 0 or last_images is None:
                last_images = now
                await _image_duties(manager)
        try:
            gone, running = await asyncio.to_thread(stopped_ephemerals, manager, running)
            for name in gone:
                await asyncio.to_thread(manager.delete, name, ephemeral_stop=True)
                events.lifecycle("instance-deleted", name)
                log.info("Deleted stopped ephemeral instance %s", name)
            for name in await asyncio.to_thread(manager.networks.watch):
                log.warning("Network '%s': dnsmasq had died and was restarted", name)
        except LxmgrError as err:
            log.warning("Lifecycle watch: %s", err)
        await asyncio.sleep(WATCH_INTERVAL)


async def snapshot_duties(manager: Manager, events: EventBus, now: datetime) -> None:
    """Take this minute's scheduled snapshots, then delete the expired ones."""
    try:
        for name, snap in await asyncio.to_thread(manager.scheduled_snapshots, now):
            events.lifecycle("instance-snapshot-created", name, snapshot=snap)
            log.info("Scheduled snapshot %s/%s taken", name, snap)
        for name, snap in await asyncio.to_thread(manager.expire_snapshots, now):
            events.lifecycle("instance-snapshot-deleted", name, snapshot=snap)
            log.info("Expired snapshot %s/%s deleted", name, snap)
    except LxmgrError as err:
        log.warning("Snapshot duties: %s", err)


async def _image_duties(manager: Manager) -> None:
    """Hourly: auto-update pulled images, expire unused cached ones (server config)."""
    from lxmgr.instances.image_ops import image_duties

    try:
        for line in await image_duties(manager):
            log.info("Images: %s", line)
    except LxmgrError as err:
        log.warning("Image duties: %s", err)
