"""The pure half of lxmgr.net.proxy: proxy devices -> ProxySpec, nat -> Dnat, and errors
that name the device and key."""

from __future__ import annotations

import ipaddress

import pytest

from lxmgr.errors import Conflict, InvalidConfig, NotSupported
from lxmgr.net.nft import Dnat
from lxmgr.net.proxy import (
    ProxySpec,
    build_dnat,
    build_proxies,
    build_proxy,
    check_unique,
    listens_overlap,
)


def proxy(listen: str = "tcp:0.0.0.0:8080", connect: str = "tcp:127.0.0.1:80",
          **keys: str) -> ProxySpec:
    return build_proxy("web", {"type": "proxy", "listen": listen, "connect": connect, **keys})


def test_tcp_proxy_as_in_lxd() -> None:
    assert proxy() == ProxySpec("web", "tcp", "0.0.0.0", 8080, "tcp", "127.0.0.1", 80, False)
    assert proxy().describe() == "proxy 'web': tcp:0.0.0.0:8080 -> tcp:127.0.0.1:80 (relay)"


def test_udp_ipv6_and_bind_host() -> None:
    spec = proxy("udp:[::1]:5353", "udp:[fd42::1]:53", bind="host")
    assert (spec.listen_proto, spec.listen_addr, spec.connect_addr) == ("udp", "::1", "fd42::1")
    assert (spec.listen, spec.connect) == ("udp:[::1]:5353", "udp:[fd42::1]:53")


def test_round_trips_through_json_dicts() -> None:
    spec = proxy(nat="true", connect="tcp:10.0.3.5:80")
    assert spec.nat is True
    assert ProxySpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(InvalidConfig, match="Invalid proxy spec"):
        ProxySpec.from_dict({**spec.to_dict(), "extra": 1})


@pytest.mark.parametrize(("keys", "error", "match"), [
    ({"listen": "tcp:0.0.0.0:8080-8090"}, NotSupported,
     "Proxy 'web' key 'listen': .*port ranges are not supported, give a single port"),
    ({"connect": "tcp:127.0.0.1:80-81"}, NotSupported, "key 'connect': .*port ranges"),
    ({"listen": "unix:/run/x.sock"}, NotSupported, "'listen' unix:/run/x.sock: only tcp and udp"),
    ({"connect": "udp:127.0.0.1:53"}, InvalidConfig,
     "device 'web': listen protocol 'tcp' and connect protocol 'udp' differ"),
    ({"listen": "tcp:localhost:80"}, InvalidConfig,
     "device 'web' key 'listen': 'localhost' is not an IP address"),
    ({"listen": "tcp:300.1.1.1:80"}, InvalidConfig, "key 'listen': '300.1.1.1' is not an IP"),
    ({"connect": "tcp:[::1:80"}, InvalidConfig, "key 'connect'"),
    ({"listen": "tcp:0.0.0.0:0"}, InvalidConfig, "key 'listen'.*port"),
    ({"listen": "tcp:0.0.0.0:70000"}, InvalidConfig, "key 'listen'.*port"),
    ({"listen": "tcp:0.0.0.0"}, InvalidConfig, "key 'listen'"),
    ({"listen": "http:0.0.0.0:80"}, InvalidConfig, "key 'listen'"),
    ({"connect": "tcp:0.0.0.0:80"}, InvalidConfig, "key 'connect': .* is a wildcard"),
    ({"bind": "instance"}, NotSupported, "device 'web': bind 'instance' is not supported"),
    ({"bind": "guest"}, InvalidConfig, "device 'web' key 'bind'"),
    ({"nat": "maybe"}, InvalidConfig, "device 'web' key 'nat'"),
    ({"nat": "true", "listen": "tcp:[::]:80"}, NotSupported, "nat=true supports IPv4"),
    ({"nat": "true", "listen": "tcp:127.0.0.1:80", "connect": "tcp:10.0.3.5:80"},
     NotSupported, "Proxy 'web' key 'listen': nat=true needs a non-loopback listen"),
    ({"size": "1GiB"}, InvalidConfig, "unknown key 'size'"),
])
def test_bad_devices_name_the_device_and_key(keys: dict[str, str], error: type[Exception],
                                             match: str) -> None:
    with pytest.raises(error, match=match):
        proxy(**keys)


def test_missing_listen_or_connect() -> None:
    with pytest.raises(InvalidConfig, match="device 'web' key 'connect'"):
        build_proxy("web", {"type": "proxy", "listen": "tcp:0.0.0.0:80"})


def test_a_nic_is_not_a_proxy() -> None:
    with pytest.raises(InvalidConfig, match="is not a proxy"):
        build_proxy("eth0", {"type": "nic", "network": "lxmgrbr0"})


def test_build_proxies_takes_only_proxy_devices_by_name() -> None:
    devices = {"b": {"type": "proxy", "listen": "udp:127.0.0.1:53", "connect": "udp:127.0.0.1:53"},
               "eth0": {"type": "nic", "network": "lxmgrbr0"},
               "a": {"type": "proxy", "listen": "tcp:127.0.0.1:80", "connect": "tcp:127.0.0.1:80"}}
    assert [p.device for p in build_proxies(devices)] == ["a", "b"]


def test_overlapping_listens() -> None:
    any80, lo80 = proxy("tcp:0.0.0.0:80"), proxy("tcp:127.0.0.1:80")
    assert listens_overlap(any80, lo80)
    assert not listens_overlap(lo80, proxy("tcp:127.0.0.2:80"))
    assert not listens_overlap(lo80, proxy("udp:127.0.0.1:80", "udp:127.0.0.1:80"))
    assert not listens_overlap(lo80, proxy("tcp:127.0.0.1:81"))
    with pytest.raises(Conflict, match="listens on tcp:127.0.0.1:80, as proxy 'web' does"):
        check_unique([any80, lo80])
    check_unique([lo80, proxy("tcp:127.0.0.1:81")])


def test_nat_proxy_becomes_a_dnat_on_the_nics_network() -> None:
    spec = proxy("tcp:0.0.0.0:8080", "tcp:10.0.3.5:80", nat="true")
    network, dnat = build_dnat(spec, {"10.0.3.5": "lxmgrbr0"})
    assert network == "lxmgrbr0"
    assert dnat == Dnat("tcp", 8080, ipaddress.IPv4Address("10.0.3.5"), 80, None)
    specific = proxy("udp:192.0.2.1:53", "udp:10.0.3.5:53", nat="true")
    assert build_dnat(specific, {"10.0.3.5": "n"})[1].listen_address == \
        ipaddress.IPv4Address("192.0.2.1")


def test_nat_needs_a_static_nic_address() -> None:
    spec = proxy("tcp:0.0.0.0:8080", "tcp:10.0.3.9:80", nat="true")
    with pytest.raises(InvalidConfig, match=r"nat=true needs connect to be the static "
                                            r"ipv4.address .*\(this instance's: none\)"):
        build_dnat(spec, {})
    with pytest.raises(InvalidConfig, match=r"this instance's: 10.0.3.5\)"):
        build_dnat(spec, {"10.0.3.5": "lxmgrbr0"})


def test_bridge_keeps_forwards_per_owner_in_its_table(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lxmgr.net import bridge, nft

    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    applied: list[str] = []
    monkeypatch.setattr(nft, "apply", applied.append)
    net = bridge.BridgeNetwork("br1", {"ipv4.address": "10.9.0.1/24"})
    web = [Dnat("tcp", 8080, ipaddress.IPv4Address("10.9.0.5"), 80)]
    dns = [Dnat("udp", 53, ipaddress.IPv4Address("10.9.0.6"), 53,
                ipaddress.IPv4Address("192.0.2.1"))]
    net.set_forwards("web1", web)
    net.set_forwards("dns1", dns)
    assert net.forwards() == {"web1": web, "dns1": dns}
    assert "fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat ip to " \
        "10.9.0.5:80" in applied[-1]
    assert "ip daddr 192.0.2.1 udp dport 53 dnat ip to 10.9.0.6:53" in applied[-1]
    assert "dnat ip to 10.9.0.5:80" in net._ruleset()  # start() re-applies them
    net.set_forwards("web1", web)
    assert len(applied) == 2  # unchanged: no nft run
    net.set_forwards("web1", [])
    net.set_forwards("dns1", [])
    assert net.forwards() == {}
    assert "dnat" not in applied[-1]
