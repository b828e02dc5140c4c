"""The event bus behind /1.0/events: lifecycle, operation and logging events fan out to
subscribers' bounded queues. Lives on the daemon's event loop; publish(), lifecycle() and
changed() may be called from any thread (the engine's worker threads emit the events of the
state changes they make): the event is built in the caller's thread, with its requestor and
project, and delivered on the loop."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

from lxmgr.api.event import UNIX_REQUESTOR, Event, lifecycle
from lxmgr.model.project import DEFAULT, instance_url, storage_parts, url_suffix

log = logging.getLogger(__name__)
QUEUE_SIZE = 1024
# Who made the request being served (set per request by the daemon's auth middleware; the
# operations and threads it starts inherit it): the requestor of the lifecycle events.
REQUESTOR: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar(
    "requestor", default=UNIX_REQUESTOR)
# The project the request being served acts in (set by the daemon's project middleware):
# the project of the operations it starts and of the events of objects named without one.
PROJECT: contextvars.ContextVar[str] = contextvars.ContextVar("project", default=DEFAULT)


class Subscription:
    """One listener: the event types it wants (empty = all), the project it listens to
    (None = all projects) and its queue."""

    def __init__(self, types: frozenset[str], project: str | None = None) -> None:
        self.types = types
        self.project = project
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)

    def wants(self, event: Event) -> bool:
        """LXD's listener filter: its types, and its project unless it asked for all
        (events of no project, such as logging, reach every listener)."""
        if self.types and event.type not in self.types:
            return False
        return self.project is None or not event.project or event.project == self.project


class EventBus:
    """Fan-out of events to subscribers; a slow subscriber loses events, never blocks us."""

    def __init__(self) -> None:
        self.subscribers: set[Subscription] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, types: frozenset[str] = frozenset(),
                  project: str | None = None) -> Subscription:
        self.loop = asyncio.get_running_loop()
        sub = Subscription(types, project)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def publish(self, event: Event) -> None:
        """Deliver an event to its listeners, from the loop or from any thread (then in the
        order published); with no listener (or no loop yet) it goes nowhere, as LXD's."""
        loop = self.loop
        if loop is None or not self.subscribers:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
            return
        try:
            loop.call_soon_threadsafe(self._deliver, event)
        except RuntimeError:  # the loop closed: the daemon is exiting, nobody listens
            pass

    def _deliver(self, event: Event) -> None:
        data = event.to_dict()
        for sub in list(self.subscribers):
            if sub.wants(event):
                try:
                    sub.queue.put_nowait(data)
                except asyncio.QueueFull:
                    log.warning("Event subscriber too slow: dropped a %s event", event.type)

    def lifecycle(self, action: str, name: str, *, snapshot: str | None = None,
                  backup: str | None = None, context: dict[str, Any] | None = None,
                  **more: Any) -> None:
        """Publish an instance lifecycle event (instance-started, ...) of a stored instance
        name (its project is part of it); snapshot and backup events have the snapshot or
        the backup as their source, as in LXD. The context is `context` and the other
        keywords."""
        source = instance_url(name, f"/snapshots/{snapshot}" if snapshot else
                              f"/backups/{backup}" if backup else "")
        self.publish(lifecycle(action, source, {**(context or {}), **more}, REQUESTOR.get(),
                               project=storage_parts(name)[0]))

    def changed(self, collection: str, action: str, name: str, **context: Any) -> None:
        """Publish a lifecycle event of another resource, as LXD's: changed("profiles",
        "profile-created", "small") has source /1.0/profiles/small; in the project of the
        request (projects themselves belong to none but `default`)."""
        project = DEFAULT if collection == "projects" else PROJECT.get()
        self.publish(lifecycle(action, f"/1.0/{collection}/{name}{url_suffix(project)}",
                               context, REQUESTOR.get(), project=project))
