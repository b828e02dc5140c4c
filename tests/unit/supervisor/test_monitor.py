"""The console ring buffer and the manager->supervisor config file format."""

from __future__ import annotations

from lxmgr.model.idmap import IdMap
from lxmgr.runtime.plan import build_plan
from lxmgr.supervisor.config import CONSOLE_RING, ConsoleRing, SupervisorConfig


def test_ring_keeps_everything_below_its_size() -> None:
    ring = ConsoleRing(size=10)
    ring.append(b"abc")
    ring.append(b"def")
    assert ring.read() == b"abcdef"


def test_ring_keeps_the_tail() -> None:
    ring = ConsoleRing(size=10)
    for chunk in (b"0123", b"4567", b"89ab", b"cdef"):
        ring.append(chunk)
    assert ring.read() == b"6789abcdef"
    ring.append(b"X" * 25)
    assert ring.read() == b"X" * 10


def test_ring_is_bounded() -> None:
    ring = ConsoleRing(size=100)
    for i in range(10000):
        ring.append(bytes([65 + i % 26]) * 7)
    assert len(ring.read()) == 100
    assert ring.length < 100 + 7
    assert len(ring.chunks) <= 100 // 7 + 2


def test_ring_clear() -> None:
    ring = ConsoleRing(size=10)
    ring.append(b"boot messages")
    ring.clear()
    assert ring.read() == b""
    assert ring.length == 0
    ring.append(b"new")
    assert ring.read() == b"new"


def test_ring_default_size() -> None:
    assert ConsoleRing().size == CONSOLE_RING > 0


def make_config(idmap: IdMap | None) -> SupervisorConfig:
    plan = build_plan(name="c1", uuid="u-1", config={}, storage_root="/s/c1",
                      rootfs="/s/c1/rootfs", rootfs_spec={"kind": "bind", "source": "/s/c1/r"},
                      idmap=idmap, init_target="/lib/systemd/systemd",
                      cgroup_procs=["/sys/fs/cgroup/lxmgr/c1/cgroup.procs"],
                      cgroup_mounts=[("", "tmpfs", "mode=755"), ("cpu", "cgroup", "cpu")])
    return SupervisorConfig(plan=plan, cgroup_driver="v1", cgroup_base="lxmgr",
                            limits={"limits.memory": "128MiB"}, socket="/run/c1.sock",
                            state_file="/s/c1/state.json", console_log="/s/c1/console.log",
                            tty_count=2)


def test_config_round_trip() -> None:
    for idmap in (IdMap(1000000, 1000000), None):
        cfg = make_config(idmap)
        assert SupervisorConfig.from_json(cfg.to_json()) == cfg


def test_config_carries_the_protocol_and_refuses_a_newer_one() -> None:
    """Supervisors outlive daemon upgrades: a config says which protocol wrote it; one of a
    newer protocol is refused with a reason, one from before versions (no key) is read."""
    import json

    import pytest

    from lxmgr.supervisor.protocol import PROTOCOL_VERSION

    cfg = make_config(None)
    data = json.loads(cfg.to_json())
    assert data["protocol"] == PROTOCOL_VERSION
    older = {k: v for k, v in data.items() if k != "protocol"}
    assert SupervisorConfig.from_json(json.dumps(older)).protocol == PROTOCOL_VERSION
    with pytest.raises(ValueError, match=f"written for supervisor protocol "
                                         f"{PROTOCOL_VERSION + 1}, this lxmgr speaks"):
        SupervisorConfig.from_json(json.dumps({**data, "protocol": PROTOCOL_VERSION + 1}))
