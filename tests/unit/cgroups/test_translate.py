"""translate: every limits.* key on v1 and v2, the resets and the bad values."""

from __future__ import annotations

import pytest

from lxmgr.cgroups.translate import KEYS, Write, translate_v1, translate_v2
from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.model import config as cfgmod

GiB = 1 << 30
HOST_MEM = 8 * GiB


def table(writes: list[Write]) -> dict[str, str]:
    """Last value per file (the order of writes is tested separately)."""
    return {f"{w.controller}/{w.file}": w.value for w in writes}


V1_DEFAULTS = {
    "cpuset/cpuset.cpus": "0-3",
    "cpu/cpu.cfs_quota_us": "-1",
    "cpu/cpu.cfs_period_us": "100000",
    "cpu/cpu.shares": "1024",
    "memory/memory.memsw.limit_in_bytes": "-1",
    "memory/memory.limit_in_bytes": "-1",
    "memory/memory.soft_limit_in_bytes": "-1",
    "memory/memory.swappiness": "60",
    "pids/pids.max": "max",
}
V2_DEFAULTS = {
    "cpuset/cpuset.cpus": "",
    "cpu/cpu.max": "max 100000",
    "cpu/cpu.weight": "100",
    "memory/memory.max": "max",
    "memory/memory.high": "max",
    "memory/memory.swap.max": "max",
    "pids/pids.max": "max",
}


def test_empty_config_resets_everything() -> None:
    v1 = translate_v1({}, 4, HOST_MEM)
    assert table(v1) == V1_DEFAULTS
    assert all(w.reset for w in v1)
    v2 = translate_v2({}, 4, HOST_MEM)
    assert table(v2) == V2_DEFAULTS
    assert all(w.reset for w in v2)


@pytest.mark.parametrize(("config", "v1", "v2"), [
    ({"limits.cpu": "2"}, {"cpuset/cpuset.cpus": "0-1"}, {"cpuset/cpuset.cpus": "0-1"}),
    ({"limits.cpu": "99"}, {"cpuset/cpuset.cpus": "0-3"}, {"cpuset/cpuset.cpus": "0-3"}),
    ({"limits.cpu": "1,3"}, {"cpuset/cpuset.cpus": "1,3"}, {"cpuset/cpuset.cpus": "1,3"}),
    ({"limits.cpu": "2-3"}, {"cpuset/cpuset.cpus": "2-3"}, {"cpuset/cpuset.cpus": "2-3"}),
    ({"limits.cpu.allowance": "50%"}, {"cpu/cpu.shares": "512"}, {"cpu/cpu.weight": "50"}),
    ({"limits.cpu.allowance": "1%"}, {"cpu/cpu.shares": "10"}, {"cpu/cpu.weight": "1"}),
    ({"limits.cpu.allowance": "25ms/100ms"},
     {"cpu/cpu.cfs_quota_us": "25000", "cpu/cpu.cfs_period_us": "100000"},
     {"cpu/cpu.max": "25000 100000"}),
    ({"limits.cpu.allowance": "50ms/200ms"},
     {"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "200000"},
     {"cpu/cpu.max": "50000 200000"}),
    ({"limits.memory": "512MiB"},
     {"memory/memory.limit_in_bytes": str(512 << 20)}, {"memory/memory.max": str(512 << 20)}),
    ({"limits.memory": "25%"},
     {"memory/memory.limit_in_bytes": str(2 * GiB)}, {"memory/memory.max": str(2 * GiB)}),
    ({"limits.memory": "1GB", "limits.memory.enforce": "soft"},
     {"memory/memory.soft_limit_in_bytes": "1000000000", "memory/memory.limit_in_bytes": "-1"},
     {"memory/memory.high": "1000000000", "memory/memory.max": "max"}),
    ({"limits.memory": "1GiB", "limits.memory.swap": "false"},
     {"memory/memory.limit_in_bytes": str(GiB),
      "memory/memory.memsw.limit_in_bytes": str(GiB), "memory/memory.swappiness": "0"},
     {"memory/memory.max": str(GiB), "memory/memory.swap.max": "0"}),
    ({"limits.memory.swap": "true"}, {}, {}),
    ({"limits.processes": "20"}, {"pids/pids.max": "20"}, {"pids/pids.max": "20"}),
    # LXD 5.0's ParseCPU: shares/weight minus (10 - priority), whatever the allowance.
    ({"limits.cpu.priority": "10"}, {}, {}),
    ({"limits.cpu.priority": "5"}, {"cpu/cpu.shares": "1019"}, {"cpu/cpu.weight": "95"}),
    ({"limits.cpu.priority": "0"}, {"cpu/cpu.shares": "1014"}, {"cpu/cpu.weight": "90"}),
    ({"limits.cpu.priority": "0", "limits.cpu.allowance": "50%"},
     {"cpu/cpu.shares": "502"}, {"cpu/cpu.weight": "40"}),
    ({"limits.cpu.priority": "0", "limits.cpu.allowance": "1%"},  # LXD's 0: the kernel minimum
     {"cpu/cpu.shares": "2"}, {"cpu/cpu.weight": "1"}),
    ({"limits.cpu.priority": "3", "limits.cpu.allowance": "25ms/100ms"},
     {"cpu/cpu.cfs_quota_us": "25000", "cpu/cpu.shares": "1017"},
     {"cpu/cpu.max": "25000 100000", "cpu/cpu.weight": "93"}),
    ({"limits.memory.swap.priority": "10"}, {}, {}),
    # Without swap the priority is moot (LXD: swappiness 0), so cgroup2 accepts it too.
    ({"limits.memory.swap": "false", "limits.memory.swap.priority": "2"},
     {"memory/memory.swappiness": "0"}, {"memory/memory.swap.max": "0"}),
])
def test_key_table(config: dict[str, str], v1: dict[str, str], v2: dict[str, str]) -> None:
    assert table(translate_v1(config, 4, HOST_MEM)) == {**V1_DEFAULTS, **v1}
    assert table(translate_v2(config, 4, HOST_MEM)) == {**V2_DEFAULTS, **v2}


def test_set_writes_name_their_key() -> None:
    writes = translate_v2({"limits.processes": "5", "limits.memory": "1GiB"}, 4, HOST_MEM)
    pids = next(w for w in writes if w.file == "pids.max")
    assert (pids.key, pids.reset) == ("limits.processes", False)
    assert "pids/pids.max = 5" in pids.describe()


def test_v1_memsw_ordering_keeps_memsw_above_limit() -> None:
    writes = translate_v1({"limits.memory": "1GiB", "limits.memory.swap": "false"}, 4, HOST_MEM)
    files = [(w.file, w.value) for w in writes if w.controller == "memory"]
    opened = files.index(("memory.memsw.limit_in_bytes", "-1"))
    limited = files.index(("memory.limit_in_bytes", str(GiB)))
    narrowed = files.index(("memory.memsw.limit_in_bytes", str(GiB)))
    assert opened < limited < narrowed


def test_v1_without_memsw_skips_swap_files() -> None:
    writes = translate_v1({"limits.memory": "1GiB", "limits.memory.swap": "false"}, 4, HOST_MEM,
                          memsw=False)
    assert not any("memsw" in w.file for w in writes)


def test_v1_quota_written_after_period() -> None:
    files = [w.file for w in translate_v1({"limits.cpu.allowance": "5ms/10ms"}, 4, HOST_MEM)]
    last_quota = max(i for i, f in enumerate(files) if f == "cpu.cfs_quota_us")
    assert files.index("cpu.cfs_quota_us") < files.index("cpu.cfs_period_us") < last_quota


def test_host_cpus_as_a_list() -> None:
    assert table(translate_v1({"limits.cpu": "2"}, [2, 5, 7], HOST_MEM))[
        "cpuset/cpuset.cpus"] == "2,5"
    assert table(translate_v1({}, [2, 5, 7], HOST_MEM))["cpuset/cpuset.cpus"] == "2,5,7"


@pytest.mark.parametrize(("key", "value"), [
    ("limits.cpu", "0"),
    ("limits.cpu", "abc"),
    ("limits.cpu", "3-1"),
    ("limits.cpu", "0-7"),
    ("limits.cpu.allowance", "150%"),
    ("limits.cpu.allowance", "fast"),
    ("limits.cpu.allowance", "10us/100ms"),
    ("limits.memory", "lots"),
    ("limits.memory", "12XB"),
    ("limits.memory", "0"),
    ("limits.memory.swap", "maybe"),
    ("limits.memory.enforce", "strict"),
    ("limits.processes", "0"),
    ("limits.processes", "-5"),
    ("limits.processes", "many"),
    ("limits.cpu.priority", "11"),
    ("limits.cpu.priority", "-1"),
    ("limits.cpu.priority", "high"),
    ("limits.memory.swap.priority", "11"),
    ("limits.memory.swap.priority", "1.5"),
])
def test_bad_values_name_the_key(key: str, value: str) -> None:
    for translate in (translate_v1, translate_v2):
        with pytest.raises(InvalidConfig, match=f"'{key}'"):
            translate({key: value}, 4, HOST_MEM)


def test_empty_value_counts_as_unset() -> None:
    assert table(translate_v2({"limits.memory": ""}, 4, HOST_MEM)) == V2_DEFAULTS


@pytest.mark.parametrize(("priority", "swappiness"), [("10", "60"), ("9", "61"), ("0", "70")])
def test_v1_swap_priority_sets_swappiness(priority: str, swappiness: str) -> None:
    writes = translate_v1({"limits.memory.swap.priority": priority}, 4, HOST_MEM)
    assert table(writes) == {**V1_DEFAULTS, "memory/memory.swappiness": swappiness}
    write = next(w for w in writes if w.file == "memory.swappiness")
    assert (write.key, write.reset) == ("limits.memory.swap.priority", priority == "10")


@pytest.mark.parametrize("priority", ["0", "9"])
def test_v2_refuses_a_swap_priority_it_cannot_apply(priority: str) -> None:
    config = {"limits.memory.swap.priority": priority, "limits.memory.swap": "true"}
    with pytest.raises(NotSupported) as err:
        translate_v2(config, 4, HOST_MEM)
    assert str(err.value) == ("Cannot apply 'limits.memory.swap.priority': cgroup2 has no "
                              "memory.swappiness (only the default 10 is accepted)")


def test_cpu_priority_writes_name_their_key() -> None:
    for translate, file in ((translate_v1, "cpu.shares"), (translate_v2, "cpu.weight")):
        write = next(w for w in translate({"limits.cpu.priority": "4"}, 4, HOST_MEM)
                     if w.file == file)
        assert (write.key, write.reset) == ("limits.cpu.priority", False)
        default = next(w for w in translate({"limits.cpu.priority": "10"}, 4, HOST_MEM)
                       if w.file == file)
        assert default.reset


def test_tiny_percentage_is_not_taken_for_unset() -> None:
    """0.5% truncates to 0: the minimum weight, never the 100% default."""
    config = {"limits.cpu.allowance": "0.5%"}
    assert table(translate_v1(config, 4, HOST_MEM))["cpu/cpu.shares"] == "2"
    assert table(translate_v2(config, 4, HOST_MEM))["cpu/cpu.weight"] == "1"


# A non-default value per key; each must change what the v1 driver writes (C20: every
# declared limits.* key has a consumer).
SAMPLES = {
    "limits.cpu": "1",
    "limits.cpu.allowance": "50%",
    "limits.cpu.priority": "0",
    "limits.memory": "1GiB",
    "limits.memory.swap": "false",
    "limits.memory.swap.priority": "0",
    "limits.memory.enforce": "soft",
    "limits.processes": "10",
}


def test_every_limits_key_is_translated() -> None:
    assert set(KEYS) == {k for k in cfgmod.KEYS if k.startswith("limits.")} == set(SAMPLES)
    for key, value in SAMPLES.items():
        base = {"limits.memory": "2GiB"} if key == "limits.memory.enforce" else {}
        before = table(translate_v1(base, 4, HOST_MEM))
        assert table(translate_v1({**base, key: value}, 4, HOST_MEM)) != before, key
