"""Network forward validation (LXD's rules, IPv4 only) and its expansion into DNAT rules."""

from __future__ import annotations

import ipaddress

import pytest

from lxmgr.errors import Conflict, InvalidConfig
from lxmgr.model import network_forward as fwd
from lxmgr.net import nft

SUBNET = ipaddress.IPv4Network("10.11.12.0/24")
GATEWAY = ipaddress.IPv4Address("10.11.12.1")
SUBNETS = {"br0": SUBNET, "other": ipaddress.IPv4Network("10.99.0.0/24"), "plain": None}


def listen(text: str) -> str:
    return fwd.listen_address(text, SUBNETS, "br0", GATEWAY)


def test_ports_and_ranges() -> None:
    assert fwd.parse_ports("80", "listen_port") == [80]
    assert fwd.parse_ports("80,8000-8002", "listen_port") == [80, 8000, 8001, 8002]
    for bad in ("", "x", "0", "65536", "90-80", "80-", "1-2-3"):
        with pytest.raises(InvalidConfig, match="Invalid listen_port"):
            fwd.parse_ports(bad, "listen_port")


def test_listen_address_is_a_host_unicast_ipv4_address() -> None:
    assert listen("192.0.2.10") == "192.0.2.10"
    assert listen("10.11.12.1") == "10.11.12.1"  # the bridge's own address
    for bad, message in (("nope", "Invalid listen_address 'nope'"),
                         ("127.0.0.2", "not a unicast host address"),
                         ("0.0.0.0", "not a unicast host address"),
                         ("224.0.0.1", "not a unicast host address"),
                         ("169.254.1.1", "not a unicast host address"),
                         ("2001:db8::1", "IPv4 only"),
                         ("10.11.12.5", "only its own address 10.11.12.1")):
        with pytest.raises(InvalidConfig, match=message):
            listen(bad)
    with pytest.raises(Conflict, match="overlaps network 'other'"):
        listen("10.99.0.7")


def test_a_full_forward_validates_and_expands() -> None:
    body = {"description": "web", "config": {"target_address": "10.11.12.50", "user.x": "y"},
            "ports": [{"protocol": "tcp", "listen_port": "80,443", "target_address":
                       "10.11.12.60"},
                      {"protocol": "udp", "listen_port": "5000-5002", "target_port": "6000-6002",
                       "target_address": "10.11.12.61", "description": "dns"},
                      {"protocol": "tcp", "listen_port": "8000-8001", "target_port": "80",
                       "target_address": "10.11.12.62"}]}
    forward = fwd.validate(body, "br0", SUBNET, "192.0.2.10")
    assert forward["config"] == {"target_address": "10.11.12.50", "user.x": "y"}
    assert forward["ports"][0] == {"description": "", "protocol": "tcp", "listen_port": "80,443",
                                   "target_port": "", "target_address": "10.11.12.60"}
    a = ipaddress.IPv4Address
    assert fwd.pairs(forward) == [
        ("tcp", 80, a("10.11.12.60"), 80), ("tcp", 443, a("10.11.12.60"), 443),
        ("udp", 5000, a("10.11.12.61"), 6000), ("udp", 5001, a("10.11.12.61"), 6001),
        ("udp", 5002, a("10.11.12.61"), 6002),
        ("tcp", 8000, a("10.11.12.62"), 80), ("tcp", 8001, a("10.11.12.62"), 80),
        ("", 0, a("10.11.12.50"), 0)]


@pytest.mark.parametrize(("body", "message"), [
    ({"config": {"target_address": "10.99.0.5"}}, "not a host of network 'br0'"),
    ({"config": {"target_address": "10.11.12.255"}}, "not a host of network 'br0'"),
    ({"config": {"bogus": "1"}}, "Invalid network forward option 'bogus'"),
    ({"ports": [{"protocol": "sctp", "listen_port": "80", "target_address": "10.11.12.5"}]},
     "index 0: protocol must be tcp or udp"),
    ({"ports": [{"protocol": "tcp", "target_address": "10.11.12.5"}]},
     "index 0: Missing listen_port"),
    ({"ports": [{"protocol": "tcp", "listen_port": "80"}]}, "index 0: Missing target_address"),
    ({"ports": [{"protocol": "tcp", "listen_port": "80-82", "target_port": "1-2",
                 "target_address": "10.11.12.5"}]}, "must be one port or as many"),
    ({"ports": [{"protocol": "tcp", "listen_port": "80", "target_address": "10.11.12.5"},
                {"protocol": "tcp", "listen_port": "70-90", "target_address": "10.11.12.6"}]},
     "Duplicate listen port tcp/80 in port specifications 0 and 1"),
    ({"ports": [{"protocol": "tcp", "listen_port": "1-5000", "target_address": "10.11.12.5"}]},
     "at most 4096"),
    ({"ports": [{"protocol": "tcp", "listen_port": "80", "target_address": "10.11.12.5",
                 "extra": "1"}]}, "unknown field 'extra'"),
    ({"ports": "80"}, "Invalid ports"),
])
def test_bad_forwards_are_refused_by_name(body: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidConfig, match=message):
        fwd.validate(body, "br0", SUBNET, "192.0.2.10")


def test_same_port_on_two_protocols_is_fine() -> None:
    body = {"ports": [{"protocol": "tcp", "listen_port": "53", "target_address": "10.11.12.5"},
                      {"protocol": "udp", "listen_port": "53", "target_address": "10.11.12.5"}]}
    assert len(fwd.pairs(fwd.validate(body, "br0", SUBNET, "192.0.2.10"))) == 2


def test_no_subnet_no_target() -> None:
    with pytest.raises(InvalidConfig, match="Network 'plain' has no IPv4 subnet"):
        fwd.validate({"config": {"target_address": "10.0.0.2"}}, "plain", None, "192.0.2.1")


def test_patch_merges_config_and_replaces_ports() -> None:
    current = {"listen_address": "192.0.2.1", "description": "a",
               "config": {"target_address": "10.11.12.5", "user.a": "1"}, "ports": [{"x": 1}]}
    assert fwd.merged(current, {"config": {"user.b": "2"}}) == {
        **current, "config": {"target_address": "10.11.12.5", "user.a": "1", "user.b": "2"}}
    assert fwd.merged(current, {"ports": []})["ports"] == []


def test_another_network_forwarding_the_address_conflicts() -> None:
    fwd.conflicts("192.0.2.1", [("x", "192.0.2.2")])
    with pytest.raises(Conflict, match="already forwarded by network 'x'"):
        fwd.conflicts("192.0.2.1", [("x", "192.0.2.1")])


def test_ruleset_port_rules_before_the_default_target() -> None:
    forward = fwd.validate({"config": {"target_address": "10.11.12.50"},
                            "ports": [{"protocol": "tcp", "listen_port": "22",
                                       "target_port": "2022",
                                       "target_address": "10.11.12.60"}]},
                           "br0", SUBNET, "192.0.2.10")
    listen = ipaddress.IPv4Address("192.0.2.10")
    # the default first, as a caller might list them: the ruleset still orders ports first
    rules = [nft.Dnat(p, lp, t, tp, listen) for p, lp, t, tp in reversed(fwd.pairs(forward))]
    text = nft.build_ruleset("br0", "br0", SUBNET, False, rules)
    port = "ip daddr 192.0.2.10 tcp dport 22 dnat ip to 10.11.12.60:2022"
    whole = "ip daddr 192.0.2.10 dnat ip to 10.11.12.50"
    for chain in ("prerouting", "output"):
        body = text.split(f"chain {chain} {{")[1].split("}")[0]
        assert body.index(port) < body.index(whole)
    assert "ip daddr 10.11.12.50 ct status dnat ip saddr 10.11.12.0/24 masquerade" in text
    assert ("ip daddr 10.11.12.60 tcp dport 2022 ct status dnat fib saddr type local "
            "masquerade") in text


def test_whole_address_dnat_needs_a_listen_address() -> None:
    with pytest.raises(InvalidConfig, match="needs a listen address"):
        nft.Dnat("", 0, ipaddress.IPv4Address("10.11.12.5"), 0).rule()


def test_the_bridge_address_keeps_its_dhcp_and_dns() -> None:
    with pytest.raises(InvalidConfig, match="would take its DHCP and DNS"):
        fwd.validate({"config": {"target_address": "10.11.12.5"}}, "br0", SUBNET, "10.11.12.1")
    with pytest.raises(InvalidConfig, match="udp/53 on the bridge's own address"):
        fwd.validate({"ports": [{"protocol": "udp", "listen_port": "50-60",
                                 "target_address": "10.11.12.5"}]}, "br0", SUBNET, "10.11.12.1")
    assert fwd.validate({"ports": [{"protocol": "tcp", "listen_port": "80",
                                    "target_address": "10.11.12.5"}]},
                        "br0", SUBNET, "10.11.12.1")["ports"]
