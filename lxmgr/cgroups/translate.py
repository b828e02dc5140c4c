"""PURE translation of LXD `limits.*` keys into cgroup file writes, for v1 and v2.

Owns the key -> (controller, file, value) tables and the reset values written when a key is
unset. No I/O: the drivers apply the returned writes in order. Imports lxmgr.model and
lxmgr.errors only.

The priorities follow LXD 5.0 (github.com/canonical/lxd, formerly lxc/lxd, tag lxd-5.0.9:
lxd/cgroup/cgroup_cpu.go `ParseCPU`, lxd/cgroup/abstraction.go `SetCPUShare` and
`SetMemorySwappiness`, lxd/instance/drivers/driver_lxc.go `initLXC` and `Update`):
cpu.shares (v1) or cpu.weight (v2) is the percentage allowance of 1024 (v1) or 100 (v2),
100% when unset or a time quota, minus `10 - limits.cpu.priority`; memory.swappiness (v1
only) is 0 without swap, else `70 - limits.memory.swap.priority` (priority 10 gives the
kernel's default 60).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.model.units import (
    format_cpuset,
    parse_bool,
    parse_cpu_allowance,
    parse_limits_cpu,
    parse_size_or_percent,
)

KEYS = (
    "limits.cpu",
    "limits.cpu.allowance",
    "limits.cpu.priority",
    "limits.memory",
    "limits.memory.swap",
    "limits.memory.swap.priority",
    "limits.memory.enforce",
    "limits.processes",
)

V1_SHARES_DEFAULT = 1024
V1_SHARES_MIN = 2  # the kernel clamps lower cpu.shares to 2 (MIN_SHARES, kernel/sched)
V2_WEIGHT_DEFAULT = 100
V2_WEIGHT_MIN = 1  # cpu.weight refuses 0 with ERANGE (CGROUP_WEIGHT_MIN)
CFS_PERIOD_DEFAULT = 100_000
SWAPPINESS_DEFAULT = 60
PRIORITY_DEFAULT = 10  # limits.cpu.priority and limits.memory.swap.priority: the maximum

T = TypeVar("T")


@dataclass(frozen=True)
class Write:
    """One cgroup file write; `key` names the config key, `reset` marks a default value."""

    controller: str
    file: str
    value: str
    key: str = ""
    reset: bool = False

    def describe(self) -> str:
        """One line for logs and dry runs."""
        what = "reset" if self.reset else self.key or "set"
        return f"{self.controller}/{self.file} = {self.value} ({what})"


@dataclass(frozen=True)
class Limits:
    """The parsed, validated `limits.*` keys; None means unset."""

    cpus: list[int] | None
    shares_pct: int | None
    quota: tuple[int, int] | None
    memory: int | None
    memory_soft: bool
    swap: bool
    processes: int | None
    cpu_priority: int = PRIORITY_DEFAULT
    swap_priority: int = PRIORITY_DEFAULT


def parse_limits(
    config: Mapping[str, str], host_cpus: int | Sequence[int], host_memory: int
) -> Limits:
    """Validate the `limits.*` keys of `config`; InvalidConfig names the offending key."""
    available = list(range(host_cpus)) if isinstance(host_cpus, int) else sorted(host_cpus)
    allowance = _keyed("limits.cpu.allowance", config, parse_cpu_allowance)
    return Limits(
        cpus=_keyed("limits.cpu", config, lambda v: _pick_cpus(v, available)),
        shares_pct=allowance[1] if allowance and allowance[0] == "share" else None,
        quota=(allowance[1], allowance[2]) if allowance and allowance[0] == "quota" else None,
        memory=_keyed("limits.memory", config, lambda v: _memory(v, host_memory)),
        memory_soft=_keyed("limits.memory.enforce", config, _enforce) == "soft",
        swap=_keyed("limits.memory.swap", config, parse_bool) is not False,
        processes=_keyed("limits.processes", config, _processes),
        cpu_priority=_priority("limits.cpu.priority", config),
        swap_priority=_priority("limits.memory.swap.priority", config),
    )


def translate_v1(
    config: Mapping[str, str],
    host_cpus: int | Sequence[int],
    host_memory: int,
    *,
    memsw: bool = True,
) -> list[Write]:
    """Writes for the v1 controllers; `memsw` says whether memory.memsw.* files exist."""
    lim = parse_limits(config, host_cpus, host_memory)
    all_cpus = list(range(host_cpus)) if isinstance(host_cpus, int) else list(host_cpus)
    return [
        *_cpuset("cpuset.cpus", lim.cpus, format_cpuset(all_cpus)),
        *_v1_cpu(lim),
        *_v1_memory(lim, memsw),
        *_pids(lim),
    ]


def translate_v2(
    config: Mapping[str, str], host_cpus: int | Sequence[int], host_memory: int
) -> list[Write]:
    """Writes for the v2 controllers (cpu, cpuset, memory, pids); NotSupported for a
    limits.memory.swap.priority that cgroup2 cannot express."""
    lim = parse_limits(config, host_cpus, host_memory)
    _check_v2_swap_priority(lim)
    return [*_cpuset("cpuset.cpus", lim.cpus, ""), *_v2_cpu(lim), *_v2_memory(lim), *_pids(lim)]


def _cpuset(file: str, cpus: list[int] | None, reset: str) -> list[Write]:
    if cpus is None:
        return [Write("cpuset", file, reset, "limits.cpu", reset=True)]
    return [Write("cpuset", file, format_cpuset(cpus), "limits.cpu")]


def _v1_cpu(lim: Limits) -> list[Write]:
    key = "limits.cpu.allowance"
    # Quota first to -1 so a shorter period never trips the parent's bandwidth check.
    writes = [Write("cpu", "cpu.cfs_quota_us", "-1", key, reset=True)]
    if lim.quota is None:
        writes.append(Write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_DEFAULT), key, True))
    else:
        writes.append(Write("cpu", "cpu.cfs_period_us", str(lim.quota[1]), key))
        writes.append(Write("cpu", "cpu.cfs_quota_us", str(lim.quota[0]), key))
    writes.append(_weight(lim, "cpu.shares", V1_SHARES_DEFAULT, V1_SHARES_MIN))
    return writes


def _v2_cpu(lim: Limits) -> list[Write]:
    key = "limits.cpu.allowance"
    if lim.quota is None:
        cpu_max = Write("cpu", "cpu.max", f"max {CFS_PERIOD_DEFAULT}", key, reset=True)
    else:
        cpu_max = Write("cpu", "cpu.max", f"{lim.quota[0]} {lim.quota[1]}", key)
    return [cpu_max, _weight(lim, "cpu.weight", V2_WEIGHT_DEFAULT, V2_WEIGHT_MIN)]


def _weight(lim: Limits, file: str, full: int, floor: int) -> Write:
    """cpu.shares or cpu.weight as LXD 5.0's ParseCPU computes them: `full` scaled by a
    percentage allowance (a time quota or no allowance counts as 100%), minus
    `10 - limits.cpu.priority`, then raised to the smallest value the kernel takes (LXD
    stops at 0, which v1 clamps to 2 and v2 refuses)."""
    base = full * lim.shares_pct // 100 if lim.shares_pct is not None else full
    value = max(floor, base - (PRIORITY_DEFAULT - lim.cpu_priority))
    if lim.cpu_priority != PRIORITY_DEFAULT:
        return Write("cpu", file, str(value), "limits.cpu.priority")
    return Write("cpu", file, str(value), "limits.cpu.allowance",
                 reset=lim.shares_pct is None)


def _v1_memory(lim: Limits, memsw: bool) -> list[Write]:
    key = "limits.memory"
    hard = None if lim.memory is None or lim.memory_soft else str(lim.memory)
    soft = str(lim.memory) if lim.memory is not None and lim.memory_soft else None
    writes: list[Write] = []
    if memsw:
        # memsw must stay >= limit_in_bytes at every step: open it up first, narrow it last.
        writes.append(Write("memory", "memory.memsw.limit_in_bytes", "-1", key, reset=True))
    writes.append(_set_or_reset("memory", "memory.limit_in_bytes", hard, "-1", key))
    writes.append(_set_or_reset("memory", "memory.soft_limit_in_bytes", soft, "-1", key))
    if memsw and hard is not None and not lim.swap:
        writes.append(Write("memory", "memory.memsw.limit_in_bytes", hard, "limits.memory.swap"))
    writes.append(_v1_swappiness(lim))
    return writes


def _v1_swappiness(lim: Limits) -> Write:
    """memory.swappiness as LXD 5.0 sets it: 0 without swap (whatever the priority), else
    70 - limits.memory.swap.priority, so the maximum priority 10 is the default 60."""
    if not lim.swap:
        return Write("memory", "memory.swappiness", "0", "limits.memory.swap")
    value = SWAPPINESS_DEFAULT + PRIORITY_DEFAULT - lim.swap_priority
    return Write("memory", "memory.swappiness", str(value), "limits.memory.swap.priority",
                 reset=lim.swap_priority == PRIORITY_DEFAULT)


def _check_v2_swap_priority(lim: Limits) -> None:
    """cgroup2 has no memory.swappiness (cgroup-v2.rst lists none; LXD's SetMemorySwappiness
    answers ErrControllerMissing on V2 and LXD then skips the key silently): refuse a
    priority that would change anything. Without swap the priority is moot on both drivers
    (LXD writes swappiness 0 whatever it says; here memory.swap.max is 0)."""
    if lim.swap and lim.swap_priority != PRIORITY_DEFAULT:
        raise NotSupported("Cannot apply 'limits.memory.swap.priority': cgroup2 has no "
                           "memory.swappiness (only the default 10 is accepted)")


def _v2_memory(lim: Limits) -> list[Write]:
    key = "limits.memory"
    hard = None if lim.memory is None or lim.memory_soft else str(lim.memory)
    soft = str(lim.memory) if lim.memory is not None and lim.memory_soft else None
    return [
        _set_or_reset("memory", "memory.max", hard, "max", key),
        _set_or_reset("memory", "memory.high", soft, "max", key),
        _set_or_reset("memory", "memory.swap.max", None if lim.swap else "0", "max",
                      "limits.memory.swap"),
    ]


def _pids(lim: Limits) -> list[Write]:
    value = None if lim.processes is None else str(lim.processes)
    return [_set_or_reset("pids", "pids.max", value, "max", "limits.processes")]


def _set_or_reset(ctrl: str, file: str, value: str | None, reset: str, key: str) -> Write:
    if value is None:
        return Write(ctrl, file, reset, key, reset=True)
    return Write(ctrl, file, value, key)


def _keyed(key: str, config: Mapping[str, str], parse: Callable[[str], T]) -> T | None:
    """Parse config[key] when set; re-raise any parse error with the key name in front."""
    value = config.get(key)
    if value is None or value == "":
        return None
    try:
        return parse(value)
    except (InvalidConfig, ValueError) as err:
        raise InvalidConfig(f"Invalid value for '{key}': {err}") from err


def _pick_cpus(value: str, available: list[int]) -> list[int]:
    """A count takes the first N available CPUs (clamped); a set must be available."""
    parsed = parse_limits_cpu(value)
    if isinstance(parsed, int):
        return available[: max(1, min(parsed, len(available)))]
    missing = [cpu for cpu in parsed if cpu not in available]
    if missing:
        raise InvalidConfig(f"CPU {missing[0]} is not available (host has "
                            f"{format_cpuset(available)})")
    return parsed


def _memory(value: str, host_memory: int) -> int:
    size = parse_size_or_percent(value, host_memory)
    if size < 4096:
        raise InvalidConfig(f"'{value}' is below the 4KiB minimum")
    return size


def _enforce(value: str) -> str:
    if value not in ("hard", "soft"):
        raise InvalidConfig(f"'{value}' must be hard or soft")
    return value


def _priority(key: str, config: Mapping[str, str]) -> int:
    """An LXD priority key (0-10); unset or empty is the default 10."""
    value = _keyed(key, config, _priority_value)
    return PRIORITY_DEFAULT if value is None else value


def _priority_value(value: str) -> int:
    if not value.strip().isdigit() or int(value) > PRIORITY_DEFAULT:
        raise InvalidConfig(f"'{value}' must be an integer from 0 to 10")
    return int(value)


def _processes(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise InvalidConfig(f"'{value}' must be a positive integer")
    return int(value)
