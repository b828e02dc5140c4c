"""disk devices: the root disk (its pool's volume: start() gives the storage driver's
RootfsSpec the runtime mounts as the container's root, and `size` needs a pool with
quotas), host
directories or files, and custom storage volumes (`pool` + `source=VOLUME`) mounted at a
path inside (LXD's doc/reference/devices_disk.md).

Host-side rules, each a 400 naming the device: a host source must exist unless
required=false, and must neither be nor contain lxmgr's own state directory (the instances'
storage, keys and database); a volume's pool and the volume must exist. A volume is always
mounted idmapped in an unprivileged container (LXD shifts custom volumes for unprivileged
instances too), so the host root owning a fresh volume shows as the container's root and
containers with different maps share its files.
"""

from __future__ import annotations

import os

from lxmgr import paths
from lxmgr.devices.base import Device, RunConfig
from lxmgr.errors import InvalidConfig, NotFound, NotSupported
from lxmgr.model.units import parse_bool
from lxmgr.runtime.disks import DiskMount


class Disk(Device):
    type = "disk"
    hotplug = True
    applied_by = "lxmgr.instances.manager"  # the root disk's size (Manager._apply_root_size)

    def _validate_root(self) -> None:
        """`size` is a quota only some drivers apply: refused elsewhere, not ignored."""
        pool = self.config.get("pool", "")
        if self.config.get("size") and self.ctx.pool_has_quotas is not None and pool \
                and not self.ctx.pool_has_quotas(pool):
            raise NotSupported(f"Invalid device '{self.name}': 'size' needs a storage pool "
                               f"with quotas (btrfs); pool '{pool}' has none")

    @property
    def is_root(self) -> bool:
        return self.config.get("path") == "/"

    @property
    def is_volume(self) -> bool:
        return not self.is_root and bool(self.config.get("pool"))

    def _flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key)
        return parse_bool(value) if value else default

    def _volume_path(self) -> str:
        """The custom volume's host directory; a 400 naming the missing pool or volume."""
        if self.ctx.volume_path is None:
            raise NotSupported(f"Invalid device '{self.name}': storage volumes can't be "
                               "mounted here")
        try:
            return self.ctx.volume_path(self.config["pool"], self.config["source"])
        except NotFound as err:
            reason = str(err)
            raise InvalidConfig(f"Invalid device '{self.name}': {reason[:1].lower()}"
                                f"{reason[1:]}") from None

    def validate(self) -> None:
        if self.is_root:
            self._validate_root()  # the pool itself is checked by Pools.resolve
            return
        if self.is_volume:
            self._volume_path()
            return  # inside the state directory by design: only the volume is exposed
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
        volume = self.is_volume
        return DiskMount(
            device=self.name, source=self._volume_path() if volume else self.config["source"],
            path=self.config["path"], readonly=self._flag("readonly", False),
            recursive=self._flag("recursive", False),
            propagation=self.config.get("propagation") or "private",
            shift=(volume or self._flag("shift", False)) and not self.ctx.privileged,
            required=self._flag("required", True))

    def start(self) -> RunConfig:
        if self.is_root:
            return RunConfig(rootfs=self.ctx.rootfs() if self.ctx.rootfs else None)
        self.validate()
        return RunConfig(disks=[self.mount()])
