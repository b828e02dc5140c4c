"""Instance devices, one module per type, registered by type (as storage drivers are, and
as Incus's internal/server/device/device_load.go): validate against the host, start() ->
RunConfig merged into the runtime plan, hot-plug flags."""

from __future__ import annotations

from collections.abc import Mapping

from lxmgr.devices.base import Device, InstanceContext, RunConfig
from lxmgr.devices.disk import Disk
from lxmgr.devices.gpu import Gpu
from lxmgr.devices.network import Nic, NoDevice, Proxy
from lxmgr.devices.unix import UnixBlock, UnixChar
from lxmgr.errors import NotSupported

DEVICES: dict[str, type[Device]] = {cls.type: cls for cls in (
    Disk, Nic, Proxy, NoDevice, UnixChar, UnixBlock, Gpu)}

__all__ = ["DEVICES", "Device", "InstanceContext", "RunConfig", "load", "start_all",
           "validate_all"]


def load(name: str, config: Mapping[str, str], ctx: InstanceContext) -> Device:
    """The device object for one validated device dict."""
    dtype = config.get("type", "")
    try:
        cls = DEVICES[dtype]
    except KeyError:
        raise NotSupported(f"Device '{name}': type '{dtype}' is not supported") from None
    return cls(name, dict(config), ctx)


def validate_all(devices: Mapping[str, Mapping[str, str]], ctx: InstanceContext) -> None:
    """Host-side checks of every device (create, update, start)."""
    for name, config in sorted(devices.items()):
        load(name, config, ctx).validate()


def start_all(devices: Mapping[str, Mapping[str, str]], ctx: InstanceContext) -> RunConfig:
    """What the runtime needs for every device when the instance starts."""
    run = RunConfig()
    for name, config in sorted(devices.items()):
        run.merge(load(name, config, ctx).start())
    return run
