"""Daemon-side lifecycle duties: boot.autostart when the daemon starts (unset: the instances
that ran when the host went down come back), the host-shutdown sequence (boot.stop.priority,
boot.host_shutdown_timeout), deleting ephemeral instances that stopped on their own (poweroff
inside, crash), once a minute the scheduled snapshots (snapshots.schedule) and the expiry of
old ones, and hourly the images' auto-update and cache expiry (server config images.*).

Last state, as LXD's volatile.last_state.power ("Instance state as of last host shutdown",
doc/reference/instance_options.md): the shutdown sequence records RUNNING in each instance it
stops; an instance whose supervisor died with the host (no clean shutdown) still has a
state.json that is not Stopped. The next daemon start restores both, then drops the record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import weakref
from collections.abc import Awaitable
from datetime import UTC, datetime

from lxmgr import paths
from lxmgr.errors import Conflict, LxmgrError, NotFound
from lxmgr.instances import lxcfs
from lxmgr.instances.manager import Manager
from lxmgr.model.units import parse_bool

log = logging.getLogger(__name__)
WATCH_INTERVAL = 2.0
LAST_STATE = "volatile.last_state.power"
RUNNING = "RUNNING"  # LXD's instance.PowerStateRunning
HOST_SHUTDOWN_TIMEOUT = 30  # LXD's default of boot.host_shutdown_timeout
# Managers whose shutdown sequence has begun (True while it runs): autostart starts nothing
# more for them, even after it ended (lxmgrd exits then).
_shutdowns: weakref.WeakKeyDictionary[Manager, bool] = weakref.WeakKeyDictionary()


def should_autostart(config: dict[str, str], was_running: bool) -> bool:
    """LXD's instanceShouldAutoStart (lxd/instances.go): boot.autostart true, or unset and
    the instance ran when the host went down; false never."""
    value = config.get("boot.autostart", "")
    return parse_bool(value) if value else was_running


def was_running(name: str, config: dict[str, str]) -> bool:
    """The last state of a stopped instance: recorded by the shutdown sequence, or left by a
    supervisor that went down with the host (its state.json says it was not Stopped)."""
    if config.get(LAST_STATE) == RUNNING:
        return True
    try:
        with open(paths.instance_dir(name) / "state.json", "rb") as f:
            status = json.loads(f.read()).get("status")
    except (OSError, ValueError, AttributeError):
        return False
    return status not in (None, "", "Stopped")


def autostart_order(manager: Manager) -> list[tuple[str, float]]:
    """(name, delay) of the stopped instances to start (should_autostart), highest
    boot.autostart.priority first, then by name (LXD's instanceAutostartList)."""
    chosen = []
    for name in manager.list():
        spec = manager.get(name)
        config, _ = manager.expanded(spec)
        if manager.is_running(name) or \
                not should_autostart(config, was_running(name, spec.config)):
            continue
        priority = int(config.get("boot.autostart.priority") or "0")
        delay = float(config.get("boot.autostart.delay") or "0")
        chosen.append((priority, name, delay))
    return [(name, delay) for _, name, delay in sorted(chosen, key=lambda t: (-t[0], t[1]))]


def forget_last_state(manager: Manager) -> None:
    """Drop the shutdown sequence's records once autostart has read them: a later daemon
    start must not bring back an instance stopped since."""
    for name in manager.list():
        try:
            spec = manager.get(name)
            if spec.config.pop(LAST_STATE, None) is not None:
                manager.store.save(spec)
        except NotFound:  # deleted meanwhile
            continue


async def autostart(manager: Manager,
                    order: list[tuple[str, float]] | None = None) -> None:
    """Start what should run (should_autostart); first, what happened while the daemon was
    down is announced and what lost supervisors left is cleaned (the observer), after the
    order was read from the state files it rewrites."""
    if order is None:
        order = await asyncio.to_thread(autostart_order, manager)
    await asyncio.to_thread(forget_last_state, manager)
    await asyncio.to_thread(observe, manager)
    for name, delay in order:
        if manager in _shutdowns:
            log.info("Autostart stopped: the host is shutting down")
            return
        try:
            await asyncio.to_thread(manager.start, name)
        except LxmgrError as err:
            log.error("Autostart of '%s' failed: %s", name, err)
        if delay:
            await asyncio.sleep(delay)


# -- host shutdown -------------------------------------------------------------------------

def stop_batches(manager: Manager) -> list[list[tuple[str, float]]]:
    """The running instances as LXD's instancesShutdown takes them: batches of equal
    boot.stop.priority, highest first (by name within one), each instance with its
    boot.host_shutdown_timeout in seconds."""
    found: dict[int, list[tuple[str, float]]] = {}
    names = manager.list()
    for name, status in zip(names, manager.statuses_fast(names), strict=True):
        if status in (None, "Stopped"):
            continue
        config, _ = manager.expanded(manager.get(name))
        priority = int(config.get("boot.stop.priority") or "0")
        timeout = int(config.get("boot.host_shutdown_timeout") or HOST_SHUTDOWN_TIMEOUT)
        found.setdefault(priority, []).append((name, float(max(timeout, 0))))
    return [sorted(found[p]) for p in sorted(found, reverse=True)]


def shutdown_instance(manager: Manager, name: str, timeout: float) -> bool:
    """Stop one instance for the host's shutdown: its init's halt signal, SIGKILL of its
    cgroup once `timeout` seconds passed (the supervisor's stop), then LAST_STATE=RUNNING so
    the next daemon start brings it back (an ephemeral one is deleted by the stop, as in
    LXD). False when it was not running any more."""
    started = time.monotonic()
    try:
        manager.stop(name, timeout=timeout)
    except Conflict:  # stopped meanwhile
        return False
    if time.monotonic() - started >= timeout:
        log.warning("Instance '%s' did not shut down within %gs: killed", name, timeout)
    try:
        spec = manager.get(name)
    except NotFound:  # ephemeral
        return True
    spec.config[LAST_STATE] = RUNNING
    manager.store.save(spec)
    return True


async def shutdown(manager: Manager) -> list[str]:
    """The host-shutdown sequence (LXD's instancesShutdown, lxd/instances.go): the running
    instances stop batch by batch in boot.stop.priority order; those of one batch in
    parallel, at most one per CPU as LXD does; the next batch starts when the whole batch
    stopped. An instance that an autostart still under way started meanwhile is stopped in
    one more round. Returns the names stopped, in the order they finished. Conflict while
    another shutdown runs."""
    if _shutdowns.get(manager):
        raise Conflict("Shutdown already in progress")
    _shutdowns[manager] = True
    stopped: list[str] = []
    tried: set[str] = set()
    slots = asyncio.Semaphore(os.cpu_count() or 1)

    async def one(name: str, timeout: float) -> None:
        async with slots:
            try:
                if await asyncio.to_thread(shutdown_instance, manager, name, timeout):
                    stopped.append(name)  # its stop announced instance-shutdown
            except LxmgrError as err:
                log.error("Shutdown of '%s' failed: %s", name, err)

    try:
        while True:
            batches = [[(name, timeout) for name, timeout in batch if name not in tried]
                       for batch in await asyncio.to_thread(stop_batches, manager)]
            batches = [batch for batch in batches if batch]
            if not batches:
                break
            for batch in batches:
                log.info("Stopping instances %s", ", ".join(name for name, _ in batch))
                tried.update(name for name, _ in batch)
                async with asyncio.TaskGroup() as group:
                    for name, timeout in batch:
                        group.create_task(one(name, timeout), name=f"shutdown-{name}")
    finally:
        _shutdowns[manager] = False
    return stopped


def observe(manager: Manager) -> None:
    """Announce the changes nobody asked for (a stop, reboot or crash inside, a lost
    supervisor) and delete ephemeral instances that stopped by themselves."""
    manager.observer.observe_all(manager.list())


async def run(manager: Manager) -> None:
    """lxcfs, autostart, then every few seconds observe the instances (events of changes
    from inside, ephemeral instances that stopped, lost supervisors) and restart lxcfs or
    any network's dnsmasq that died (the daemon supervises them); at the end, stop lxcfs
    when no instance runs any more."""
    duty = lxcfs.Supervisor()
    try:
        await _lxcfs_duty(duty)  # first: the autostarted instances get its files
        await _watch(manager, duty)
    finally:
        await asyncio.to_thread(_release_lxcfs, manager)


async def _lxcfs_duty(duty: lxcfs.Supervisor) -> None:
    report = await asyncio.to_thread(duty.ensure)
    if report:
        log.log(*report)


def _release_lxcfs(manager: Manager) -> None:
    try:
        names = manager.list()
        lxcfs.release(any(s not in (None, "Stopped") for s in manager.statuses_fast(names)))
    except LxmgrError as err:
        log.warning("lxcfs: %s", err)


async def _watch(manager: Manager, duty: lxcfs.Supervisor) -> None:
    """The daemon's duties. Autostart and the minute's duties (schedules, expiry, hourly
    images) run beside the watch, each in a task of its own: an operation holding an
    instance for minutes (a restore waiting out a stop) delays only them, never the
    observation of the others, the dnsmasq and lxcfs watchdogs or the next minute (a minute
    whose duties are still running is skipped, with a warning)."""
    await asyncio.to_thread(manager.pools.mount_all)  # btrfs loop pools, after a reboot
    # Read before any observation rewrites the state of a supervisor lost with the host.
    order = await asyncio.to_thread(autostart_order, manager)
    last_minute: datetime | None = None
    last_images: datetime | None = None
    async with asyncio.TaskGroup() as group:
        group.create_task(_logged("Autostart", _autostart_then_prestart(manager, order)))
        minute: asyncio.Task[None] | None = None
        while True:
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            if now != last_minute:
                last_minute = now
                images = now.minute == 0 or last_images is None
                last_images = now if images else last_images
                if minute is not None and not minute.done():
                    log.warning("The duties of the last minute still run: skipping %s",
                                now.strftime("%H:%M"))
                else:
                    minute = group.create_task(_logged("Minute duties", _minute_duties(
                        manager, now, images)))
            try:
                await asyncio.to_thread(observe, manager)
                for name in await asyncio.to_thread(manager.networks.watch):
                    log.warning("Network '%s': dnsmasq had died and was restarted", name)
            except LxmgrError as err:
                log.warning("Lifecycle watch: %s", err)
            await _lxcfs_duty(duty)
            await asyncio.sleep(WATCH_INTERVAL)


async def _autostart_then_prestart(manager: Manager, order: list[tuple[str, float]]) -> None:
    await autostart(manager, order)
    await asyncio.to_thread(manager.warm.prestart)  # the first start need not wait for it


async def _minute_duties(manager: Manager, now: datetime, images: bool) -> None:
    await snapshot_duties(manager, now)
    if images:
        await _image_duties(manager)


async def _logged(what: str, work: Awaitable[None]) -> None:
    """A background duty whose failure is logged, not fatal to the other duties."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - a bug: keep the daemon's other duties going
        log.exception("%s failed", what)


async def snapshot_duties(manager: Manager, now: datetime) -> None:
    """Take this minute's scheduled snapshots, then delete the expired snapshots and
    backups (and sweep the leftovers of interrupted backups); each change is announced by
    the code that makes it."""
    try:
        for name, snap in await asyncio.to_thread(manager.scheduled_snapshots, now):
            log.info("Scheduled snapshot %s/%s taken", name, snap)
        for name, snap in await asyncio.to_thread(manager.expire_snapshots, now):
            log.info("Expired snapshot %s/%s deleted", name, snap)
    except LxmgrError as err:
        log.warning("Snapshot duties: %s", err)
    try:  # Backups announces each deletion
        for name, backup in await asyncio.to_thread(manager.backups.expire, now):
            log.info("Expired backup %s/%s deleted", name, backup)
    except LxmgrError as err:
        log.warning("Backup expiry: %s", err)


async def _image_duties(manager: Manager) -> None:
    """Hourly: auto-update pulled images, expire unused cached ones (server config)."""
    from lxmgr.instances.image_ops import image_duties

    try:
        for line in await image_duties(manager):
            log.info("Images: %s", line)
    except LxmgrError as err:
        log.warning("Image duties: %s", err)
