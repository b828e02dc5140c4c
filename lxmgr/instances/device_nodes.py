"""Hot-plug of unix-char, unix-block and gpu devices when a running instance's devices
change (Manager.update): removed or changed ones are unplugged, added or changed ones
plugged, each through the supervisor (DEVICE_DETACH, DEVICE_ATTACH), each step undone by
the caller's revert stack if a later one fails. A stopped instance gets them at its next
start (nothing is probed then: a gpu device may name a card the host lacks until then)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from lxmgr import devices as devices_mod
from lxmgr.devices.unix import NodeDevice
from lxmgr.errors import Conflict
from lxmgr.supervisor import control, protocol

NODE_TYPES = ("unix-char", "unix-block", "gpu")
Devices = Mapping[str, Mapping[str, str]]


def replug(socket: str, old: Devices, new: Devices, ctx: devices_mod.InstanceContext,
           revert: contextlib.ExitStack) -> None:
    """Apply the difference between old and new node devices to the running instance."""
    before = {n: dict(d) for n, d in old.items() if d.get("type") in NODE_TYPES}
    after = {n: dict(d) for n, d in new.items() if d.get("type") in NODE_TYPES}
    gone = [n for n in sorted(before) if after.get(n) != before[n]]
    added = [n for n in sorted(after) if before.get(n) != after[n]]
    if not gone and not added:
        return
    try:
        control.call(socket, protocol.GET_STATE, wait=5)
    except control.NotRunning:
        return
    try:
        for name in gone:
            device = _load(name, before[name], ctx)
            _unplug(socket, device)
            revert.callback(_plug, socket, device)
        for name in added:
            device = _load(name, after[name], ctx)
            _plug(socket, device)
            revert.callback(_unplug, socket, device)
    except control.NotRunning:
        return  # stopped meanwhile: the next start plugs what the config says


def _load(name: str, config: Mapping[str, str], ctx: devices_mod.InstanceContext) \
        -> NodeDevice:
    device = devices_mod.load(name, config, ctx)
    assert isinstance(device, NodeDevice)
    return device


def _plug(socket: str, device: NodeDevice) -> None:
    """Make the nodes on the host, then have the supervisor allow and mount them."""
    run = device.start()
    try:
        _call(socket, protocol.DEVICE_ATTACH, device=device.name,
              disks=[d.to_dict() for d in run.disks],
              rules=run.cgroup_devices.get(device.name, []))
    except BaseException:
        device.stop()
        raise


def _unplug(socket: str, device: NodeDevice) -> None:
    _call(socket, protocol.DEVICE_DETACH, device=device.name)
    device.stop()


def _call(socket: str, cmd: str, **args: object) -> None:
    try:
        control.call(socket, cmd, wait=60, **args)
    except control.OlderSupervisor:
        raise Conflict("The instance runs under the supervisor of an older lxmgr that "
                       "can't hot-plug device nodes: restart the instance first") from None
