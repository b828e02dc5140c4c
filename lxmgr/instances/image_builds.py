"""Recipe builds on the daemon's event loop: one build per recipe at a time, shared by every
operation that needs it, stopped when the last of them is cancelled.

The build itself (debootstrap, minutes) runs in a worker thread; its progress comes back to
the loop and goes to every operation waiting for it. Two launches of `debian` on an empty
host therefore build it once and both show the same progress. Cancelling one of two waiters
only detaches it; cancelling the last sets the build's cancel event, which stops debootstrap
and removes the build directory before the cancellation completes (lxmgr.images.debootstrap).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxmgr.images.progress import Progress
from lxmgr.images.store import PROJECT as IMAGE_PROJECT
from lxmgr.images.store import ImageInfo

log = logging.getLogger(__name__)

Listener = Callable[[Progress], None]
BuildFn = Callable[[str, Listener, threading.Event], ImageInfo]


@dataclass
class _Build:
    """One running build and who waits for it."""

    task: asyncio.Task[ImageInfo]
    cancel: threading.Event
    listeners: list[Listener] = field(default_factory=list)
    last: Progress | None = None

    def dispatch(self, progress: Progress) -> None:
        self.last = progress
        for listener in list(self.listeners):
            try:
                listener(progress)
            except Exception:  # noqa: BLE001 - one listener's bug must not stop the build
                log.exception("Image build progress listener failed")


class ImageBuilds:
    """The recipe builds in flight, keyed by recipe name and the project whose images they
    add to (a build runs in the context of its first caller: the image store's PROJECT)
    (lives on the daemon's loop)."""

    def __init__(self, build: BuildFn) -> None:
        self._build = build  # (recipe, progress, cancel) -> ImageInfo, run in a thread
        self._running: dict[tuple[str, str], _Build] = {}

    def running(self) -> list[str]:
        return sorted({recipe for recipe, _project in self._running})

    async def build(self, recipe: str, progress: Listener | None = None) -> ImageInfo:
        """The image of recipe, building it (or joining its running build). Cancelling the
        caller detaches it; the build stops when no caller is left."""
        key = (recipe, IMAGE_PROJECT.get())
        entry = self._running.get(key) or self._start(key)
        listener = progress or (lambda p: None)
        entry.listeners.append(listener)
        if entry.last is not None:
            listener(entry.last)
        try:
            return await asyncio.shield(entry.task)
        except asyncio.CancelledError:
            entry.listeners.remove(listener)
            if not entry.listeners and not entry.task.done():
                log.info("Image build '%s' cancelled: stopping it", recipe)
                entry.cancel.set()
                # Wait for debootstrap to stop and the build dir to go, so a cancelled
                # operation ends with nothing of it left.
                await asyncio.gather(entry.task, return_exceptions=True)
            raise
        finally:
            if listener in entry.listeners:
                entry.listeners.remove(listener)

    def _start(self, key: tuple[str, str]) -> _Build:
        recipe = key[0]
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        holder: dict[str, _Build] = {}

        def progress(p: Progress) -> None:  # in the worker thread
            loop.call_soon_threadsafe(holder["entry"].dispatch, p)

        log.info("Building image '%s'", recipe)
        task = asyncio.create_task(asyncio.to_thread(self._build, recipe, progress, cancel),
                                   name=f"image-build-{recipe}")
        entry = holder["entry"] = _Build(task, cancel)
        self._running[key] = entry
        task.add_done_callback(lambda _: self._finished(key, entry))
        return entry

    def _finished(self, key: tuple[str, str], entry: _Build) -> None:
        if self._running.get(key) is entry:
            del self._running[key]
        if not entry.task.cancelled():
            entry.task.exception()  # retrieved: an unjoined failure is not "never retrieved"

    async def shutdown(self) -> None:
        """Daemon stop: stop every build and wait for their cleanup."""
        for entry in self._running.values():
            entry.cancel.set()
        await asyncio.gather(*(e.task for e in self._running.values()),
                             return_exceptions=True)


def progress_metadata(p: Progress, key: str = "build_progress") -> dict[str, Any]:
    """An operation's metadata for build progress: a LXD-style *_progress text (what lxc
    shows; `create_instance_from_image_unpack_progress` in a create) and the structured
    stage, percent and message."""
    percent = int(p.fraction * 100)
    return {key: f"Building image: {p.stage} {percent}%",
            "progress": {"stage": p.stage, "percent": str(percent), "text": p.message}}
