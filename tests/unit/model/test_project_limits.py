"""The pure rules of a project's limits and restrictions (LXD 5.0's permissions.go)."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model import project_limits as rules

ROOT = {"root": {"type": "disk", "path": "/", "pool": "default", "size": "1GiB"}}


def held(*instances: dict[str, str], volumes: tuple[str, ...] = ()) -> rules.Holdings:
    return rules.Holdings(
        [rules.Entity(f"c{i}", config, ROOT) for i, config in enumerate(instances)], [],
        [rules.Entity(f"v{i}", {"size": size}) for i, size in enumerate(volumes)])


def test_counts() -> None:
    rules.check_count("p", {"limits.instances": "2"}, 1)
    with pytest.raises(InvalidConfig, match='Reached maximum number of instances in project "p"'):
        rules.check_count("p", {"limits.instances": "2"}, 2)
    with pytest.raises(InvalidConfig, match="of type container in project p"):
        rules.check_count("p", {"limits.containers": "0"}, 0)


def test_aggregates_sum_instances_and_volumes() -> None:
    holdings = held({"limits.cpu": "2"}, {"limits.cpu": "1"}, volumes=("1GiB",))
    assert rules.totals("p", ["limits.cpu", "limits.disk"], holdings) == {
        "limits.cpu": 3, "limits.disk": 3 << 30}
    rules.check("p", {"limits.cpu": "3"}, holdings)
    with pytest.raises(InvalidConfig, match='maximum aggregate value "2" for "limits.cpu"'):
        rules.check("p", {"limits.cpu": "2"}, holdings)
    with pytest.raises(InvalidConfig, match="Instance c1 in project p has no 'limits.memory'"):
        rules.check("p", {"limits.memory": "1GiB"}, held({"limits.memory": "1MiB"}, {}))
    assert rules.usage("limits.memory", held({"limits.memory": "1MiB"}, {})) == 1 << 20
    assert rules.limit({}, "limits.memory") == -1


def test_update_too_low() -> None:
    with pytest.raises(InvalidConfig, match="'limits.processes' is too low: current total is 30"):
        rules.check_update("p", {"limits.processes": "20"}, ["limits.processes"],
                           held({"limits.processes": "10"}, {"limits.processes": "20"}), 2)
    with pytest.raises(InvalidConfig, match='there currently are 2 total instances in project "p"'):
        rules.check_update("p", {"limits.instances": "1"}, ["limits.instances"], held({}, {}), 2)


@pytest.mark.parametrize(("config", "restriction", "message"), [
    ({"security.privileged": "true"}, {}, "Privileged containers are forbidden"),
    ({"security.privileged": "true"}, {"restricted.containers.privilege": "allow"}, None),
    ({"security.nesting": "1"}, {}, "Container nesting is forbidden"),
    ({"security.syscalls.deny": "kexec_load"}, {}, "Use of low-level config"),
    ({"raw.idmap": "both 1 1"}, {"restricted.containers.lowlevel": "allow"}, None),
    ({}, {"restricted.containers.privilege": "isolated"}, "Non-isolated containers"),
])
def test_restrictions(config: dict[str, str], restriction: dict[str, str],
                      message: str | None) -> None:
    project = {"restricted": "true", **restriction}
    holdings = rules.Holdings([rules.Entity("c1", config, ROOT)], [], [])
    if message is None:
        rules.check("p", project, holdings)
    else:
        with pytest.raises(InvalidConfig, match=message):
            rules.check("p", project, holdings)
    rules.check("p", {"restricted": "false"}, holdings)  # not restricted: anything goes


@pytest.mark.parametrize(("device", "mode", "message"), [
    ({"type": "nic", "nictype": "bridged", "parent": "br0"}, "managed",
     "Only managed network devices are allowed"),
    ({"type": "nic", "network": "lxmgrbr0"}, "managed", None),
    ({"type": "nic", "network": "lxmgrbr0"}, "block", "Network devices are forbidden"),
    ({"type": "disk", "source": "/srv", "path": "/srv"}, "managed", "not backed by a pool"),
    ({"type": "disk", "pool": "default", "source": "v", "path": "/v"}, "managed", None),
    ({"type": "gpu"}, "allow", None),
    ({"type": "gpu"}, "block", "GPU devices are forbidden"),
])
def test_device_restrictions(device: dict[str, str], mode: str, message: str | None) -> None:
    key = f"restricted.devices.{device['type']}"
    holdings = rules.Holdings([rules.Entity("c1", {}, {**ROOT, "d": device})], [], [])
    project = {"restricted": "true", key: mode}
    if message is None:
        rules.check("p", project, holdings)
    else:
        with pytest.raises(InvalidConfig, match=message):
            rules.check("p", project, holdings)
