"""MountOp family: one mount step each, with describe() for logs and apply(sc) to act.

`sc` is the syscall seam (lxmgr.linux.libc in production, a recorder in unit tests).
Runs in the container child (synchronous); imports linux and errors only.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from lxmgr.linux import consts as c

NOSUID_NODEV_NOEXEC = c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC


def ensure_dir(path: str, mode: int = 0o755) -> None:
    """Create a mount point directory if it is missing."""
    os.makedirs(path, mode=mode, exist_ok=True)


def ensure_file(path: str) -> None:
    """Create an empty file to bind-mount a file onto."""
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))


@dataclass(frozen=True)
class Mount:
    """A plain mount(2) of a filesystem type (proc, sysfs, tmpfs, devpts, cgroup...)."""

    fstype: str
    target: str
    flags: int = 0
    data: str | None = None
    source: str | None = None

    def describe(self) -> str:
        return f"mount -t {self.fstype} {self.source or self.fstype} {self.target} ({self.data})"

    def apply(self, sc) -> None:  # type: ignore[no-untyped-def]
        ensure_dir(self.target)
        sc.mount(self.source or self.fstype, self.target, self.fstype, self.flags, self.data)


@dataclass(frozen=True)
class Bind:
    """A bind mount, optionally re-mounted read-only (flags repeated: locked flags must stay)."""

    source: str
    target: str
    readonly: bool = False
    recursive: bool = False
    is_file: bool = False
    extra_flags: int = 0

    def describe(self) -> str:
        return f"bind {self.source} -> {self.target}{' ro' if self.readonly else ''}"

    def apply(self, sc) -> None:  # type: ignore[no-untyped-def]
        if self.is_file:
            ensure_file(self.target)
        elif self.target != self.source:
            ensure_dir(self.target)
        flags = c.MS_BIND | (c.MS_REC if self.recursive else 0)
        sc.mount(self.source, self.target, None, flags, None)
        if self.readonly:
            remount = c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | self.extra_flags
            sc.mount(None, self.target, None, remount, None)


@dataclass(frozen=True)
class Symlink:
    """A symlink created in a fresh tmpfs (/dev/fd, /dev/ptmx...)."""

    target: str
    path: str

    def describe(self) -> str:
        return f"symlink {self.path} -> {self.target}"

    def apply(self, sc) -> None:  # type: ignore[no-untyped-def]
        if not os.path.lexists(self.path):
            os.symlink(self.target, self.path)


MountOp = Mount | Bind | Symlink


def check_no_symlinks(root: str, path: str) -> None:
    """Refuse a mount target reached through a symlink below root (CVE-2015-1335: a
    container that planted /proc -> /somewhere would divert our mounts). Race-free at
    boot: no process of the container runs yet to swap a component."""
    if not path.startswith(root.rstrip("/") + "/"):
        return
    current = root.rstrip("/")
    for part in path[len(current) + 1:].split("/"):
        current = f"{current}/{part}"
        if os.path.islink(current):
            rel = current[len(root.rstrip("/")):]
            raise OSError(errno.ELOOP, f"Refusing to mount on {rel}: it is a symlink in the "
                          "rootfs")


def apply_all(ops: list[MountOp], sc, root: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Walk the plan; each failure names the step. With root, targets below it must not
    go through symlinks."""
    for op in ops:
        try:
            if root is not None and not isinstance(op, Symlink):
                check_no_symlinks(root, op.target)
            op.apply(sc)
        except OSError as err:
            raise OSError(err.errno, f"Failed to {op.describe()}: {err.strerror or err}") \
                from err
