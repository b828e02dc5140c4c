"""The pure half of lxmgr.net.nic: host names, MACs, NicSpec from devices, the tc plan."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import pytest

from lxmgr.errors import InvalidConfig, NotFound, NotSupported
from lxmgr.net import nic
from lxmgr.net.nic import NicSpec, build_nic, build_tc_plan, build_volatile

MAC_RE = re.compile(r"^00:16:3e(:[0-9a-f]{2}){3}$")
BRIDGES = {"lxmgrbr0": "lxmgrbr0", "lan": "br-lan"}


def bridge_of(network: str) -> str:
    return BRIDGES[network]  # KeyError for a missing network, as a dict lookup would


def nic_of(device: dict[str, str], volatile: dict[str, str] | None = None) -> NicSpec:
    return build_nic("eth0", {"type": "nic", **device}, "web1", volatile or {}, bridge_of)


def test_host_name_is_predictable_short_and_distinct() -> None:
    name = nic.host_name_for("web1", "eth0")
    assert name == nic.host_name_for("web1", "eth0")
    assert re.fullmatch(r"lxm[0-9a-f]{8}", name)
    assert len(nic.host_name_for("x" * 200, "eth" * 30)) <= 15
    assert name != nic.host_name_for("web2", "eth0")
    assert name != nic.host_name_for("web1", "eth1")
    assert not name.startswith("lxmt")  # the tests' prefix never collides


def test_host_name_follows_the_instance_uuid_not_its_name() -> None:
    """Two daemons on one host may both run a `web1`: their veths must not collide."""
    one = nic_of({"network": "lxmgrbr0"}, {"volatile.uuid": "11111111-aaaa"})
    two = nic_of({"network": "lxmgrbr0"}, {"volatile.uuid": "22222222-bbbb"})
    assert one.host_name == nic.host_name_for("11111111-aaaa", "eth0")
    assert one.host_name != two.host_name


def test_generate_hwaddr_is_lxd_style_and_seeded() -> None:
    macs = {nic.generate_hwaddr(random.Random(seed)) for seed in range(50)}
    assert all(MAC_RE.fullmatch(m) for m in macs)
    assert len(macs) == 50
    assert nic.generate_hwaddr(random.Random(7)) == nic.generate_hwaddr(random.Random(7))


def test_build_volatile_only_when_no_mac_is_fixed() -> None:
    rng = random.Random(1)
    new = build_volatile("eth0", {"type": "nic", "network": "lan"}, {}, rng)
    assert list(new) == ["volatile.eth0.hwaddr"]
    assert MAC_RE.fullmatch(new["volatile.eth0.hwaddr"])
    assert build_volatile("eth0", {"hwaddr": "00:16:3e:00:00:01"}, {}, rng) == {}
    assert build_volatile("eth0", {}, {"volatile.eth0.hwaddr": "00:16:3e:00:00:01"}, rng) == {}


def test_nic_on_a_managed_network_with_defaults() -> None:
    spec = nic_of({"network": "lxmgrbr0"}, {"volatile.eth0.hwaddr": "00:16:3E:AA:BB:CC"})
    assert spec == NicSpec(device="eth0", name="eth0",
                           host_name=nic.host_name_for("web1", "eth0"), parent="lxmgrbr0",
                           hwaddr="00:16:3e:aa:bb:cc", network="lxmgrbr0")


def test_nic_bridged_with_every_key() -> None:
    spec = nic_of({"nictype": "bridged", "parent": "br-x", "name": "lan0",
                   "hwaddr": "00:16:3e:01:02:03", "mtu": "1400", "ipv4.address": "10.1.2.3",
                   "host_name": "vethweb1", "limits.ingress": "10Mbit",
                   "limits.egress": "1Gbit"}, {"volatile.eth0.hwaddr": "00:16:3e:ff:ff:ff"})
    assert (spec.name, spec.parent, spec.host_name, spec.mtu) == ("lan0", "br-x", "vethweb1", 1400)
    assert spec.hwaddr == "00:16:3e:01:02:03"  # the device's hwaddr beats volatile
    assert (spec.limits_ingress, spec.limits_egress) == (10**7, 10**9)
    assert spec.ipv4_address == "10.1.2.3"
    assert spec.network is None


def test_nic_network_resolves_to_its_bridge() -> None:
    assert nic_of({"network": "lan"}).parent == "br-lan"


def test_nic_without_volatile_mac_gets_a_stable_derived_one() -> None:
    a, b = nic_of({"network": "lan"}), nic_of({"network": "lan"})
    assert a.hwaddr == b.hwaddr and MAC_RE.fullmatch(a.hwaddr)
    other = build_nic("eth0", {"type": "nic", "network": "lan"}, "web2", {}, bridge_of)
    assert other.hwaddr != a.hwaddr


def test_spec_round_trips_through_json() -> None:
    spec = nic_of({"network": "lan", "limits.egress": "5Mbit", "mtu": "9000"})
    assert NicSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(InvalidConfig, match="Invalid NIC spec"):
        NicSpec.from_dict({**spec.to_dict(), "bogus": 1})


@pytest.mark.parametrize(("device", "error", "match"), [
    ({}, InvalidConfig, "needs either 'network' or 'nictype'"),
    ({"name": "eth1"}, InvalidConfig, "needs either 'network' or 'nictype'"),
    ({"nictype": "bridged"}, InvalidConfig, "nictype 'bridged' needs a 'parent'"),
    ({"network": "nope"}, NotFound, "network 'nope' not found"),
    ({"network": "lan", "parent": "br0"}, InvalidConfig, "can't be combined"),
    ({"nictype": "macvlan", "parent": "eno1"}, NotSupported, "nictype 'macvlan'"),
    ({"nictype": "p2p"}, NotSupported, "nictype 'p2p'"),
    ({"network": "lan", "limits.ingress": "10MB"}, InvalidConfig, "limits.ingress"),
    ({"network": "lan", "limits.egress": "fast"}, InvalidConfig, "limits.egress"),
    ({"network": "lan", "limits.egress": "1bit"}, InvalidConfig, "at least 8bit"),
    ({"network": "lan", "hwaddr": "01:16:3e:00:00:01"}, InvalidConfig, "multicast"),
    ({"network": "lan", "hwaddr": "00:16:3e:00:00"}, InvalidConfig, "Invalid MAC"),
    ({"network": "lan", "mtu": "20"}, InvalidConfig, "mtu"),
    ({"network": "lan", "name": "a-very-long-ifname"}, InvalidConfig, "interface name"),
    ({"network": "lan", "host_name": "x/y"}, InvalidConfig, "interface name"),
    ({"network": "lan", "color": "red"}, InvalidConfig, "unknown key 'color'"),
])
def test_bad_nics_are_refused_naming_the_device(device: dict[str, str], error: type[Exception],
                                                match: str) -> None:
    with pytest.raises(error, match=match) as info:
        nic_of(device)
    assert "eth0" in str(info.value)


def test_only_nic_devices() -> None:
    with pytest.raises(InvalidConfig, match="not a nic"):
        build_nic("root", {"type": "disk", "path": "/", "pool": "default"}, "web1", {},
                  bridge_of)


def test_tc_plan_is_empty_without_limits() -> None:
    assert build_tc_plan(nic_of({"network": "lan"})) == []


def test_tc_plan_ingress_shapes_the_host_end() -> None:
    ops = build_tc_plan(nic_of({"network": "lan", "limits.ingress": "10Mbit"}))
    assert [(op.dev, op.command, op.kind) for op in ops] == [
        ("host", "add", "htb"), ("host", "add-class", "htb")]
    assert ops[0].args == {"handle": 0x10000, "default": 0x10}
    cls = ops[1].args
    assert (cls["handle"], cls["parent"], cls["rate"]) == (0x10010, 0x10000, 1_250_000)
    assert cls["burst"] >= 64 * 1024 + 1600  # one GSO packet fits
    assert "limits.ingress" in ops[1].describe()


def test_tc_plan_egress_redirects_to_the_ifb_and_shapes_there() -> None:
    spec = nic_of({"network": "lan", "limits.egress": "100Mbit"})
    ops = build_tc_plan(spec, ifb_index=42)
    assert [(op.dev, op.command, op.kind) for op in ops] == [
        ("ifb", "add", "htb"), ("ifb", "add-class", "htb"),
        ("host", "add", "ingress"), ("host", "add-filter", "u32")]
    assert ops[1].args["rate"] == 12_500_000
    flt = ops[3].args
    assert flt["parent"] == 0xFFFF0000 and flt["protocol"] == 0x0003
    assert flt["action"] == {"kind": "mirred", "direction": "egress", "action": "redirect",
                             "ifindex": 42}
    assert re.fullmatch(r"lxmi[0-9a-f]{8}", spec.ifb_name)


def test_tc_plan_rates_beyond_32_bits() -> None:
    ops = build_tc_plan(nic_of({"network": "lan", "limits.ingress": "100Gbit"}))
    assert ops[1].args["rate"] == 12_500_000_000  # pyroute2 switches to rate64


def test_attach_entry_point_rejects_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lxmgr.net.attach", *argv],
                              capture_output=True, text=True, timeout=30)

    assert run().returncode == 2
    assert run("spec.json", "notapid").returncode == 2
    bad = tmp_path / "spec.json"
    bad.write_text('{"device": "eth0"}')
    proc = run(str(bad), "1")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Failed to read NIC specs") and proc.stderr.count("\n") == 1
    bad.write_text('[{"device": "eth0"}]')
    proc = run(str(bad), "1")
    assert proc.returncode == 1 and "Invalid NIC spec" in proc.stderr
