"""nic and proxy devices: validated by the model, set up by the managed networks and the
proxy relay (lxmgr.instances.networks, lxmgr.instances.proxies), both hot-pluggable."""

from __future__ import annotations

from lxmgr.devices.base import Device


class Nic(Device):
    type = "nic"
    hotplug = True
    applied_by = "lxmgr.net.nic, lxmgr.instances.networks"


class Proxy(Device):
    type = "proxy"
    hotplug = True
    applied_by = "lxmgr.net.proxy, lxmgr.instances.proxies"


class NoDevice(Device):
    """type 'none': masks a profile's device of the same name; nothing to apply."""

    type = "none"
    hotplug = True
    applied_by = "lxmgr.model.config"  # expand(): a later device replaces the earlier one
