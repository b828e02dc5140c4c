"""supervisor.devices: plugging a device node allows it before mounting it, unplugging
unmounts before taking the rule away, the plan follows (for reboots), and a failed plug
leaves the container as it was. Mounts and the cgroup are recorded, not done."""

from __future__ import annotations

from typing import Any

import pytest

from lxmgr.errors import RuntimeSetupError
from lxmgr.runtime import disks
from lxmgr.runtime.disks import DiskMount
from lxmgr.runtime.plan import DEVICE_RULES, build_plan
from lxmgr.supervisor import devices


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on: str | None = None

    def apply_devices(self, name: str, rules: list[str]) -> None:
        self.calls.append(("rules", name, tuple(rules[len(DEVICE_RULES):])))

    def in_container(self, pid: int, action: str, disk: DiskMount, shift: bool,
                     owner: tuple[int, int]) -> bool:
        if disk.path == self.fail_on:
            raise RuntimeSetupError(f"Failed to mount {disk.describe()}: boom")
        self.calls.append((action, disk.path))
        return True


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(disks, "in_container", recorder.in_container)
    return recorder


def _plan():  # type: ignore[no-untyped-def]
    return build_plan(name="c1", uuid="u", config={}, storage_root="/s", rootfs="/s/r",
                      rootfs_spec={}, idmap=None, init_target="/sbin/init", cgroup_procs=[],
                      cgroup_mounts=[], disks=[{"device": "code", "source": "/src",
                                                "path": "/code"}],
                      device_rules={"old": ["c 10:200 rwm"]})


def _node(device: str, path: str) -> DiskMount:
    return DiskMount(device=device, source=f"/state/devices/{device}/x", path=path,
                     is_node=True)


def test_attach_then_detach(rec: Recorder) -> None:
    plan = _plan()
    mounts = [_node("gpu", "/dev/dri/card0"), _node("gpu", "/dev/dri/renderD128")]
    devices.attach(plan, rec, 42, (0, 0), "gpu", mounts, ["c 226:0 rwm", "c 226:128 rwm"])
    assert rec.calls == [
        ("rules", "c1", ("c 226:0 rwm", "c 226:128 rwm", "c 10:200 rwm")),
        ("attach", "/dev/dri/card0"), ("attach", "/dev/dri/renderD128")]
    assert [d["path"] for d in plan.disks] == ["/code", "/dev/dri/card0", "/dev/dri/renderD128"]
    assert plan.device_rules["gpu"] == ["c 226:0 rwm", "c 226:128 rwm"]
    rec.calls.clear()
    devices.detach(plan, rec, 42, "gpu")
    assert rec.calls == [("detach", "/dev/dri/card0"), ("detach", "/dev/dri/renderD128"),
                         ("rules", "c1", ("c 10:200 rwm",))]
    assert [d["path"] for d in plan.disks] == ["/code"]
    assert "gpu" not in plan.device_rules


def test_failed_attach_leaves_nothing(rec: Recorder) -> None:
    plan = _plan()
    rec.fail_on = "/dev/dri/renderD128"
    mounts = [_node("gpu", "/dev/dri/card0"), _node("gpu", "/dev/dri/renderD128")]
    with pytest.raises(RuntimeSetupError, match="boom"):
        devices.attach(plan, rec, 42, (0, 0), "gpu", mounts, ["c 226:0 rwm"])
    assert rec.calls == [("rules", "c1", ("c 226:0 rwm", "c 10:200 rwm")),
                         ("attach", "/dev/dri/card0"), ("detach", "/dev/dri/card0"),
                         ("rules", "c1", ("c 10:200 rwm",))]
    assert plan.device_rules == {"old": ["c 10:200 rwm"]}
    assert [d["path"] for d in plan.disks] == ["/code"]


def test_plan_round_trips_device_rules() -> None:
    plan = _plan()
    again = type(plan).from_json(plan.to_json())
    assert again.device_rules == {"old": ["c 10:200 rwm"]}
    assert again.cgroup_device_rules() == DEVICE_RULES + ["c 10:200 rwm"]
