"""The nft ruleset text of a network: one table of our own, masquerade only with NAT."""

from __future__ import annotations

import ipaddress
import re

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.net import nft

SUBNET = ipaddress.IPv4Network("10.11.12.0/24")


def test_nat_true() -> None:
    text = nft.build_ruleset("lxmgrbr0", "lxmgrbr0", SUBNET, nat=True)
    assert text == """\
table inet lxmgr_lxmgrbr0 {}
delete table inet lxmgr_lxmgrbr0
table inet lxmgr_lxmgrbr0 {
\tchain forward {
\t\ttype filter hook forward priority 0; policy accept
\t\tiifname "lxmgrbr0" accept
\t\toifname "lxmgrbr0" ct state established,related accept
\t}
\tchain input {
\t\ttype filter hook input priority 0; policy accept
\t\tiifname "lxmgrbr0" udp dport { 53, 67 } accept
\t\tiifname "lxmgrbr0" tcp dport 53 accept
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority 100; policy accept
\t\tip saddr 10.11.12.0/24 ip daddr != 10.11.12.0/24 masquerade
\t}
}
"""


def test_nat_false_has_no_masquerade() -> None:
    text = nft.build_ruleset("n1", "n1", SUBNET, nat=False)
    assert "masquerade" not in text and "postrouting" not in text
    assert 'iifname "n1" accept' in text


def test_only_our_table_is_named() -> None:
    text = nft.build_ruleset("n1", "n1", SUBNET, nat=True)
    tables = set(re.findall(r"table inet (\S+)", text))
    assert tables == {"lxmgr_n1"}
    assert "flush" not in text
    assert nft.build_delete("n1") == "table inet lxmgr_n1 {}\ndelete table inet lxmgr_n1\n"


def test_ipv6_nat() -> None:
    text = nft.build_ruleset("n1", "n1", None, nat=True,
                             subnet6=ipaddress.IPv6Network("fd42::/64"), nat6=True)
    assert "ip6 saddr fd42::/64 ip6 daddr != fd42::/64 masquerade" in text
    assert "ip saddr" not in text


def test_proxy_dnat() -> None:
    ip = ipaddress.IPv4Address
    text = nft.build_ruleset("n1", "n1", SUBNET, nat=False, proxies=[
        nft.Dnat("tcp", 8080, ip("10.11.12.5"), 80),
        nft.Dnat("udp", 53, ip("10.11.12.6"), 5353, listen_address=ip("192.0.2.2"))])
    # A wildcard listen matches every local address but loopback (a martian source).
    assert ("fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 "
            "dnat ip to 10.11.12.5:80") in text
    assert "ip daddr 192.0.2.2 udp dport 53 dnat ip to 10.11.12.6:5353" in text
    assert "type nat hook prerouting priority -100" in text
    assert "type nat hook output priority -100" in text  # the host's own connections
    # Replies to a client on the subnet or the host come back through the host.
    assert ("ip daddr 10.11.12.5 tcp dport 80 ct status dnat ip saddr 10.11.12.0/24 "
            "masquerade") in text
    assert "ip daddr 10.11.12.6 udp dport 5353 ct status dnat fib saddr type local " \
        "masquerade" in text
    assert "ip daddr != 10.11.12.0/24 masquerade" not in text  # ipv4.nat stays off
    with pytest.raises(InvalidConfig, match="sctp"):
        nft.Dnat("sctp", 1, ip("10.11.12.5"), 1).rule()
