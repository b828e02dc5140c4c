"""The `v2` cgroup driver, for unified (pure cgroup2) hosts.

Owns what is specific to cgroup2: enabling controllers in cgroup.subtree_control down to our
base, cgroup.freeze/cgroup.events, cgroup.kill and the v2 usage files. Imports base, detect,
translate and lxmgr.errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from lxmgr.cgroups.base import (
    CgroupDriver,
    Usage,
    online_cpus,
    read_cpu_stat_ns,
    read_file,
    read_int,
    read_keyed,
    wait_for,
    write_file,
)
from lxmgr.cgroups.detect import Hierarchy, Layout, read_controllers
from lxmgr.cgroups.devices import attach_program, parse_rules
from lxmgr.cgroups.translate import Write, translate_v2
from lxmgr.errors import NotSupported
from lxmgr.model.units import parse_cpuset

# Controllers our containers get when the parent offers them (LXD enables the same set).
WANTED_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")


class V2Driver(CgroupDriver):
    """cgroup v2: one tree; the container owns its subtree_control (delegation)."""

    name = "v2"
    has_native_kill = True

    def _select_hierarchies(self, layout: Layout) -> list[Hierarchy]:
        if layout.unified is None:
            raise NotSupported("The v2 cgroup driver needs a mounted cgroup2 tree")
        return [layout.unified]

    @property
    def _tree(self) -> Hierarchy:
        return self.hierarchies[0]

    def _before_mkdir(self, h: Hierarchy, parent: str) -> None:
        # Controllers flow down: a level only gets what its parent enabled in subtree_control.
        enable_controllers(parent)

    def _after_mkdir(self, h: Hierarchy, path: str) -> None:
        pass  # a new v2 cgroup inherits everything it needs

    def _controller_dir(self, controller: str, name: str) -> str | None:
        path = self.path(self._tree, name)
        return path if controller in read_controllers(path) else None

    def build_writes(self, config: Mapping[str, str], cpus: Sequence[int],
                     memory: int) -> list[Write]:
        """translate_v2."""
        return translate_v2(config, cpus, memory)

    def available_cpus(self) -> list[int]:
        """cpuset.cpus.effective of the base (or the root), else the online CPUs."""
        for directory in (self.path(self._tree), self._tree.mountpoint):
            text = read_file(os.path.join(directory, "cpuset.cpus.effective"))
            if text:
                return parse_cpuset(text)
        return online_cpus()

    def usage(self, name: str) -> Usage:
        """memory.current/peak, memory.swap.current, cpu.stat usage_usec (there even without
        the cpu controller, as on a hybrid host's unified tree), pids.current."""
        path = self.path(self._tree, name)
        processes = read_int(os.path.join(path, "pids.current"))
        return Usage(
            memory_bytes=read_int(os.path.join(path, "memory.current")) or 0,
            memory_peak_bytes=read_int(os.path.join(path, "memory.peak")),
            swap_bytes=read_int(os.path.join(path, "memory.swap.current")),
            cpu_ns=read_cpu_stat_ns(path) or 0,
            processes=processes if processes is not None else len(self.pids(name)),
        )

    def _events(self, name: str) -> dict[str, str]:
        return read_keyed(os.path.join(self.path(self._tree, name), "cgroup.events"))

    def _set_freeze(self, name: str, value: str, timeout: float) -> None:
        path = os.path.join(self.path(self._tree, name), "cgroup.freeze")
        if not os.path.exists(path):
            raise NotSupported(f"No cgroup.freeze in '{os.path.dirname(path)}'")
        write_file(path, value)
        what = "freeze" if value == "1" else "thaw"
        wait_for(lambda: self._events(name).get("frozen") == value, timeout,
                 f"cgroup '{self.base}/{name}' to {what}")

    def freeze(self, name: str, timeout: float = 10.0) -> None:
        """cgroup.freeze=1, then wait for `frozen 1` in cgroup.events."""
        self._set_freeze(name, "1", timeout)

    def thaw(self, name: str, timeout: float = 10.0) -> None:
        """cgroup.freeze=0, then wait for `frozen 0` in cgroup.events."""
        self._set_freeze(name, "0", timeout)

    def is_frozen(self, name: str) -> bool:
        """cgroup.events says `frozen 1`."""
        return self._events(name).get("frozen") == "1"

    def kill(self, name: str, timeout: float = 10.0) -> None:
        """cgroup.kill (5.14+), else the freeze/SIGKILL loop; wait until empty."""
        path = os.path.join(self.path(self._tree, name), "cgroup.kill")
        if not os.path.exists(path):
            self._kill_loop(name, timeout, can_freeze=True)
            return
        write_file(path, "1")
        wait_for(lambda: not self.pids(name), timeout, f"cgroup '{self.base}/{name}' to empty")

    def apply_devices(self, name: str, rules: Sequence[str]) -> None:
        """A BPF_PROG_TYPE_CGROUP_DEVICE program on the container's cgroup (cgroup2 has no
        devices files), replaced whole on each change."""
        attach_program(self.path(self._tree, name), parse_rules(rules))

    def container_mounts(self) -> list[tuple[str, str, str]]:
        """One cgroup2 mount at /sys/fs/cgroup (nsdelegate is ignored outside the init ns)."""
        return [("", "cgroup2", "nsdelegate")]


def enable_controllers(path: str) -> None:
    """Enable the wanted controllers `path` offers but has not enabled yet (writes only then)."""
    enabled = (read_file(os.path.join(path, "cgroup.subtree_control")) or "").split()
    offered = read_controllers(path)
    missing = [c for c in WANTED_CONTROLLERS if c in offered and c not in enabled]
    if missing:
        write_file(os.path.join(path, "cgroup.subtree_control"),
                   " ".join(f"+{c}" for c in missing))
