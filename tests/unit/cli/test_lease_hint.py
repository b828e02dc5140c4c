"""`lxmgr list`/`info` point at `lxmgr doctor` when a started instance gets no IPv4 lease."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result

from lxmgr.cli.listing import NO_LEASE_HINT, seconds_without_lease
from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _web1(started_ago: float, addresses: list[dict[str, str]] | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "name": "web1", "status": "Running", "type": "container", "description": "",
        "ephemeral": False, "profiles": ["default"], "architecture": "x86_64",
        "created_at": _iso(now - timedelta(hours=1)),
        "last_used_at": _iso(now - timedelta(seconds=started_ago)),
        "devices": {}, "expanded_devices": {
            "eth0": {"type": "nic", "network": "lxmgrbr0", "name": "eth0"},
            "root": {"type": "disk", "path": "/", "pool": "default"}},
        "state": {"status": "Running", "pid": 99, "processes": 3, "network": {
            "eth0": {"addresses": addresses or [
                {"family": "inet6", "address": "fe80::1", "netmask": "64", "scope": "link"}],
                "hwaddr": "00:16:3e:00:00:01", "host_name": "veth1a2b", "mtu": 1500,
                "state": "up", "type": "broadcast", "counters": {}},
            "lo": {"addresses": [{"family": "inet", "address": "127.0.0.1", "netmask": "8",
                                  "scope": "local"}]}}},
    }


def _ipv4_cell(run: Run, fake: FakeClient, inst: dict[str, Any]) -> str:
    fake.answers[("GET", "/1.0/instances")] = [inst]
    result = run("list", "-f", "csv", "-c", "n4")
    assert result.exit_code == 0, result.output
    return result.output.rstrip("\n").removeprefix("web1,")


def test_list_shows_the_global_addresses(run: Run, fake: FakeClient) -> None:
    inst = _web1(60, [
        {"family": "inet", "address": "10.1.2.3", "netmask": "24", "scope": "global"},
        {"family": "inet6", "address": "fd42::3", "netmask": "64", "scope": "global"}])
    assert _ipv4_cell(run, fake, inst) == "10.1.2.3 (eth0)"
    fake.answers[("GET", "/1.0/instances")] = [inst]
    assert run("list", "-f", "csv", "-c", "6").output == "fd42::3 (eth0)\n"


def test_list_hints_when_no_lease_after_5s(run: Run, fake: FakeClient) -> None:
    assert _ipv4_cell(run, fake, _web1(30)) == NO_LEASE_HINT == "(no lease: lxmgr doctor)"


@pytest.mark.parametrize("change", ["just started", "stopped", "no nic", "never started"])
def test_list_no_hint(run: Run, fake: FakeClient, change: str) -> None:
    inst = _web1(1 if change == "just started" else 30)
    if change == "stopped":
        inst["status"] = "Stopped"
        inst["state"] = {"status": "Stopped", "pid": 0}
    elif change == "no nic":
        del inst["expanded_devices"]["eth0"]
    elif change == "never started":
        inst["last_used_at"] = "0001-01-01T00:00:00Z"
    assert _ipv4_cell(run, fake, inst) == ""


def test_seconds_without_lease_counts_from_last_used_at() -> None:
    inst = copy.deepcopy(_web1(0))
    inst["last_used_at"] = _iso(NOW - timedelta(seconds=12))
    assert seconds_without_lease(inst, inst["state"], NOW) == 12
    inst["last_used_at"] = _iso(NOW - timedelta(seconds=5))
    assert seconds_without_lease(inst, inst["state"], NOW) is None


def test_info_prints_nic_addresses_and_the_hint(run: Run, fake: FakeClient) -> None:
    inst = _web1(30)
    fake.answers[("GET", "/1.0/instances/web1")] = {k: v for k, v in inst.items()
                                                    if k != "state"}
    fake.answers[("GET", "/1.0/instances/web1/state")] = inst["state"]
    result = run("info", "web1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for line in ("    eth0:", "      Host interface: veth1a2b", "      MAC address: "
                 "00:16:3e:00:00:01", "      MTU: 1500", "      IPv6 address: fe80::1/64 (link)"):
        assert line in lines
    assert lines[-1].startswith("No IPv4 lease on eth0 30s after start: run `lxmgr doctor`")


def test_info_without_hint_once_leased(run: Run, fake: FakeClient) -> None:
    inst = _web1(30, [{"family": "inet", "address": "10.1.2.3", "netmask": "24",
                       "scope": "global"}])
    fake.answers[("GET", "/1.0/instances/web1")] = inst
    fake.answers[("GET", "/1.0/instances/web1/state")] = inst["state"]
    result = run("info", "web1")
    assert "      IP address: 10.1.2.3/24 (global)" in result.output.splitlines()
    assert "lxmgr doctor" not in result.output
