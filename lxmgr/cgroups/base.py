"""The cgroup driver contract (`CgroupDriver`), its registry and the file helpers both drivers use.

Owns: the tree of our cgroups (`<mount>/<base>/<name>` in every hierarchy the driver manages),
creation with delegation to the container root, attach, limits via translate.py, usage,
process listing and removal. Controller-specific parts (freeze, kill, usage, mounts) live in
v1.py and v2.py. Imports detect, translate, lxmgr.errors; never runtime or instances.
Every write goes through `write_file` (os.open + os.write) because a buffered
`open().write()` can swallow the kernel's error.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import ClassVar

from lxmgr.cgroups.detect import Hierarchy, Layout, detect
from lxmgr.cgroups.translate import Write
from lxmgr.errors import InvalidConfig, KernelError, NotSupported, UnknownDriver
from lxmgr.model.units import parse_cpuset

log = logging.getLogger(__name__)

DRIVERS: dict[str, type[CgroupDriver]] = {}

# Files the container root may write in its own cgroup (LXC does the same); everything else,
# the limits in particular, stays root-owned.
DELEGATED_FILES = {
    1: ("cgroup.procs", "tasks"),
    2: ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"),
}

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]+(/[A-Za-z0-9_.:@-]+)*$")
RMDIR_TIMEOUT = 2.0


@dataclass(frozen=True)
class Usage:
    """Resource usage of one container cgroup (hierarchical, children included)."""

    memory_bytes: int
    memory_peak_bytes: int | None
    swap_bytes: int | None
    cpu_ns: int
    processes: int


def load(name_or_layout: str | Layout, base: str = "lxmgr",
         layout: Layout | None = None) -> CgroupDriver:
    """A driver for a Layout (picked by its mode) or by name ('v1', 'v2') on `layout`."""
    if isinstance(name_or_layout, Layout):
        layout, name = name_or_layout, name_or_layout.driver_name
    else:
        name = name_or_layout
    cls = DRIVERS.get(name)
    if cls is None:
        raise UnknownDriver(f"Unknown cgroup driver '{name}' (known: {', '.join(sorted(DRIVERS))})")
    return cls(layout if layout is not None else detect(), base)


def check_name(value: str, what: str) -> str:
    """Reject empty names, '..' and absolute paths before they reach a cgroupfs path."""
    if not _NAME_RE.match(value) or any(p in (".", "..") for p in value.split("/")):
        raise InvalidConfig(f"Invalid cgroup {what} '{value}'")
    return value


def write_file(path: str, value: str, missing_ok: bool = False) -> bool:
    """Write `value` with one write(2); False if missing and `missing_ok`, else KernelError."""
    data = value.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except FileNotFoundError as err:
        if missing_ok:
            return False
        raise KernelError(f"Failed to open '{path}': {err.strerror}") from err
    except OSError as err:
        raise KernelError(f"Failed to open '{path}': {err.strerror}") from err
    try:
        written = os.write(fd, data)
    except OSError as err:
        raise KernelError(f"Failed to write '{value}' to '{path}': {err.strerror}") from err
    finally:
        os.close(fd)
    if written != len(data):
        raise KernelError(f"Short write of '{value}' to '{path}'")
    return True


def read_file(path: str) -> str | None:
    """The stripped content of `path`, or None if it does not exist."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise KernelError(f"Failed to read '{path}': {err.strerror}") from err


def read_int(path: str) -> int | None:
    """An integer file ('max' counts as None), or None if missing."""
    text = read_file(path)
    return None if text is None or text == "max" else int(text)


def read_keyed(path: str) -> dict[str, str]:
    """A flat keyed file ('key value' lines: cgroup.events, cpu.stat, oom_control)."""
    pairs = (line.split(None, 1) for line in (read_file(path) or "").splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def read_cpu_stat_ns(directory: str) -> int | None:
    """CPU time of a cgroup2 directory in ns: cpu.stat's usage_usec, which the kernel keeps
    in every cgroup2 directory, with or without the cpu controller (cgroup-v2.rst, "Core
    Interface Files"); None when there is no cpu.stat."""
    usage = read_keyed(os.path.join(directory, "cpu.stat")).get("usage_usec")
    return int(usage) * 1000 if usage is not None and usage.isdigit() else None


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until true; KernelError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while not check():
        if time.monotonic() > deadline:
            raise KernelError(f"Timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class CgroupDriver(ABC):
    """Manages `<base>/<name>` cgroups; subclasses register under their config value."""

    name: ClassVar[str] = ""
    has_native_kill: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            DRIVERS[cls.name] = cls

    def __init__(self, layout: Layout, base: str = "lxmgr") -> None:
        self.layout = layout
        self.base = check_name(base, "base")
        self.hierarchies = self._select_hierarchies(layout)

    # -- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def _select_hierarchies(self, layout: Layout) -> list[Hierarchy]:
        """The hierarchies this driver creates cgroups in."""

    @abstractmethod
    def _before_mkdir(self, h: Hierarchy, parent: str) -> None:
        """Prepare the parent of a level (`<base>` or `<base>/<name>`) before creating it."""

    @abstractmethod
    def _after_mkdir(self, h: Hierarchy, path: str) -> None:
        """Prepare one level right after it exists (or was found existing)."""

    @abstractmethod
    def _controller_dir(self, controller: str, name: str) -> str | None:
        """The container's directory that carries `controller`, or None if unavailable."""

    @abstractmethod
    def build_writes(self, config: Mapping[str, str], cpus: Sequence[int],
                     memory: int) -> list[Write]:
        """The translate.py plan for this driver."""

    @abstractmethod
    def usage(self, name: str) -> Usage:
        """Current usage read from the container's cgroup."""

    @abstractmethod
    def freeze(self, name: str, timeout: float = 10.0) -> None:
        """Freeze every process of the container; returns once the freeze settled."""

    @abstractmethod
    def thaw(self, name: str, timeout: float = 10.0) -> None:
        """Thaw the container; returns once the thaw settled."""

    @abstractmethod
    def is_frozen(self, name: str) -> bool:
        """True if the container's cgroup is frozen."""

    @abstractmethod
    def kill(self, name: str, timeout: float = 10.0) -> None:
        """SIGKILL every process in the subtree; returns once it is empty."""

    @abstractmethod
    def container_mounts(self) -> list[tuple[str, str, str]]:
        """(target under /sys/fs/cgroup, fstype, data) for the container's cgroupns."""

    @abstractmethod
    def available_cpus(self) -> list[int]:
        """The CPUs our base may hand out."""

    # -- paths -------------------------------------------------------------------------------

    def path(self, h: Hierarchy, name: str | None = None) -> str:
        """`<mount>/<base>[/<name>]` in hierarchy `h`."""
        parts = [h.mountpoint, self.base] + ([check_name(name, "name")] if name is not None else [])
        return os.path.join(*parts)

    def _levels(self, h: Hierarchy, name: str) -> list[str]:
        """Every directory from the first component of `base` down to the container."""
        parts = self.base.split("/")
        levels = [os.path.join(h.mountpoint, *parts[: i + 1]) for i in range(len(parts))]
        return [*levels, self.path(h, name)]

    def procs_paths(self, name: str) -> list[str]:
        """The container's cgroup.procs in every hierarchy (a child can write its own pid)."""
        return [os.path.join(self.path(h, name), "cgroup.procs") for h in self.hierarchies]

    def exists(self, name: str) -> bool:
        """True if the container's cgroup exists in any hierarchy."""
        return any(os.path.isdir(self.path(h, name)) for h in self.hierarchies)

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self, name: str, uid: int, gid: int) -> None:
        """Create `<base>/<name>` everywhere and delegate it to uid:gid; idempotent, reverts."""
        with ExitStack() as revert:
            for h in self.hierarchies:
                for level in self._levels(h, name):
                    self._before_mkdir(h, os.path.dirname(level))
                    if _mkdir(level):
                        revert.callback(_rmdir_quiet, level)
                    self._after_mkdir(h, level)
                _delegate(h, self.path(h, name), uid, gid)
            revert.pop_all()
        log.debug("Created cgroup %s/%s for %d:%d", self.base, name, uid, gid)

    def attach(self, name: str, pid: int) -> None:
        """Move `pid` (the whole thread group) into the container in every hierarchy."""
        for path in self.procs_paths(name):
            write_file(path, str(pid))

    def apply_limits(self, name: str, config: Mapping[str, str], host_cpus: int | None = None,
                     host_memory: int | None = None) -> None:
        """Apply `limits.*` live; unset keys are reset to the kernel default."""
        cpus = list(range(host_cpus)) if host_cpus is not None else self.available_cpus()
        memory = host_memory if host_memory is not None else host_memory_bytes()
        for write in self.build_writes(config, cpus, memory):
            self._apply_write(name, write)

    def _apply_write(self, name: str, write: Write) -> None:
        directory = self._controller_dir(write.controller, name)
        if directory is None:
            if write.reset:
                return
            raise NotSupported(f"Cannot apply '{write.key}': the {write.controller} "
                               "controller is not available")
        log.debug("cgroup %s/%s: %s", self.base, name, write.describe())
        write_file(os.path.join(directory, write.file), write.value, missing_ok=write.reset)

    def apply_devices(self, name: str, rules: Sequence[str]) -> None:
        """Make the container's device access list exactly `rules` (cgroup v1 syntax, see
        lxmgr.cgroups.devices); at boot before the container runs, and again on hot-plug."""
        raise NotSupported(f"The {self.name} cgroup driver has no device access list")

    def pids(self, name: str) -> list[int]:
        """Every pid in the container's subtree, in any hierarchy."""
        found: set[int] = set()
        for h in self.hierarchies:
            found.update(subtree_pids(self.path(h, name)))
        return sorted(found)

    def delete(self, name: str) -> None:
        """rmdir the container's subtree depth-first everywhere; missing dirs are fine."""
        for h in self.hierarchies:
            top = self.path(h, name)
            if not os.path.isdir(top):
                continue
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                rmdir_retry(dirpath)
        log.debug("Deleted cgroup %s/%s", self.base, name)

    def delete_base(self) -> None:
        """rmdir the (empty) base in every hierarchy."""
        for h in self.hierarchies:
            rmdir_retry(self.path(h))

    def _kill_loop(self, name: str, timeout: float, can_freeze: bool) -> None:
        """Freeze, SIGKILL every pid, thaw; repeat until the subtree is empty.

        Freezing first stops a fork loop from outrunning us: the signals land on thaw.
        """
        deadline = time.monotonic() + timeout
        while pids := self.pids(name):
            if time.monotonic() > deadline:
                raise KernelError(f"Timed out killing cgroup '{self.base}/{name}': "
                                  f"{len(pids)} processes left")
            if can_freeze:
                self._try_freeze(name)
            try:
                for pid in self.pids(name):
                    _sigkill(pid)
            finally:
                if can_freeze:
                    self.thaw(name)
            time.sleep(0.01)

    def _try_freeze(self, name: str) -> None:
        # A task stuck in D state can keep the freeze from settling; kill anyway.
        try:
            self.freeze(name, timeout=1.0)
        except KernelError as err:
            log.debug("Freeze before kill did not settle: %s", err)


def _mkdir(path: str) -> bool:
    """mkdir; False if it already existed."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return False
    except OSError as err:
        raise KernelError(f"Failed to create cgroup '{path}': {err.strerror}") from err
    return True


def _rmdir_quiet(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError as err:
        log.warning("Failed to remove cgroup '%s' while reverting: %s", path, err.strerror)


def rmdir_retry(path: str, timeout: float | None = None) -> None:
    """rmdir one cgroup, retrying while busy (exiting tasks); missing is fine."""
    deadline = time.monotonic() + (RMDIR_TIMEOUT if timeout is None else timeout)
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            busy = err.errno in (errno.EBUSY, errno.ENOTEMPTY)
            if not busy or time.monotonic() > deadline:
                raise KernelError(f"Failed to remove cgroup '{path}': {err.strerror}") from err
            time.sleep(0.02)


def _delegate(h: Hierarchy, path: str, uid: int, gid: int) -> None:
    """chown the dir and the delegated files to the container root."""
    for target in (path, *(os.path.join(path, f) for f in DELEGATED_FILES[h.version])):
        try:
            os.chown(target, uid, gid)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise KernelError(f"Failed to delegate '{target}': {err.strerror}") from err


def subtree_pids(top: str) -> set[int]:
    """pids in cgroup.procs of `top` and every cgroup below it."""
    found: set[int] = set()
    for dirpath, _dirs, _files in os.walk(top):
        text = read_file(os.path.join(dirpath, "cgroup.procs")) or ""
        found.update(int(pid) for pid in text.split())
    return found


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def host_memory_bytes() -> int:
    """MemTotal from /proc/meminfo."""
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise NotSupported("No MemTotal in /proc/meminfo")


def online_cpus() -> list[int]:
    """CPUs the kernel has online (fallback when no cpuset controller is mounted)."""
    text = read_file("/sys/devices/system/cpu/online")
    return parse_cpuset(text) if text else list(range(os.cpu_count() or 1))
