"""dns.upstream: none (tests, the default), the host's resolvers, or explicit servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.network import bridge_settings, validate_network_config
from lxmgr.net import dnsmasq


def resolver_lines(upstream: str) -> list[str]:
    settings = bridge_settings({"ipv4.address": "10.9.9.1/24", "dns.upstream": upstream})
    text = dnsmasq.build_config("n1", "n1", settings, Path("/tmp/unused"))
    return [ln for ln in text.splitlines() if ln.startswith(("no-resolv", "resolv-file",
                                                             "server="))]


def test_no_upstream_by_default() -> None:
    assert resolver_lines("none") == ["no-resolv"]
    settings = bridge_settings({"ipv4.address": "10.9.9.1/24"})
    assert settings.upstream == "none"


def test_host_and_explicit_upstreams() -> None:
    assert resolver_lines("host") == ["resolv-file=/etc/resolv.conf"]
    assert resolver_lines("192.0.2.53,2001:db8::53") == [
        "no-resolv", "server=192.0.2.53", "server=2001:db8::53"]


def test_bad_upstream_names_the_key() -> None:
    with pytest.raises(InvalidConfig, match="dns.upstream"):
        validate_network_config({"dns.upstream": "resolver.example"})
