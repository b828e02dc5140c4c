"""`lxmgr doctor`'s host dns line: systemd-resolved routes the network's domain to the bridge,
or one line on what works instead, on a fake resolvectl (resolved cannot run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.instances import doctor
from lxmgr.net import resolved
from lxmgr.net.bridge import BridgeNetwork
from tests.fakes.resolvectl import FakeRun
from tests.fakes.resolvectl import fake_resolver as host


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))


def network(resolver: resolved.HostResolver) -> BridgeNetwork:
    return BridgeNetwork("lxmgrbr0", {"ipv4.address": "10.1.2.1/24"}, resolver=resolver)


def test_without_resolved_one_line_says_what_works(tmp_path: Path) -> None:
    run = FakeRun()
    check = doctor.check_host_dns(network(host(tmp_path, run, present=False)))
    assert check.ok and check.name == "lxmgrbr0 host dns"
    assert check.detail == (
        f"the host does not run systemd-resolved (no {tmp_path}/resolve); *.lxmgr resolves on "
        "the host only by asking 10.1.2.1: `dig @10.1.2.1 NAME.lxmgr`, or send lxmgr to "
        "10.1.2.1 in the host's resolver")
    assert "\n" not in check.detail and run.calls == []


def test_a_resolved_that_does_not_answer_is_no_resolver(tmp_path: Path) -> None:
    check = doctor.check_host_dns(network(host(tmp_path, FakeRun(fail="dns"))))
    assert check.ok
    assert check.detail.startswith("systemd-resolved does not answer (Command '")
    assert "dig @10.1.2.1 NAME.lxmgr" in check.detail


def test_resolved_routes_the_domain(tmp_path: Path) -> None:
    run = FakeRun({"dns": "Link 4 (lxmgrbr0): 10.1.2.1\n",
                   "domain": "Link 4 (lxmgrbr0): ~lxmgr\n"})
    check = doctor.check_host_dns(network(host(tmp_path, run)))
    assert (check.ok, check.detail) == (True, "systemd-resolved sends *.lxmgr to 10.1.2.1")


def test_resolved_without_the_link_settings_fails_with_the_commands(tmp_path: Path) -> None:
    run = FakeRun({"dns": "Link 4 (lxmgrbr0):\n", "domain": "Link 4 (lxmgrbr0):\n"})
    check = doctor.check_host_dns(network(host(tmp_path, run)))
    assert not check.ok
    assert check.detail == ("systemd-resolved does not send *.lxmgr to 10.1.2.1 (link "
                            "lxmgrbr0: dns none, domains none)")
    assert check.fix.startswith("resolvectl dns lxmgrbr0 10.1.2.1 && resolvectl domain "
                                "lxmgrbr0 '~lxmgr'  # or systemctl restart")
