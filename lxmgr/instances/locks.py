"""Per-instance locks: operations on one instance are serialized, operations on different
instances run in parallel (LXD's operationlock, lxd/instance/operationlock).

A lock is re-entrant (restore stops and starts, delete --force stops, copy freezes its
source: each in the same worker thread) and exists while someone holds or waits for it.
Several names are taken in sorted order, so two operations naming the same pair (a copy
each way) cannot deadlock. The lock is taken before any existence check, so a name is
reserved before its instance exists (two creates of one name: the second finds the first's).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class InstanceLocks:
    """One re-entrant lock per stored instance name."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.RLock, int]] = {}

    @contextmanager
    def hold(self, *names: str) -> Iterator[None]:
        """Hold the locks of names (duplicates and empty names ignored) for the block."""
        ordered = sorted({n for n in names if n})
        taken: list[str] = []
        try:
            for name in ordered:
                self._acquire(name)
                taken.append(name)
            yield
        finally:
            for name in reversed(taken):
                self._release(name)

    @contextmanager
    def try_hold(self, name: str) -> Iterator[bool]:
        """Hold name's lock for the block if nobody else does (yields True), else yield
        False at once: for background duties that skip a busy instance until next time."""
        lock = self._join(name)
        got = lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                lock.release()
            self._leave(name)

    def held(self) -> list[str]:
        """Names whose lock someone holds or waits for (for tests and diagnosis)."""
        with self._guard:
            return sorted(self._locks)

    def _acquire(self, name: str) -> None:
        self._join(name).acquire()

    def _release(self, name: str) -> None:
        with self._guard:
            self._locks[name][0].release()
        self._leave(name)

    def _join(self, name: str) -> threading.RLock:
        """name's lock, counted as used until _leave (it exists while someone uses it)."""
        with self._guard:
            lock, users = self._locks.get(name, (threading.RLock(), 0))
            self._locks[name] = (lock, users + 1)
        return lock

    def _leave(self, name: str) -> None:
        with self._guard:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


def serialized(*params: str) -> Callable[[F], F]:
    """Run a Manager method holding the locks of the instances its `params` name (a
    "NAME/SNAPSHOT" reference locks NAME); the object needs a `locks` InstanceLocks."""
    def wrap(method: F) -> F:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(self, *args, **kwargs).arguments
            names = [str(bound[p]).partition("/")[0] for p in params if bound.get(p)]
            with self.locks.hold(*names):
                return method(self, *args, **kwargs)
        return locked  # type: ignore[return-value]
    return wrap
