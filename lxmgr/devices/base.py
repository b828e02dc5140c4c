"""The device interface (as Incus's internal/server/device/device_interface.go): each device
type validates its config against the host, says what the runtime must do when the instance
starts (a RunConfig, like Incus's deviceConfig.RunConfig), and whether a change applies to a
running instance (hot-plug).

Imports model, runtime's plain data types, paths and errors; no orchestration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from lxmgr.runtime.disks import DiskMount


@dataclass(frozen=True)
class InstanceContext:
    """What a device may know of the instance it belongs to."""

    name: str
    privileged: bool
    # (pool, volume) -> the custom volume's host directory; NotFound naming the pool or the
    # volume (lxmgr.instances.volumes.Volumes.host_path). None: no volumes to mount.
    volume_path: Callable[[str, str], str] | None = None


@dataclass
class RunConfig:
    """What starting a device asks of the runtime (merged into the RuntimePlan)."""

    disks: list[DiskMount] = field(default_factory=list)

    def merge(self, other: RunConfig) -> None:
        self.disks += other.disks


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
