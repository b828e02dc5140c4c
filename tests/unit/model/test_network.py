"""Network keys, names, subnet picking and overlap, DHCP ranges and static addresses."""

from __future__ import annotations

import ipaddress
import random

import pytest

from lxmgr.errors import Conflict, InvalidConfig
from lxmgr.model import network as n

NET = ipaddress.IPv4Network


def test_defaults_and_normalisation() -> None:
    config = n.validate_network_config({"ipv4.nat": False, "bridge.mtu": 1400, "user.x": "y"})
    assert config == {"bridge.mtu": "1400", "ipv4.nat": "false", "user.x": "y"}
    assert n.network_value(config, "dns.domain") == "lxmgr"
    assert n.network_value(config, "ipv4.dhcp.expiry") == "1h"
    assert n.network_value(config, "ipv4.address") == "auto"


@pytest.mark.parametrize(("key", "value"), [
    ("ipv4.address", "10.0.0.1"),  # no prefix
    ("ipv4.address", "10.0.0.0/24"),  # network address, not a host
    ("ipv4.address", "10.0.0.255/24"),
    ("ipv4.address", "10.0.0.1/31"),
    ("ipv4.address", "fd00::1/64"),
    ("ipv4.address", "banana"),
    ("ipv4.nat", "maybe"),
    ("ipv4.dhcp", "2"),
    ("ipv4.dhcp.ranges", "10.0.0.9-10.0.0.2"),
    ("ipv4.dhcp.ranges", "10.0.0.2-x"),
    ("ipv4.dhcp.expiry", "1y"),
    ("ipv4.dhcp.expiry", "30"),
    ("ipv6.address", "10.0.0.1/24"),
    ("ipv6.address", "fd00::/64"),
    ("dns.domain", "bad domain"),
    ("dns.domain", "a\nserver=8.8.8.8"),
    ("bridge.mtu", "1279"),
    ("bridge.mtu", "9001"),
])
def test_invalid_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(InvalidConfig, match=f"'{key}'"):
        n.validate_network_config({key: value})


def test_unknown_key_is_named() -> None:
    with pytest.raises(InvalidConfig, match="'ipv4.routing'"):
        n.validate_network_config({"ipv4.routing": "true"})
    with pytest.raises(InvalidConfig, match="'user.'"):
        n.validate_network_config({"user.": "x"})


def test_unknown_key_suggests_a_close_one() -> None:
    with pytest.raises(InvalidConfig, match=r"^Unknown network config key 'ipv4.adress': "
                                            r"did you mean 'ipv4.address'\?$"):
        n.validate_network_config({"ipv4.adress": "10.0.0.1/24"})
    with pytest.raises(InvalidConfig, match=r"^Unknown network config key 'colour'$"):
        n.validate_network_config({"colour": "x"})


def test_ranges_must_be_inside_the_subnet() -> None:
    ok = {"ipv4.address": "10.1.2.1/24", "ipv4.dhcp.ranges": "10.1.2.10-10.1.2.20,10.1.2.30"}
    assert n.validate_network_config(ok)["ipv4.dhcp.ranges"] == ok["ipv4.dhcp.ranges"]
    bad = {"ipv4.address": "10.1.2.1/24", "ipv4.dhcp.ranges": "10.1.3.10-10.1.3.20"}
    with pytest.raises(InvalidConfig, match="'ipv4.dhcp.ranges'.*outside subnet '10.1.2.0/24'"):
        n.validate_network_config(bad)


@pytest.mark.parametrize("name", ["lxmgrbr0", "a", "br_0.x-y", "0abc", "a" * 15])
def test_valid_names(name: str) -> None:
    assert n.validate_network_name(name) == name


@pytest.mark.parametrize("name", ["", "-br", "a" * 16, "br/0", "br 0", "br:0", ".", ".."])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid network name"):
        n.validate_network_name(name)


def test_pick_free_subnet_avoids_everything_taken() -> None:
    taken: list[n.Taken] = [NET("10.0.0.0/9"), ("network 'x'", NET("10.128.0.0/10")),
                            NET("0.0.0.0/0")]  # a default route overlaps nothing
    rng = random.Random(1)
    for _ in range(200):
        subnet = n.pick_free_subnet(taken, rng)
        assert subnet.prefixlen == 24 and subnet.subnet_of(NET("10.192.0.0/10"))


def test_pick_free_subnet_gives_up() -> None:
    with pytest.raises(Conflict, match="ipv4.address"):
        n.pick_free_subnet([NET("10.0.0.0/8")], random.Random(0), attempts=20)


def test_resolve_auto() -> None:
    out = n.resolve_auto({"ipv4.address": "auto"}, [], random.Random(3))
    iface = ipaddress.IPv4Interface(out["ipv4.address"])
    assert iface.ip == iface.network.network_address + 1 and iface.network.prefixlen == 24
    assert out["ipv4.nat"] == "true"
    assert n.resolve_auto({"ipv4.address": "none"}, [NET("10.0.0.0/8")]) == {
        "ipv4.address": "none"}


def test_explicit_subnet_overlap_names_the_other() -> None:
    taken: list[n.Taken] = [("network 'lxmgrbr0' (10.5.0.0/16)", NET("10.5.0.0/16"))]
    with pytest.raises(Conflict, match="overlaps network 'lxmgrbr0'"):
        n.resolve_auto({"ipv4.address": "10.5.3.1/24"}, taken)
    with pytest.raises(Conflict, match="overlaps route 192.168.1.0/24"):
        n.check_overlap(NET("192.168.0.0/16"), [NET("192.168.1.0/24")])
    n.check_overlap(NET("10.6.0.0/24"), taken)


def test_default_dhcp_ranges_skip_the_gateway() -> None:
    a = ipaddress.IPv4Address
    assert n.default_dhcp_ranges(ipaddress.IPv4Interface("10.0.0.1/24")) == [
        (a("10.0.0.2"), a("10.0.0.254"))]
    assert n.default_dhcp_ranges(ipaddress.IPv4Interface("10.0.0.100/24")) == [
        (a("10.0.0.1"), a("10.0.0.99")), (a("10.0.0.101"), a("10.0.0.254"))]
    assert n.default_dhcp_ranges(ipaddress.IPv4Interface("10.0.0.254/24")) == [
        (a("10.0.0.1"), a("10.0.0.253"))]


def test_bridge_settings() -> None:
    s = n.bridge_settings({"ipv4.address": "10.9.8.1/24", "ipv4.nat": "false",
                           "ipv6.address": "fd42::1/64", "bridge.mtu": "1400"})
    assert s.gateway == ipaddress.IPv4Address("10.9.8.1")
    assert s.subnet == NET("10.9.8.0/24")
    assert not s.ipv4_nat and s.ipv4_dhcp and s.mtu == 1400 and s.domain == "lxmgr"
    assert s.ipv6 == ipaddress.IPv6Interface("fd42::1/64")
    assert n.bridge_settings({"ipv4.address": "none"}).subnet is None


def test_static_address() -> None:
    gw = ipaddress.IPv4Interface("10.0.0.1/24")
    used = {ipaddress.IPv4Address("10.0.0.7"): "instance web1"}
    assert n.validate_static_address(gw, "10.0.0.8", used) == ipaddress.IPv4Address("10.0.0.8")
    with pytest.raises(Conflict, match="already used by instance web1"):
        n.validate_static_address(gw, "10.0.0.7", used)
    for bad, why in [("10.0.1.5", "outside subnet"), ("10.0.0.1", "gateway"),
                     ("10.0.0.0", "network or broadcast"), ("10.0.0.255", "broadcast"),
                     ("nope", "Invalid IPv4")]:
        with pytest.raises(InvalidConfig, match=why):
            n.validate_static_address(gw, bad, used)


def test_expiry_seconds() -> None:
    assert n.expiry_seconds("1h") == 3600
    assert n.expiry_seconds("300") == 300
    assert n.expiry_seconds("infinite") == 0
