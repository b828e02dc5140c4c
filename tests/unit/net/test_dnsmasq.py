"""dnsmasq config, argv, reservation files and lease parsing (pure builders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.network import bridge_settings
from lxmgr.net import dnsmasq

DIR = Path("/var/lib/lxmgr/networks/lxmgrbr0")


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_config_with_dhcp() -> None:
    settings = bridge_settings({"ipv4.address": "10.11.12.1/24", "dns.domain": "lab"})
    conf = lines(dnsmasq.build_config("lxmgrbr0", "lxmgrbr0", settings, DIR))
    assert conf == [
        "strict-order", "bind-interfaces", "except-interface=lo", "interface=lxmgrbr0",
        "listen-address=10.11.12.1", "no-resolv", "no-hosts", "pid-file=", "user=nobody",
        "group=nogroup", "log-facility=-", "domain=lab", "local=/lab/",
        f"addn-hosts={DIR}/hosts", f"dhcp-hostsfile={DIR}/dhcp-hosts",
        f"dhcp-leasefile={DIR}/dnsmasq.leases", "dhcp-no-override", "dhcp-authoritative",
        "dhcp-rapid-commit", "no-ping", "dhcp-option=option:domain-search,lab",
        "dhcp-range=10.11.12.2,10.11.12.254,255.255.255.0,1h",
    ]


def test_config_is_hermetic() -> None:
    settings = bridge_settings({"ipv4.address": "10.11.12.1/24", "ipv6.address": "fd42::1/64"})
    text = "\n".join(lines(dnsmasq.build_config("n", "n", settings, DIR)))
    assert "server=" not in text and "resolv-file" not in text and "conf-dir" not in text
    assert "listen-address=fd42::1" in text and "enable-ra" in text


def test_config_without_dhcp_and_custom_ranges() -> None:
    settings = bridge_settings({"ipv4.address": "10.0.0.1/24", "ipv4.dhcp": "false"})
    assert "dhcp-range" not in dnsmasq.build_config("n", "n", settings, DIR)
    settings = bridge_settings({"ipv4.address": "10.0.0.1/24", "ipv4.dhcp.expiry": "30m",
                                "ipv4.dhcp.ranges": "10.0.0.10-10.0.0.20,10.0.0.30-10.0.0.40"})
    conf = lines(dnsmasq.build_config("n", "n", settings, DIR))
    assert [c for c in conf if c.startswith("dhcp-range")] == [
        "dhcp-range=10.0.0.10,10.0.0.20,255.255.255.0,30m",
        "dhcp-range=10.0.0.30,10.0.0.40,255.255.255.0,30m"]


def test_argv() -> None:
    assert dnsmasq.build_argv(DIR / "dnsmasq.conf") == [
        "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
        f"--conf-file={DIR}/dnsmasq.conf"]


def test_reservation_files() -> None:
    res: dict[str, tuple[str, str | None]] = {
        "00:16:3E:00:00:02": ("10.0.0.8", None), "00:16:3e:00:00:01": ("10.0.0.7", "web1")}
    assert dnsmasq.build_dhcp_hosts(res) == (
        "00:16:3e:00:00:01,10.0.0.7,web1\n00:16:3e:00:00:02,10.0.0.8\n")
    assert dnsmasq.build_hosts(res, "lxmgr") == "10.0.0.7 web1.lxmgr web1\n"
    for bad in ({"nope": ("10.0.0.7", None)}, {"00:16:3e:00:00:01": ("10.0.0.7", "a,b")},
                {"00:16:3e:00:00:01": ("10.0.0.7", "x\nserver=1.1.1.1")}):
        with pytest.raises(InvalidConfig):
            dnsmasq.build_dhcp_hosts(bad)


def test_parse_leases() -> None:
    text = (
        "1767225600 00:16:3e:aa:bb:cc 10.0.0.23 web1 01:00:16:3e:aa:bb:cc\n"
        "0 00:16:3E:aa:bb:cd 10.0.0.24 * *\n"
        "duid 00:01:00:01:2c:2f:4f:5a:52:54:00:12:34:56\n"
        "1767225600 1234 fd42::5 web1 00:01:00:01\n"
        "garbage\n"
    )
    assert dnsmasq.parse_leases(text) == [
        dnsmasq.Lease(1767225600, "00:16:3e:aa:bb:cc", "10.0.0.23", "web1",
                      "01:00:16:3e:aa:bb:cc"),
        dnsmasq.Lease(0, "00:16:3e:aa:bb:cd", "10.0.0.24", None, None),
    ]


def test_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    assert dnsmasq.state_dir("br1") == tmp_path / "networks" / "br1"


def test_dead_pid_file_is_not_ours(tmp_path: Path) -> None:
    d = dnsmasq.Dnsmasq(tmp_path)
    (tmp_path / "dnsmasq.pid").write_text("1\n")  # pid 1 never runs our config
    assert d.pid() is None and not d.alive()
    d.write_static_hosts({"00:16:3e:00:00:01": ("10.0.0.7", "web1")}, "lxmgr")
    assert d.read_static_hosts() == {"00:16:3e:00:00:01": ("10.0.0.7", "web1")}
    assert d.leases() == []
