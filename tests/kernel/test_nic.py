"""NIC attachment on the real kernel, in a world of its own: every test runs in a fresh
network namespace (this thread's, restored afterwards) holding its bridge `lxmtbr<hex>`; a
forked child in a further namespace of its own stands in for the container. The host's
links, qdiscs and processes are never touched, and nothing leaves the test namespaces:
they have no link to the outside, and they die with the last process in them."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotFound
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.net import nic
from lxmgr.net.nic import NicSpec
from tests.kernel.netns_helpers import standin_container

pytestmark = pytest.mark.kernel

pyroute2 = pytest.importorskip("pyroute2")
IFF_UP = 0x1


def tag() -> str:
    return uuid.uuid4().hex[:8]


@contextlib.contextmanager
def netns_of(path: str | None) -> Iterator[None]:
    """Run the block in the network namespace at path (None: a fresh one), then return to
    this thread's own. Sockets opened inside stay in that namespace."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if path is None:
            libc.unshare(c.CLONE_NEWNET)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc.setns(fd, c.CLONE_NEWNET)
            finally:
                os.close(fd)
        try:
            yield
        finally:
            libc.setns(home, c.CLONE_NEWNET)
    finally:
        os.close(home)


def fake_container() -> contextlib.AbstractContextManager[int]:
    """A stand-in container PID 1 alone in a new network namespace (only `lo`)."""
    return standin_container()


@pytest.fixture
def world() -> Iterator[dict[str, Any]]:
    """A private netns with a bridge and a fake container; yields their names and pid."""
    with netns_of(None):
        bridge = f"lxmtbr{tag()}"
        with pyroute2.IPRoute() as ipr:
            ipr.link("add", ifname=bridge, kind="bridge")
            index = ipr.link_lookup(ifname=bridge)[0]
            # A bridge's MTU follows its smallest port unless it was changed by hand; setting
            # the value it has is a no-op for the kernel, so change it twice to pin it.
            ipr.link("set", index=index, mtu=1499)
            ipr.link("set", index=index, mtu=1500, state="up")
        with fake_container() as pid:
            yield {"bridge": bridge, "pid": pid}


def make_spec(world: dict[str, Any], **kw: Any) -> NicSpec:
    fields = {"device": "eth0", "name": "eth0", "host_name": f"lxmt{tag()}",
              "parent": world["bridge"], "hwaddr": "00:16:3e:12:34:56", **kw}
    return NicSpec(**fields)


def links(pid: int | None = None) -> dict[str, Any]:
    """name -> link message, in pid's netns (None: the current one)."""
    with netns_of(f"/proc/{pid}/ns/net") if pid else contextlib.nullcontext():
        with pyroute2.IPRoute() as ipr:
            return {link.get_attr("IFLA_IFNAME"): link for link in ipr.link("dump")}


def qdiscs(ifname: str) -> dict[str, Any]:
    with pyroute2.IPRoute() as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        return {q.get_attr("TCA_KIND"): q for q in ipr.tc("dump") if q["index"] == index}


def test_attach_creates_eth0_in_the_container_and_detach_removes_it(world) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(world, mtu=1400)
    nic.attach(spec, world["pid"])

    inside = links(world["pid"])
    assert sorted(inside) == ["eth0", "lo"]
    eth0 = inside["eth0"]
    assert eth0.get_attr("IFLA_ADDRESS") == "00:16:3e:12:34:56"
    assert eth0.get_attr("IFLA_MTU") == 1400
    host = links()
    end = host[spec.host_name]
    assert end.get_attr("IFLA_MASTER") == host[world["bridge"]]["index"]
    assert end["flags"] & IFF_UP
    assert end.get_attr("IFLA_MTU") == 1400
    assert host[world["bridge"]].get_attr("IFLA_MTU") == 1500  # pinned, not dragged down
    assert not set(qdiscs(spec.host_name)) & {"htb", "ingress"}

    nic.detach(spec)
    assert spec.host_name not in links()
    assert sorted(links(world["pid"])) == ["lo"]
    nic.detach(spec)  # a missing link is fine


def test_mtu_defaults_to_the_bridge(world) -> None:  # type: ignore[no-untyped-def]
    with pyroute2.IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=world["bridge"])[0], mtu=1450)
    spec = make_spec(world)
    nic.attach(spec, world["pid"])
    assert links(world["pid"])["eth0"].get_attr("IFLA_MTU") == 1450
    assert links()[spec.host_name].get_attr("IFLA_MTU") == 1450


def test_limits_install_qdiscs_and_the_ifb(world) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(world, limits_ingress=10**7, limits_egress=2 * 10**7)
    nic.attach(spec, world["pid"])

    host_q = qdiscs(spec.host_name)
    assert {"htb", "ingress"} <= set(host_q)
    assert host_q["htb"]["handle"] == 0x10000
    ifb = links()[spec.ifb_name]
    assert ifb["flags"] & IFF_UP
    assert "htb" in qdiscs(spec.ifb_name)
    with pyroute2.IPRoute() as ipr:
        # ipr.tc("dump-class") returns an unconsumed async generator in pyroute2 0.9.7.
        classes = {cl["handle"]: cl for cl in ipr.get_classes(index=ifb["index"])}
        options = classes[0x10010].get_attr("TCA_OPTIONS")
        assert options.get_attr("TCA_HTB_PARMS")["rate"] == 2 * 10**7 // 8
        filters = [f for f in ipr.get_filters(index=links()[spec.host_name]["index"],
                                              parent=0xFFFF0000)
                   if f.get_attr("TCA_KIND") == "u32"]
        assert filters

    nic.detach(spec)
    assert not {spec.host_name, spec.ifb_name} & set(links())


def test_attach_again_replaces_the_nic(world) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(world, limits_egress=10**7)
    nic.attach(spec, world["pid"])
    nic.attach(spec, world["pid"])  # the boot hook run twice
    assert sorted(links(world["pid"])) == ["eth0", "lo"]
    assert {spec.host_name, spec.ifb_name} <= set(links())
    nic.hot_unplug(spec)
    assert not {spec.host_name, spec.ifb_name} & set(links())


def test_a_host_name_in_use_by_another_container_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(world)
    nic.attach(spec, world["pid"])
    with fake_container() as other:
        with pytest.raises(Conflict, match=spec.host_name):
            nic.attach(spec, other)
        assert sorted(links(other)) == ["lo"]
    assert "eth0" in links(world["pid"])  # the first container kept its NIC


def test_reboot_reattaches_while_the_old_namespace_dies(world) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(world, limits_egress=10**7)
    with fake_container() as first:
        nic.attach(spec, first)
    # The old netns (and its veth) is destroyed asynchronously: attach waits for it.
    with fake_container() as second:
        nic.attach(spec, second)
        assert sorted(links(second)) == ["eth0", "lo"]
        assert links()[spec.host_name]["flags"] & IFF_UP
    nic.detach(spec)


def test_a_host_name_in_use_slows_the_refusal_by_the_wait_only(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(nic, "STALE_WAIT", 0.1)
    spec = make_spec(world)
    nic.attach(spec, world["pid"])
    with fake_container() as other:
        start = time.monotonic()
        with pytest.raises(Conflict, match="belongs to something else"):
            nic.attach(spec, other)
        assert time.monotonic() - start < 2


def test_a_name_taken_in_the_container_is_refused_leaving_nothing(world) -> None:  # type: ignore[no-untyped-def]
    first = make_spec(world)
    nic.hot_plug(first, world["pid"])
    second = make_spec(world, device="eth1", limits_egress=10**6)
    with pytest.raises(Conflict, match="already has an interface 'eth0'"):
        nic.hot_plug(second, world["pid"])
    assert not {second.host_name, second.ifb_name} & set(links())


def test_errors_name_the_missing_object(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound, match="parent bridge 'lxmtnone' not found"):
        nic.attach(make_spec(world, parent="lxmtnone"), world["pid"])
    dummy = f"lxmt{tag()}"
    with pyroute2.IPRoute() as ipr:
        ipr.link("add", ifname=dummy, kind="ifb")  # this kernel has no CONFIG_DUMMY
    with pytest.raises(InvalidConfig, match=f"parent '{dummy}' is not a bridge"):
        nic.attach(make_spec(world, parent=dummy), world["pid"])
    with pytest.raises(Conflict, match="not a veth"):
        nic.detach(make_spec(world, host_name=dummy))
    assert dummy in links()  # left alone
    with fake_container() as gone:
        pass
    with pytest.raises(NotFound, match=f"process {gone} not found"):
        nic.hot_plug(make_spec(world), gone)
    assert sorted(links()) == sorted(["lo", world["bridge"], dummy])


def test_entry_point_attaches_every_nic(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    specs = [make_spec(world), make_spec(world, device="eth1", name="eth1",
                                         hwaddr="00:16:3e:00:00:02", limits_ingress=10**7)]
    path = tmp_path / "nics.json"
    path.write_text(json.dumps([s.to_dict() for s in specs]))
    env = {**os.environ, "PYTHONPATH": paths.child_pythonpath()}
    argv = [sys.executable, "-S", "-m", "lxmgr.net.attach", str(path)]
    start = time.monotonic()
    proc = subprocess.run([*argv, str(world["pid"])], env=env, capture_output=True, text=True,
                          timeout=30, cwd="/")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert sorted(links(world["pid"])) == ["eth0", "eth1", "lo"]
    assert all(links()[s.host_name]["flags"] & IFF_UP for s in specs)
    print(f"attach hook: {elapsed * 1000:.0f} ms for 2 NICs")

    with fake_container() as gone:
        pass
    proc = subprocess.run([*argv, str(gone)], env=env, capture_output=True, text=True,
                          timeout=30, cwd="/")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and all(f"process {gone} not found" in line for line in lines)


# -- traffic, between the test namespace and the fake container only ------------------------


def address(world: dict[str, Any], spec: NicSpec) -> tuple[str, str]:
    """10.254.0.1/24 on the bridge, 10.254.0.2/24 on the container's eth0, both up."""
    with pyroute2.IPRoute() as ipr:
        ipr.addr("add", index=ipr.link_lookup(ifname=world["bridge"])[0], address="10.254.0.1",
                 prefixlen=24)
    with netns_of(f"/proc/{world['pid']}/ns/net"), pyroute2.IPRoute() as ipr:
        index = ipr.link_lookup(ifname=spec.name)[0]
        ipr.addr("add", index=index, address="10.254.0.2", prefixlen=24)
        ipr.link("set", index=index, state="up")
    return "10.254.0.1", "10.254.0.2"


def throughput(sender: socket.socket, receiver: socket.socket, seconds: float) -> float:
    """Bits per second sender -> receiver over `seconds` (after a 0.3 s warm-up)."""
    received = [0]
    stop = threading.Event()

    def drain() -> None:
        while chunk := receiver.recv(1 << 16):
            received[0] += len(chunk)

    reader = threading.Thread(target=drain, name="lxmt-drain", daemon=True)
    reader.start()
    payload = b"\0" * (1 << 16)
    sender.settimeout(5)
    marks: list[tuple[float, int]] = []
    deadline = time.monotonic() + 0.3 + seconds
    while time.monotonic() < deadline and not stop.is_set():
        sender.sendall(payload)
        marks.append((time.monotonic(), received[0]))
    sender.shutdown(socket.SHUT_WR)
    reader.join(10)
    start = next(m for m in marks if m[0] >= marks[0][0] + 0.3)
    return (marks[-1][1] - start[1]) * 8 / (marks[-1][0] - start[0])


@contextlib.contextmanager
def connection(world: dict[str, Any], host_ip: str) -> Iterator[tuple[socket.socket,
                                                                      socket.socket]]:
    """(host side, container side) of one TCP connection over the NIC."""
    with socket.create_server((host_ip, 0)) as server:
        with netns_of(f"/proc/{world['pid']}/ns/net"):
            inner = socket.socket()
        inner.settimeout(5)
        inner.connect(server.getsockname())
        outer, _ = server.accept()
        with outer, inner:
            yield outer, inner


def test_limits_cap_the_rate_both_ways(world) -> None:  # type: ignore[no-untyped-def]
    limit = 20 * 10**6
    spec = make_spec(world, limits_ingress=limit, limits_egress=limit)
    nic.attach(spec, world["pid"])
    host_ip, _ = address(world, spec)
    with connection(world, host_ip) as (outer, inner):
        down = throughput(outer, inner, 1.5)
    with connection(world, host_ip) as (outer, inner):
        up = throughput(inner, outer, 1.5)
    print(f"limit 20 Mbit/s: container download {down / 1e6:.1f}, upload {up / 1e6:.1f}")
    assert 0.5 * limit < down < 1.3 * limit
    assert 0.5 * limit < up < 1.3 * limit
