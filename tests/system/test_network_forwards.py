"""Network forwards with a real container: a forward on the test bridge's own address (it
exists only while the test network does; no NAT outwards, nothing leaves the machine)
reaches a listener in the container from the host, through the output chain's DNAT, and
comes back after a daemon restart that found the network's nft table gone."""

from __future__ import annotations

import subprocess

import pytest

from tests.system.test_network import (  # the `net` fixture: a test bridge and profile
    _free_port,
    _greeting,
    _refused,
    _serve_greeting,
    gateway,
    net,  # noqa: F401
    wait_leases,
)

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def _table(name: str) -> str:
    return subprocess.run(["nft", "list", "table", "inet", f"lxmgr_{name}"],
                          capture_output=True, text=True, check=True).stdout


def test_forward_reaches_a_container_and_survives_a_restart(daemon, net) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    gw = gateway(daemon, net)
    static = gw.rsplit(".", 1)[0] + ".81"
    daemon.cli("init", "debian", "fw1", "-p", "default", "-p", "testnet")
    daemon.cli("config", "device", "override", "fw1", "eth0", f"ipv4.address={static}")
    daemon.cli("start", "fw1")
    assert wait_leases(daemon, ["fw1"])["fw1"] == static
    _serve_greeting(daemon, "fw1")
    port = _free_port(gw)
    base = f"/1.0/networks/{net}/forwards"
    daemon.api("POST", base, {"listen_address": gw, "description": "web", "ports": [
        {"protocol": "tcp", "listen_port": str(port), "target_port": "80",
         "target_address": static}]})
    rule = f"ip daddr {gw} tcp dport {port} dnat ip to {static}:80"
    assert rule in _table(net)
    # From the host: the output chain's DNAT (LXD's hairpin for host-originated clients).
    assert _greeting(gw, port) == f"hello {gw}\n".encode()

    # A daemon restart that finds the table gone (as after a reboot) puts the rule back.
    daemon.stop()
    subprocess.run(["nft", "delete", "table", "inet", f"lxmgr_{net}"], check=True)
    daemon.start()
    assert rule in _table(net)
    shown = daemon.api("GET", f"{base}/{gw}")["metadata"]
    assert shown["ports"][0]["target_address"] == static and shown["description"] == "web"
    assert _greeting(gw, port) == f"hello {gw}\n".encode()

    # The CLI, as `lxc network forward`: one more port, listed, then the forward deleted.
    other = _free_port(gw)
    daemon.cli("network", "forward", "port", "add", net, gw, "tcp", str(other), static, "80")
    assert _greeting(gw, other) == f"hello {gw}\n".encode()
    listed = daemon.cli("network", "forward", "list", net, "--format", "csv").stdout
    assert listed == f"{gw},web,,2\n"
    daemon.cli("network", "forward", "delete", net, gw)
    assert "dnat" not in _table(net)
    assert _refused(gw, port) and _refused(gw, other)
