"""Driver registry and the bridge driver's config planning (no kernel calls)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lxmgr.errors import Conflict, InvalidConfig, UnknownDriver
from lxmgr.net.base import DRIVERS, load
from lxmgr.net.bridge import BridgeNetwork

HOST = [("route 10.0.0.0/9 on 'eth0'", ipaddress.IPv4Network("10.0.0.0/9"))]


def test_registry() -> None:
    assert load("bridge") is BridgeNetwork and DRIVERS["bridge"] is BridgeNetwork
    with pytest.raises(UnknownDriver, match="'macvlan'"):
        load("macvlan")


def test_plan_config_resolves_auto() -> None:
    others = {"other": {"ipv4.address": "10.200.0.1/16"}}
    config = BridgeNetwork.plan_config("br1", {}, others=others, host=HOST)
    subnet = ipaddress.IPv4Interface(config["ipv4.address"]).network
    assert not subnet.overlaps(HOST[0][1])
    assert not subnet.overlaps(ipaddress.IPv4Network("10.200.0.0/16"))
    assert config["ipv4.nat"] == "true"


def test_plan_config_conflicts_name_the_other() -> None:
    others = {"other": {"ipv4.address": "10.200.0.1/16"}}
    with pytest.raises(Conflict, match="network 'other'"):
        BridgeNetwork.plan_config("br1", {"ipv4.address": "10.200.5.1/24"}, others, HOST)
    with pytest.raises(Conflict, match="route 10.0.0.0/9 on 'eth0'"):
        BridgeNetwork.plan_config("br1", {"ipv4.address": "10.1.0.1/24"}, others, HOST)
    # Editing a network does not collide with itself.
    same = BridgeNetwork.plan_config("other", {"ipv4.address": "10.200.0.1/16"}, others, HOST)
    assert same["ipv4.address"] == "10.200.0.1/16"


def test_plan_config_rejects_bad_input() -> None:
    with pytest.raises(InvalidConfig, match="Invalid network name"):
        BridgeNetwork.plan_config("-x", {}, host=HOST)
    with pytest.raises(InvalidConfig, match="'ipv4.dhcp.ranges'"):
        BridgeNetwork.plan_config("br1", {"ipv4.dhcp.ranges": "192.168.0.2-192.168.0.9"},
                                  host=HOST)
    with pytest.raises(InvalidConfig, match="plan_config"):
        BridgeNetwork("br1", {})


def test_reservations_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    net = BridgeNetwork("br1", {"ipv4.address": "10.9.0.1/24"})
    net.reserve("00:16:3E:00:00:01", "10.9.0.10", "web1")  # no dnsmasq running: files only
    assert net.api_leases() == [{"hostname": "web1", "hwaddr": "00:16:3e:00:00:01",
                                 "address": "10.9.0.10", "type": "static", "location": ""}]
    with pytest.raises(Conflict, match="MAC 00:16:3e:00:00:01"):
        net.reserve("00:16:3e:00:00:02", "10.9.0.10")
    with pytest.raises(Conflict, match="'web1'"):
        net.reserve("00:16:3e:00:00:02", "10.9.0.11", "web1")
    with pytest.raises(InvalidConfig, match="gateway"):
        net.reserve("00:16:3e:00:00:02", "10.9.0.1")
    net.reserve("00:16:3e:00:00:01", "10.9.0.12", "web1")  # moving its own address is fine
    net.release("00:16:3e:00:00:01")
    net.release("00:16:3e:00:00:01")
    assert net.api_leases() == []
    assert (tmp_path / "networks" / "br1" / "hosts").read_text() == ""
