"""The device layer on a real manager: every device type goes through validate() when it is
added and start() when the instance starts; what the model accepts but lxmgr cannot set up
is refused when added, not at the next start."""

from __future__ import annotations

import pytest

from lxmgr import devices as devices_mod
from lxmgr.errors import NotSupported

pytestmark = pytest.mark.kernel


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nic_and_proxy_come_from_the_device_layer(manager) -> None:  # type: ignore[no-untyped-def]
    manager.networks.create("lxdl0", {"ipv4.address": "auto", "ipv4.nat": "false",
                                      "ipv6.address": "none"})
    try:
        manager.create("dl1", "debian", devices={
            "eth0": {"type": "nic", "network": "lxdl0", "name": "eth0"},
            "web": {"type": "proxy", "listen": f"tcp:127.0.0.1:{_free_port()}",
                    "connect": "tcp:127.0.0.1:80"},
        })
        spec = manager.get("dl1")
        expanded, devices = manager.expanded(spec)
        run = devices_mod.start_all(devices, manager.device_context("dl1", expanded))
        assert [(n.device, n.parent, n.hwaddr) for n in run.nics] == [
            ("eth0", "lxdl0", spec.config["volatile.eth0.hwaddr"])]
        assert [(p.device, p.connect_port) for p in run.proxies] == [("web", 80)]
        for bad, message in (
                ({"type": "nic", "nictype": "macvlan", "parent": "lo"}, "nictype 'macvlan'"),
                ({"type": "proxy", "listen": "unix:/run/a.sock", "connect": "unix:/b.sock"},
                 "only tcp and udp")):
            with pytest.raises(NotSupported, match=message):
                manager.update("dl1", devices={**spec.devices, "bad": bad})
            assert "bad" not in manager.get("dl1").devices
    finally:
        for name in manager.list():
            manager.delete(name, force=True)
        manager.networks.delete("lxdl0", [])


def test_root_disk_size_needs_a_pool_with_quotas(manager) -> None:  # type: ignore[no-untyped-def]
    """Before: a root `size` on the overlay pool was logged and ignored."""
    with pytest.raises(NotSupported, match="'size' needs a storage pool with quotas"):
        manager.create("rs1", "debian", devices={
            "root": {"type": "disk", "path": "/", "pool": "default", "size": "1GiB"}})
    assert manager.list() == []
