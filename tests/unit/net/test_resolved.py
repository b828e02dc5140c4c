"""systemd-resolved per-link DNS for a network: the resolvectl argv, when it runs, the revert,
and the bridge driver's calls, on a recording fake command runner (resolved cannot run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.net import resolved
from lxmgr.net.bridge import BridgeNetwork
from tests.fakes.resolvectl import TOOL, FakeRun
from tests.fakes.resolvectl import fake_resolver as host


def test_link_argvs_are_what_lxd_documents_for_lxdbr0() -> None:
    assert resolved.build_link_argvs("resolvectl", "lxmgrbr0", ["10.1.2.1", "fd42::1"],
                                     "lxmgr") == [
        ["resolvectl", "dns", "lxmgrbr0", "10.1.2.1", "fd42::1"],
        ["resolvectl", "domain", "lxmgrbr0", "~lxmgr"],
        ["resolvectl", "dnssec", "lxmgrbr0", "no"]]
    assert resolved.build_revert_argv("resolvectl", "lxmgrbr0") == [
        "resolvectl", "revert", "lxmgrbr0"]


def test_set_link_runs_them_in_order(tmp_path: Path) -> None:
    run = FakeRun()
    assert host(tmp_path, run).set_link("br1", ["10.1.2.1"], "lab") is True
    assert run.calls == [[TOOL, "dns", "br1", "10.1.2.1"], [TOOL, "domain", "br1", "~lab"],
                         [TOOL, "dnssec", "br1", "no"]]


@pytest.mark.parametrize(("kw", "why"), [
    ({"present": False}, "does not run systemd-resolved"),
    ({"tool": None}, "resolvectl is not installed"),
    ({"same_netns": False}, "network namespace of its own"),
])
def test_nothing_runs_without_a_resolved_serving_us(tmp_path: Path, kw: dict[str, bool],
                                                    why: str) -> None:
    run = FakeRun()
    resolver = host(tmp_path, run, **kw)  # type: ignore[arg-type]
    tool, reason = resolver.availability()
    assert tool is None and why in reason
    assert resolver.set_link("br1", ["10.1.2.1"], "lxmgr") is False
    resolver.revert_link("br1")
    assert run.calls == []


def test_a_resolved_that_does_not_answer_stops_at_the_first_command(tmp_path: Path) -> None:
    run = FakeRun(fail="dns")
    assert host(tmp_path, run).set_link("br1", ["10.1.2.1"], "lxmgr") is False
    assert run.calls == [[TOOL, "dns", "br1", "10.1.2.1"]]
    run = FakeRun(fail="revert")
    host(tmp_path, run).revert_link("br1")  # logged, not raised: the link may be gone
    assert run.calls == [[TOOL, "revert", "br1"]]


def test_no_address_no_command(tmp_path: Path) -> None:
    run = FakeRun()
    assert host(tmp_path, run).set_link("br1", [], "lxmgr") is False
    assert run.calls == []


def test_parse_link_values() -> None:
    assert resolved.parse_link_values("Link 5 (lxmgrbr0): 10.1.2.1 fd42::1\n") == [
        "10.1.2.1", "fd42::1"]
    assert resolved.parse_link_values("Link 5 (lxmgrbr0): ~lxmgr\n") == ["~lxmgr"]
    assert resolved.parse_link_values("Link 5 (lxmgrbr0):\n") == []
    assert resolved.parse_link_values("Link 7 (br0): 10.0.0.1#ns.lab fe80::1%7\n") == [
        "10.0.0.1", "fe80::1"]


def test_link_settings_reads_both(tmp_path: Path) -> None:
    run = FakeRun({"dns": "Link 9 (br1): 10.1.2.1\n", "domain": "Link 9 (br1): ~lxmgr\n"})
    assert host(tmp_path, run).link_settings("br1") == (["10.1.2.1"], ["~lxmgr"])
    assert run.calls == [[TOOL, "dns", "br1"], [TOOL, "domain", "br1"]]


def test_bridge_tells_and_reverts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver's calls: after dnsmasq is up (start), on stop_services and delete; a
    network without an address reverts instead (no dnsmasq answers for it)."""
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    run = FakeRun()
    net = BridgeNetwork("br1", {"ipv4.address": "10.1.2.1/24", "ipv6.address": "fd42::1/64",
                                "dns.domain": "lab"}, resolver=host(tmp_path, run))
    net._tell_host_resolver()
    assert run.calls == [[TOOL, "dns", "br1", "10.1.2.1", "fd42::1"],
                         [TOOL, "domain", "br1", "~lab"], [TOOL, "dnssec", "br1", "no"]]
    run.calls.clear()
    net.stop_services()
    assert run.calls == [[TOOL, "revert", "br1"]]
    bare = BridgeNetwork("br2", {"ipv4.address": "none"}, resolver=host(tmp_path, run))
    run.calls.clear()
    bare._tell_host_resolver()
    assert run.calls == [[TOOL, "revert", "br2"]]
