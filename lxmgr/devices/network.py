"""nic and proxy devices. A nic becomes a NicSpec (lxmgr.net.nic.build_nic: its bridge, MAC,
host-side name, MTU, limits) that the manager plugs in once PID 1 exists and the supervisor
after a reboot; a proxy becomes a ProxySpec (lxmgr.net.proxy.build_proxy) served by the
supervisor's relay or, with nat=true, an nft DNAT rule. Both are hot-pluggable (the managed
networks and the proxy relay: lxmgr.instances.networks, lxmgr.instances.proxies). What the
model accepts but these cannot set up (a macvlan nictype, a unix or bind=instance proxy) is
refused when the device is added, not at the next start."""

from __future__ import annotations

from lxmgr.devices.base import Device, RunConfig
from lxmgr.net.nic import NicSpec, build_nic
from lxmgr.net.proxy import ProxySpec, build_proxy


class Nic(Device):
    type = "nic"
    hotplug = True
    applied_by = "lxmgr.net.nic, lxmgr.instances.networks"

    def spec(self) -> NicSpec:
        if self.ctx.bridge_of is None:
            raise RuntimeError("a nic device needs the managed networks (InstanceContext)")
        return build_nic(self.name, self.config, self.ctx.name, self.ctx.config,
                         self.ctx.bridge_of)

    def validate(self) -> None:
        if self.ctx.bridge_of is not None:
            self.spec()

    def start(self) -> RunConfig:
        return RunConfig(nics=[self.spec()])


class Proxy(Device):
    type = "proxy"
    hotplug = True
    applied_by = "lxmgr.net.proxy, lxmgr.instances.proxies"

    def spec(self) -> ProxySpec:
        return build_proxy(self.name, self.config)

    def validate(self) -> None:
        self.spec()

    def start(self) -> RunConfig:
        return RunConfig(proxies=[self.spec()])


class NoDevice(Device):
    """type 'none': masks a profile's device of the same name; nothing to apply."""

    type = "none"
    hotplug = True
    applied_by = "lxmgr.model.config"  # expand(): a later device replaces the earlier one
