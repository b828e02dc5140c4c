"""Renaming a managed bridge network on the real kernel (LXD's POST /1.0/networks/NAME),
inside a private network namespace (tests/kernel/netns_helpers.py): the link, nft table,
dnsmasq and state dir move to the new name with the network's forwards; a network in use,
a taken name and a foreign link of that name are refused. ipv4.nat=false, dnsmasq without
upstream servers: no traffic leaves this machine."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.kernel.netns_helpers import NFT, netns_fixture  # noqa: F401

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]


def _tables() -> str:
    return subprocess.run([NFT, "list", "tables"], capture_output=True, text=True,
                          check=True).stdout


def test_rename_moves_link_dnsmasq_state_and_forwards(netns) -> None:  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:6]
    old, new, other = f"lxr{suffix}a", f"lxr{suffix}b", f"lxr{suffix}c"
    octet = int.from_bytes(os.urandom(1), "big")
    gateway = f"10.251.{octet}.1"

    def body() -> dict[str, object]:
        from lxmgr.errors import LxmgrError
        from lxmgr.instances import network_forwards
        from lxmgr.instances.db import Database
        from lxmgr.instances.networks import Networks
        from lxmgr.net import dnsmasq, links

        nets = Networks(Database())
        facts: dict[str, object] = {}
        nets.create(old, {"ipv4.address": f"{gateway}/24", "ipv4.nat": "false",
                          "dns.upstream": "none"})
        forwards = network_forwards.NetworkForwards(nets.db)
        forwards.create(old, {"listen_address": gateway, "ports": [
            {"protocol": "tcp", "listen_port": "8080", "target_address": f"10.251.{octet}.9",
             "target_port": "80"}]})
        old_pid = nets._driver(old).dnsmasq.pid()
        for args in ((old, new, ["/1.0/instances/c1"]), (old, old, []),
                     (old, "bad name!", [])):
            try:
                nets.rename(*args)
            except LxmgrError as err:
                facts.setdefault("refused", []).append((err.status, str(err)))  # type: ignore[union-attr]
        links.Bridge(other).add()  # ours but not a network: its state is on the host
        subprocess.run(["ip", "link", "add", f"{other}x", "type", "veth", "peer", "name",
                        f"{other}y"], check=True)  # a foreign link
        for target in (other, f"{other}x"):
            try:
                nets.rename(old, target, [])
            except LxmgrError as err:
                facts.setdefault("refused", []).append((err.status, str(err)))  # type: ignore[union-attr]
        nets.rename(old, new, [])
        facts["names"] = nets.names()
        facts["links"] = (links.link_exists(old), links.link_exists(new))
        facts["state_dirs"] = (dnsmasq.state_dir(old).exists(), dnsmasq.state_dir(new).exists())
        driver = nets._driver(new)
        facts["dnsmasq"] = (driver.dnsmasq.alive(), driver.dnsmasq.pid() != old_pid,
                            old_pid is not None and os.path.exists(f"/proc/{old_pid}"))
        facts["tables"] = _tables()
        facts["forwards"] = forwards.names(new)
        facts["table"] = subprocess.run([NFT, "list", "table", "inet", f"lxmgr_{new}"],
                                        capture_output=True, text=True, check=True).stdout
        facts["addresses"] = driver.bridge.addresses()
        nets.delete(new, [])
        facts["after_delete"] = (links.link_exists(new), dnsmasq.state_dir(new).exists(),
                                 nets.names())
        return facts

    facts = netns(body)
    assert [status for status, _ in facts["refused"]] == [400, 409, 400, 409, 409], \
        facts["refused"]
    assert "in use by /1.0/instances/c1" in facts["refused"][0][1]
    assert facts["names"] == [new]
    assert facts["links"] == (False, True)
    assert facts["state_dirs"] == (False, True)
    assert facts["dnsmasq"] == (True, True, False)
    assert f"lxmgr_{old}" not in facts["tables"] and f"lxmgr_{new}" in facts["tables"]
    assert facts["forwards"] == [gateway]
    assert "dport 8080" in facts["table"], facts["table"]
    assert any(a.startswith(gateway) for a in facts["addresses"]), facts["addresses"]
    assert facts["after_delete"] == (False, False, [])


def test_a_failed_start_puts_the_old_network_back(netns) -> None:  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:6]
    old, new = f"lxr{suffix}a", f"lxr{suffix}b"

    def body() -> dict[str, object]:
        from lxmgr.errors import KernelError, LxmgrError
        from lxmgr.instances.db import Database
        from lxmgr.instances.networks import Networks
        from lxmgr.net import dnsmasq, links
        from lxmgr.net.bridge import BridgeNetwork

        nets = Networks(Database())
        nets.create(old, {"ipv4.address": "auto", "ipv4.nat": "false", "dns.upstream": "none"})
        real = BridgeNetwork._start_dnsmasq

        def broken(self: BridgeNetwork) -> None:
            if self.name == new:
                raise KernelError("dnsmasq failed to start (test)")
            real(self)
        BridgeNetwork._start_dnsmasq = broken  # type: ignore[method-assign]
        facts: dict[str, object] = {}
        try:
            nets.rename(old, new, [])
        except LxmgrError as err:
            facts["error"] = str(err)
        BridgeNetwork._start_dnsmasq = real  # type: ignore[method-assign]
        facts["names"] = nets.names()
        facts["links"] = (links.link_exists(old), links.link_exists(new))
        facts["state_dirs"] = (dnsmasq.state_dir(old).exists(), dnsmasq.state_dir(new).exists())
        facts["dnsmasq"] = nets._driver(old).dnsmasq.alive()
        facts["tables"] = _tables()
        nets.delete(old, [])
        return facts

    facts = netns(body)
    assert facts["error"] == "dnsmasq failed to start (test)"
    assert facts["names"] == [old]
    assert facts["links"] == (True, False)
    assert facts["state_dirs"] == (True, False)
    assert facts["dnsmasq"] is True
    assert f"lxmgr_{new}" not in facts["tables"] and f"lxmgr_{old}" in facts["tables"]
