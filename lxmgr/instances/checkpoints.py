"""Checkpoints in long or multi-step engine work: where an operation may be cancelled (its
undo then runs, as the ExitStacks around the steps unwind), and named points where a test
injects a fault (the daemon is killed there) deterministically, without sleeps.

The cancel token of the operation being run travels in a context variable: the operation's
task sets it and `asyncio.to_thread` copies the context into the worker thread, so engine
code needs no extra parameter. `in_thread()` runs blocking work so that a cancel request
reaches it and the operation ends only after the work has undone itself (LXD's cancellable
operations likewise wait for their run function, lxd/operations/operations.go).

Fault injection: LXMGR_FAULT=<point> in the daemon's environment makes it SIGKILL itself
when the point is reached (tests/system/test_faults.py); in-process tests register a hook
with `on(point, hook)`. Neither costs more than a dict lookup when unused.

Part of `instances`: never imports the daemon or front ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from lxmgr.errors import Cancelled

T = TypeVar("T")
FAULT_ENV = "LXMGR_FAULT"
# The cancel token of the operation whose work runs (None outside operations).
CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "cancel", default=None)
# Where the work's progress goes: the operation's metadata (None outside operations).
REPORT: contextvars.ContextVar[Callable[[dict[str, Any]], None] | None] = \
    contextvars.ContextVar("report", default=None)
PROGRESS_INTERVAL = 0.25  # seconds between two progress updates of one operation
_hooks: dict[str, Callable[[], None]] = {}


def checkpoint(point: str) -> None:
    """A step boundary named `point` ("create.volume", ...): the injected fault, if any,
    happens here; then, if the operation was cancelled, Cancelled is raised (the caller's
    undo runs)."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
    hook = _hooks.get(point)
    if hook is not None:
        hook()
    if cancelled():
        raise Cancelled("Operation cancelled")


def cancelled() -> bool:
    token = CANCEL.get()
    return token is not None and token.is_set()


def report(**metadata: Any) -> None:
    """Merge metadata (LXD's `<stage>_progress` text, ...) into the running operation's,
    which tells its listeners (the CLI shows any *_progress key)."""
    send = REPORT.get()
    if send is not None:
        send(metadata)


def byte_progress(key: str) -> Callable[[int], None]:
    """A callback for a growing byte count that reports it as LXD's progress text
    (lxd/backup.go: "12.34MB (5.60MB/s)") under key, a few times a second, and is a
    cancellation point."""
    started = time.monotonic()
    last = 0.0

    def update(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_INTERVAL:
            return
        last = now
        if cancelled():
            raise Cancelled("Operation cancelled")
        speed = done / max(now - started, 1e-3)
        report(**{key: f"{byte_size(done)} ({byte_size(speed)}/s)"})
    return update


def byte_size(value: float) -> str:
    """LXD's units.GetByteSizeString(value, 2): decimal units, two decimals."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.2f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1000
    raise AssertionError("unreachable")


@contextmanager
def on(point: str, hook: Callable[[], None]) -> Iterator[None]:
    """Run hook whenever `point` is reached, for the block (tests)."""
    _hooks[point] = hook
    try:
        yield
    finally:
        _hooks.pop(point, None)


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """asyncio.to_thread for cancellable work: when the awaiting task is cancelled (the
    operation's cancel request set its token first), wait until the thread has reached a
    checkpoint and undone its work, then let the cancellation through."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.gather(future, return_exceptions=True)
        raise
