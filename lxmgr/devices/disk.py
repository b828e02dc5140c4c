"""disk devices: the root disk (its pool's volume, mounted by the storage driver) and host
directories or files mounted at a path inside (LXD's doc/reference/devices_disk.md).

Host-side rules, each a 400 naming the device: the source must exist unless
required=false, and must neither be nor contain lxmgr's own state directory (the instances'
storage, keys and database).
"""

from __future__ import annotations

import os

from lxmgr import paths
from lxmgr.devices.base import Device, RunConfig
from lxmgr.errors import InvalidConfig
from lxmgr.model.units import parse_bool
from lxmgr.runtime.disks import DiskMount


class Disk(Device):
    type = "disk"
    hotplug = True

    @property
    def is_root(self) -> bool:
        return self.config.get("path") == "/"

    def _flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key)
        return parse_bool(value) if value else default

    def validate(self) -> None:
        if self.is_root:
            return  # the storage pool's volume; the pool is checked by Pools.resolve
        source = self.config["source"]
        if not os.path.exists(source):
            if not self._flag("required", True):
                return
            raise InvalidConfig(f"Missing source path '{source}' for disk '{self.name}'")
        real = os.path.realpath(source)
        state = os.path.realpath(paths.root())
        if real == state or real.startswith(state.rstrip("/") + "/") or \
                state.startswith(real.rstrip("/") + "/"):
            raise InvalidConfig(f"Invalid device '{self.name}': source '{source}' would expose "
                                f"lxmgr's state directory {state}")

    def mount(self) -> DiskMount:
        """The runtime's view of this disk (not for the root disk)."""
        return DiskMount(
            device=self.name, source=self.config["source"], path=self.config["path"],
            readonly=self._flag("readonly", False), recursive=self._flag("recursive", False),
            propagation=self.config.get("propagation") or "private",
            shift=self._flag("shift", False) and not self.ctx.privileged,
            required=self._flag("required", True))

    def start(self) -> RunConfig:
        if self.is_root:
            return RunConfig()
        self.validate()
        return RunConfig(disks=[self.mount()])
