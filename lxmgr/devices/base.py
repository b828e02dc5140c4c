"""The device interface (as Incus's internal/server/device/device_interface.go): each device
type validates its config against the host, says what the runtime must do when the instance
starts (a RunConfig, like Incus's deviceConfig.RunConfig), and whether a change applies to a
running instance (hot-plug).

Imports model, runtime's plain data types, paths and errors; no orchestration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from lxmgr.model.idmap import IdMap
from lxmgr.model.rootfs import RootfsSpec
from lxmgr.net.nic import NicSpec
from lxmgr.net.proxy import ProxySpec
from lxmgr.runtime.disks import DiskMount


@dataclass(frozen=True)
class InstanceContext:
    """What a device may know of the instance it belongs to."""

    name: str
    privileged: bool
    # The container's id map, to own device nodes as its ids (None: privileged, or
    # not allocated yet when an instance is being created).
    idmap: IdMap | None = None
    # (pool, volume) -> the custom volume's host directory; NotFound naming the pool or the
    # volume (lxmgr.instances.volumes.Volumes.host_path). None: no volumes to mount.
    volume_path: Callable[[str, str], str] | None = None
    # The instance's (expanded) config: NICs read their volatile.<device>.hwaddr there.
    config: Mapping[str, str] = field(default_factory=dict)
    # A managed network -> its bridge (NotFound naming the network); None: not resolvable.
    bridge_of: Callable[[str], str] | None = None
    # The root volume as the storage driver mounts it (the root disk's start); None: not
    # known here (validation only).
    rootfs: Callable[[], RootfsSpec] | None = None
    # A pool name -> whether its driver applies a root disk's `size` (btrfs qgroups).
    pool_has_quotas: Callable[[str], bool] | None = None


@dataclass
class RunConfig:
    """What starting a device asks of the runtime (merged into the RuntimePlan)."""

    rootfs: RootfsSpec | None = None  # the root disk's volume (as Incus's RunConfig.RootFS)
    disks: list[DiskMount] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)  # veths plugged in after PID 1 exists
    proxies: list[ProxySpec] = field(default_factory=list)  # relayed or DNATed ports
    # device name -> device cgroup rules ("c 226:0 rwm") its nodes need
    cgroup_devices: dict[str, list[str]] = field(default_factory=dict)

    def merge(self, other: RunConfig) -> None:
        self.rootfs = other.rootfs or self.rootfs
        self.disks += other.disks
        self.nics += other.nics
        self.proxies += other.proxies
        self.cgroup_devices.update(other.cgroup_devices)


class Device:
    """One device of an instance: `config` is its validated (model.devices) dict."""

    type: ClassVar[str] = ""
    # Adding, removing or changing it applies to a running instance at once.
    hotplug: ClassVar[bool] = False
    # Who applies it when the instance starts, for devices not yet on start()'s RunConfig
    # (checked by the registry test: every type is applied somewhere).
    applied_by: ClassVar[str] = ""

    def __init__(self, name: str, config: dict[str, str], ctx: InstanceContext) -> None:
        self.name = name
        self.config = config
        self.ctx = ctx

    def validate(self) -> None:
        """Host-side checks (paths exist, ...); raise a 4xx LxmgrError naming the device."""

    def start(self) -> RunConfig:
        """What the runtime must set up for this device when the instance starts."""
        return RunConfig()

    def stop(self) -> None:
        """Host-side cleanup once the device has left the running instance (hot-unplug)."""
