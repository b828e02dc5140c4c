"""A recording stand-in for the syscall seam (`lxmgr.linux.libc`): runtime code under test
gets this as `sc`, nothing reaches the kernel, and tests assert on `calls`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One recorded syscall: its name and positional arguments as libc would get them."""

    name: str
    args: tuple[Any, ...]


class RecordingSyscalls:
    """Same signatures as `lxmgr.linux.libc`; records every call, fails on request."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._failures: list[tuple[str, tuple[Any, ...], int]] = []
        self._next_fd = 1000

    def fail(self, name: str, err: int, *prefix: Any) -> None:
        """Make calls to `name` whose leading arguments equal `prefix` raise OSError(err)."""
        self._failures.append((name, prefix, err))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        """The argument tuples of every recorded call to `name`, in order."""
        return [call.args for call in self.calls if call.name == name]

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append(Call(name, args))
        for fname, prefix, err in self._failures:
            if fname == name and args[: len(prefix)] == prefix:
                raise OSError(err, os.strerror(err))

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
              arg5: int = 0) -> int:
        self._record("prctl", option, arg2, arg3, arg4, arg5)
        return 0

    def open_tree(self, dirfd: int, path: str, flags: int) -> int:
        self._record("open_tree", dirfd, path, flags)
        self._next_fd += 1
        return self._next_fd

    def mount_setattr(self, dirfd: int, path: str, flags: int, attr_set: int,
                      attr_clr: int = 0, userns_fd: int = 0) -> None:
        self._record("mount_setattr", dirfd, path, flags, attr_set, attr_clr, userns_fd)

    def move_mount(self, from_dirfd: int, from_path: str, to_dirfd: int, to_path: str,
                   flags: int) -> None:
        self._record("move_mount", from_dirfd, from_path, to_dirfd, to_path, flags)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)
