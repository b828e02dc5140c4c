"""unix-char and unix-block devices: a host device node made to appear in the container
(LXD's doc/reference/devices_unix_char.md, lxd/device/unix_common.go).

Starting one makes a node with the device's numbers in the instance's devices directory,
owned by `uid`:`gid` as the container sees them (0:0 by default) with `mode` (0660), and
bind-mounts it at `path`; its numbers join the container's device access list. The numbers
come from `major`/`minor`, else from the host node at `source`. Shared by gpu devices.

Differences from LXD: with required=false a node missing at start is skipped, but lxmgr does
not watch the host for it to appear later (LXD's fsmonitor): it is added at the next start
or device change.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lxmgr import paths
from lxmgr.devices.base import Device, RunConfig
from lxmgr.errors import InvalidConfig
from lxmgr.model.units import parse_bool
from lxmgr.runtime.disks import DiskMount
from lxmgr.runtime.nodes import DeviceNode, create_node, encode_path, remove_nodes

DEFAULT_MODE = 0o660  # LXD's unixDefaultMode


class NodeDevice(Device):
    """What unix-char, unix-block and gpu share: owner and mode keys, the node directory."""

    hotplug = True

    def nodes_dir(self) -> Path:
        """Where this device's nodes live on the host (removed with the device)."""
        return paths.instance_dir(self.ctx.name) / "devices" / self.name

    def host_ids(self) -> tuple[int, int]:
        """`uid` and `gid` as the host sees them (through the container's id map)."""
        uid, gid = int(self.config.get("uid") or 0), int(self.config.get("gid") or 0)
        idmap = self.ctx.idmap
        if idmap is None:
            return uid, gid
        try:
            return idmap.host_uid(uid), idmap.host_gid(gid)
        except InvalidConfig as err:
            raise InvalidConfig(f"Invalid device '{self.name}': {err}") from None

    def mode(self, default: int) -> int:
        value = self.config.get("mode")
        return int(value, 8) if value else default

    def validate(self) -> None:
        if self.ctx.idmap is not None:
            self.host_ids()

    def run_config(self, nodes: list[tuple[str, DeviceNode]]) -> RunConfig:
        """Make each (path inside, node) on the host and say how to mount and allow it."""
        directory = self.nodes_dir()
        remove_nodes(str(directory))  # what an earlier start left
        mounts, rules = [], []
        for inside, node in nodes:
            host = create_node(str(directory), encode_path(inside), node)
            mounts.append(DiskMount(device=self.name, source=host, path=inside, is_node=True))
            rules.append(node.rule)
        return RunConfig(disks=mounts, cgroup_devices={self.name: rules} if rules else {})

    def stop(self) -> None:
        remove_nodes(str(self.nodes_dir()))


class UnixChar(NodeDevice):
    type = "unix-char"
    kind = "c"

    def source(self) -> str:
        """The node on the host: `source`, else `path` (LXD's unixDeviceSourcePath)."""
        return self.config.get("source") or self.config.get("path", "")

    def target(self) -> str:
        """Where it appears inside: `path`, else `source` (LXD's unixDeviceDestPath)."""
        return self.config.get("path") or self.config.get("source", "")

    def numbers(self) -> tuple[int, int] | None:
        """(major, minor) of the node; None when an optional source is missing."""
        source = self.source()
        given = (self.config.get("major"), self.config.get("minor"))
        try:
            st = os.stat(source)
        except FileNotFoundError:
            st = None
        if st is not None:
            is_ours = stat.S_ISCHR(st.st_mode) if self.kind == "c" else stat.S_ISBLK(st.st_mode)
            if not is_ours:
                what = "character" if self.kind == "c" else "block"
                raise InvalidConfig(f"Invalid device '{self.name}': {source} is not a {what} "
                                    "device")
            if not given[0]:
                return os.major(st.st_rdev), os.minor(st.st_rdev)
        if given[0] and given[1]:
            return int(given[0]), int(given[1])
        if parse_bool(self.config.get("required") or "true"):
            raise InvalidConfig(f"Missing source path '{source}' for device '{self.name}' "
                                "(give 'major' and 'minor' to create the node without it)")
        return None

    def validate(self) -> None:
        super().validate()
        self.numbers()

    def start(self) -> RunConfig:
        numbers = self.numbers()
        if numbers is None:
            return RunConfig()
        uid, gid = self.host_ids()
        node = DeviceNode(self.kind, numbers[0], numbers[1], self.mode(DEFAULT_MODE), uid, gid)
        return self.run_config([(self.target(), node)])


class UnixBlock(UnixChar):
    type = "unix-block"
    kind = "b"
