"""/1.0/networks/NAME/forwards on a real test bridge (no NAT) of our own: LXD's shapes and
errors, the DNAT rules in the network's own nft table, records gone with the network.
Listen addresses are the bridge's own and TEST-NET-1 (RFC 5737); no traffic is sent."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import call

LISTEN = "192.0.2.77"


@pytest.fixture
async def bridge(api) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    name = f"lxmt{uuid.uuid4().hex[:8]}"
    await call(api, "POST", "/1.0/networks",
               {"name": name, "config": {"ipv4.address": "auto", "ipv4.nat": "false"}},
               status=201)
    try:
        yield name
    finally:
        resp = await api.delete(f"/1.0/networks/{name}")
        assert resp.status in (200, 404)


def _table(net: str) -> str:
    """Our network's table only (nothing else is read)."""
    return subprocess.run(["nft", "list", "table", "inet", f"lxmgr_{net}"],
                          capture_output=True, text=True, check=True).stdout


async def test_forward_lifecycle(api, bridge: str) -> None:  # type: ignore[no-untyped-def]
    info = (await call(api, "GET", "/1.0"))["metadata"]
    assert "network_forward" in info["api_extensions"]
    base = f"/1.0/networks/{bridge}/forwards"
    config = (await call(api, "GET", f"/1.0/networks/{bridge}"))["metadata"]["config"]
    gateway = config["ipv4.address"].split("/")[0]
    prefix = gateway.rsplit(".", 1)[0]
    assert (await call(api, "GET", base))["metadata"] == []
    assert (await call(api, "GET", f"{base}?recursion=1"))["metadata"] == []

    body = {"listen_address": LISTEN, "description": "web",
            "config": {"target_address": f"{prefix}.50"},
            "ports": [{"description": "ssh", "protocol": "tcp", "listen_port": "22",
                       "target_port": "2022", "target_address": f"{prefix}.60"}]}
    resp = await api.post(base, json=body)
    assert resp.status == 201 and resp.headers["Location"] == f"{base}/{LISTEN}"
    assert (await call(api, "GET", base))["metadata"] == [f"{base}/{LISTEN}"]
    shown = (await call(api, "GET", f"{base}/{LISTEN}"))["metadata"]
    assert shown == {"listen_address": LISTEN, "description": "web", "location": "",
                     "config": {"target_address": f"{prefix}.50"},
                     "ports": [{"description": "ssh", "protocol": "tcp", "listen_port": "22",
                                "target_port": "2022", "target_address": f"{prefix}.60"}]}
    assert (await call(api, "GET", f"{base}?recursion=1"))["metadata"] == [shown]
    table = _table(bridge)
    assert f"ip daddr {LISTEN} tcp dport 22 dnat ip to {prefix}.60:2022" in table
    assert f"ip daddr {LISTEN} dnat ip to {prefix}.50" in table

    # PATCH merges config, keeps ports; PUT replaces all.
    await call(api, "PATCH", f"{base}/{LISTEN}", {"config": {"user.note": "x"}})
    shown = (await call(api, "GET", f"{base}/{LISTEN}"))["metadata"]
    assert shown["config"] == {"target_address": f"{prefix}.50", "user.note": "x"}
    assert len(shown["ports"]) == 1
    await call(api, "PUT", f"{base}/{LISTEN}",
               {"description": "", "config": {},
                "ports": [{"protocol": "udp", "listen_port": "5000-5001",
                           "target_address": f"{prefix}.61"}]})
    table = _table(bridge)
    assert f"ip daddr {LISTEN} udp dport 5001 dnat ip to {prefix}.61:5001" in table
    assert "tcp dport 22" not in table and f"dnat ip to {prefix}.50" not in table

    # The bridge's own address may listen too (what a host client reaches).
    await call(api, "POST", base, {"listen_address": gateway}, status=201)

    # Errors: LXD's statuses, one line naming the culprit.
    for bad, status, message in (
            ({"listen_address": LISTEN}, 409, f"A forward for {LISTEN} already exists"),
            ({}, 400, "Missing listen_address"),
            ({"listen_address": "127.0.0.5"}, 400, "not a unicast host address"),
            ({"listen_address": f"{prefix}.9"}, 400, "only its own address"),
            ({"listen_address": "192.0.2.78", "config": {"target_address": "192.0.2.1"}},
             400, "not a host of network"),
            ({"listen_address": "192.0.2.78", "ports": [{"protocol": "tcp",
              "listen_port": "99999", "target_address": f"{prefix}.5"}]},
             400, "Invalid port specification at index 0")):
        error = await call(api, "POST", base, bad, status=status)
        assert message in error["error"] and "\n" not in error["error"], error
    assert "192.0.2.78" not in _table(bridge)  # refused: nothing applied
    await call(api, "GET", f"{base}/192.0.2.99", status=404)
    await call(api, "GET", "/1.0/networks/nosuchnet/forwards", status=404)
    error = await call(api, "PUT", f"{base}/{LISTEN}", {"listen_address": "192.0.2.5"},
                       status=400)
    assert "cannot change" in error["error"]

    # A new subnet that would strand the forward's targets is refused, nothing changed.
    error = await call(api, "PATCH", f"/1.0/networks/{bridge}",
                       {"config": {"ipv4.address": "10.254.253.1/24"}}, status=400)
    assert error["error"].startswith(f"Network forward {gateway} would break") or \
        error["error"].startswith(f"Network forward {LISTEN} would break"), error
    after = (await call(api, "GET", f"/1.0/networks/{bridge}"))["metadata"]["config"]
    assert after["ipv4.address"] == config["ipv4.address"]

    await call(api, "DELETE", f"{base}/{LISTEN}")
    assert LISTEN not in _table(bridge)
    await call(api, "DELETE", f"{base}/{LISTEN}", status=404)
    assert (await call(api, "GET", base))["metadata"] == [f"{base}/{gateway}"]

    # Deleted with the network: a new network of the same name starts without forwards.
    await call(api, "DELETE", f"/1.0/networks/{bridge}")
    await call(api, "POST", "/1.0/networks",
               {"name": bridge, "config": {"ipv4.address": "auto", "ipv4.nat": "false"}},
               status=201)
    assert (await call(api, "GET", base))["metadata"] == []
