"""The `v1` cgroup driver, for hybrid and legacy hosts.

Owns what is specific to v1: one directory per controller hierarchy plus name=systemd (and the
controller-less unified tree on hybrid hosts), cpuset inheritance, freezer.state, memsw and the
v1 usage files. Imports base, detect, translate and lxmgr.errors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from lxmgr.cgroups.base import (
    CgroupDriver,
    Usage,
    online_cpus,
    read_cpu_stat_ns,
    read_file,
    read_int,
    wait_for,
    write_file,
)
from lxmgr.cgroups.detect import Hierarchy, Layout
from lxmgr.cgroups.devices import apply_v1, attach_program, parse_rules
from lxmgr.cgroups.translate import Write, translate_v1
from lxmgr.errors import KernelError, NotSupported
from lxmgr.model.units import parse_cpuset

log = logging.getLogger(__name__)

# systemd inside the container expects a small tmpfs it can populate and later remount ro;
# it must be handed over rw.
TMPFS = ("", "tmpfs", "mode=755,size=4096k")


class V1Driver(CgroupDriver):
    """cgroup v1: every controller hierarchy, name=systemd and, on hybrid, the unified tree."""

    name = "v1"
    has_native_kill = False

    def _select_hierarchies(self, layout: Layout) -> list[Hierarchy]:
        if not any(h.controllers for h in layout.v1):
            raise NotSupported("The v1 cgroup driver needs mounted v1 controllers")
        unified = [layout.unified] if layout.unified is not None else []
        return [*layout.v1, *unified]

    def _before_mkdir(self, h: Hierarchy, parent: str) -> None:
        pass  # v1 controllers need nothing from the parent up front

    def _after_mkdir(self, h: Hierarchy, path: str) -> None:
        if "cpuset" in h.controllers:
            _inherit_cpuset(path)

    def _hierarchy(self, controller: str) -> Hierarchy | None:
        return next((h for h in self.hierarchies
                     if h.version == 1 and controller in h.controllers), None)

    def _controller_dir(self, controller: str, name: str) -> str | None:
        h = self._hierarchy(controller)
        return self.path(h, name) if h is not None else None

    def _file(self, name: str, controller: str, file: str) -> str | None:
        directory = self._controller_dir(controller, name)
        return os.path.join(directory, file) if directory is not None else None

    def build_writes(self, config: Mapping[str, str], cpus: Sequence[int],
                     memory: int) -> list[Write]:
        """translate_v1, told whether swap accounting (memory.memsw.*) exists here."""
        mem = self._hierarchy("memory")
        memsw = mem is not None and os.path.exists(
            os.path.join(mem.mountpoint, "memory.memsw.limit_in_bytes"))
        return translate_v1(config, cpus, memory, memsw=memsw)

    def available_cpus(self) -> list[int]:
        """The base's cpuset (or the root's before the base exists)."""
        h = self._hierarchy("cpuset")
        if h is None:
            return online_cpus()
        for directory in (self.path(h), h.mountpoint):
            text = read_file(os.path.join(directory, "cpuset.effective_cpus"))
            if text:
                return parse_cpuset(text)
        return online_cpus()

    def usage(self, name: str) -> Usage:
        """memory.usage_in_bytes, memsw, cpuacct.usage and pids.current (hierarchical)."""
        memory = self._read(name, "memory", "memory.usage_in_bytes")
        memsw = self._read(name, "memory", "memory.memsw.usage_in_bytes")
        processes = self._read(name, "pids", "pids.current")
        return Usage(
            memory_bytes=memory or 0,
            memory_peak_bytes=self._read(name, "memory", "memory.max_usage_in_bytes"),
            swap_bytes=max(0, memsw - (memory or 0)) if memsw is not None else None,
            cpu_ns=self._cpu_ns(name),
            processes=processes if processes is not None else len(self.pids(name)),
        )

    def _cpu_ns(self, name: str) -> int:
        """cpuacct.usage; without a cpuacct hierarchy, cpu.stat of the unified tree of a
        hybrid host (the kernel accounts CPU time there whatever the controllers)."""
        usage = self._read(name, "cpuacct", "cpuacct.usage")
        if usage is None and self.layout.unified is not None:
            usage = read_cpu_stat_ns(self.path(self.layout.unified, name))
        return usage or 0

    def _read(self, name: str, controller: str, file: str) -> int | None:
        path = self._file(name, controller, file)
        return read_int(path) if path is not None else None

    def _state_path(self, name: str) -> str:
        path = self._file(name, "freezer", "freezer.state")
        if path is None:
            raise NotSupported("The freezer controller is not mounted")
        return path

    def freeze(self, name: str, timeout: float = 10.0) -> None:
        """Write FROZEN until freezer.state reads FROZEN (not FREEZING)."""
        path = self._state_path(name)

        def settled() -> bool:
            write_file(path, "FROZEN")
            return read_file(path) == "FROZEN"

        wait_for(settled, timeout, f"cgroup '{self.base}/{name}' to freeze")

    def thaw(self, name: str, timeout: float = 10.0) -> None:
        """Write THAWED and wait until freezer.state reads THAWED."""
        path = self._state_path(name)
        write_file(path, "THAWED")
        wait_for(lambda: read_file(path) == "THAWED", timeout,
                 f"cgroup '{self.base}/{name}' to thaw")

    def is_frozen(self, name: str) -> bool:
        """freezer.state is FROZEN (FREEZING counts as not frozen yet)."""
        return read_file(self._state_path(name)) == "FROZEN"

    def kill(self, name: str, timeout: float = 10.0) -> None:
        """No cgroup.kill in v1: freeze, SIGKILL each pid, thaw, until empty."""
        self._kill_loop(name, timeout, can_freeze=self._hierarchy("freezer") is not None)

    def apply_devices(self, name: str, rules: Sequence[str]) -> None:
        """devices.deny/devices.allow in the devices hierarchy and, on a hybrid host, the
        same list as a BPF program on the unified tree: the kernel consults both
        (security/device_cgroup.c devcgroup_check_permission), so either alone already
        enforces it. Without a devices hierarchy the program is the only guard and must
        attach; with one, a kernel that refuses BPF is only logged."""
        parsed = parse_rules(rules)
        devices = self._controller_dir("devices", name)
        if devices is not None:
            apply_v1(devices, parsed)
        if self.layout.unified is None:
            if devices is None:
                log.warning("No devices controller and no cgroup2 tree: the device access "
                            "list of '%s' is not enforced", name)
            return
        try:
            attach_program(self.path(self.layout.unified, name), parsed)
        except KernelError as err:
            if devices is None:
                raise
            log.warning("%s (the devices controller enforces the list)", err)

    def container_mounts(self) -> list[tuple[str, str, str]]:
        """tmpfs, then unified, name=systemd and every controller hierarchy by its dir name."""
        mounts = [TMPFS]
        if self.layout.unified is not None:
            mounts.append((os.path.basename(self.layout.unified.mountpoint), "cgroup2", ""))
        for h in sorted(self.layout.v1, key=lambda h: not h.is_named):
            data = f"none,{h.name}" if h.is_named else ",".join(h.controllers)
            mounts.append((os.path.basename(h.mountpoint), "cgroup", data))
        return mounts


def _inherit_cpuset(path: str) -> None:
    """A new v1 cpuset starts with empty cpus/mems and refuses tasks (ENOSPC): copy the parent's."""
    parent = os.path.dirname(path)
    for file in ("cpuset.cpus", "cpuset.mems"):
        current = read_file(os.path.join(path, file))
        if current == "":
            value = read_file(os.path.join(parent, file)) or ""
            write_file(os.path.join(path, file), value)
