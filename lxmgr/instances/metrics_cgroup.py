"""READ-ONLY readers of an instance's cgroup files for the metrics and the instance state, on
v1 and v2 layouts.

What `CgroupDriver.usage()` does not give: CPU time per CPU and mode, memory.stat details,
the effective memory limit, the swap peak, OOM kills, effective CPUs and block I/O. The
files are found through the driver's public paths (`hierarchies`, `path()`); nothing here
writes, creates or removes anything. Parsers are pure (`parse_*`) and mirror LXD's
`lxd/cgroup/abstraction.go` (GetCPUAcctUsageAll, GetMemoryStats, GetOOMKills, GetIOStats,
GetEffectiveMemoryLimit, GetMemorySwapMaxUsage).
Imports lxmgr.api.metrics and lxmgr.cgroups; never runtime or daemon.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from lxmgr.api.metrics import CpuTime, DiskIO
from lxmgr.cgroups.base import CgroupDriver, host_memory_bytes, online_cpus, read_file
from lxmgr.cgroups.detect import read_controllers
from lxmgr.model.units import parse_cpuset

NS = 1_000_000_000

# memory.stat keys -> MEMORY_FIELDS. v1 has hierarchical `total_*` keys (children included),
# v2's keys are hierarchical already. v2 has no `rss`: `anon` is its equivalent (LXD leaves
# lxd_memory_RSS_bytes out on v2; we report anon there).
MEMORY_STAT_V1 = {
    "total_active_anon": "Active_anon", "total_active_file": "Active_file",
    "total_inactive_anon": "Inactive_anon", "total_inactive_file": "Inactive_file",
    "total_unevictable": "Unevictable", "total_writeback": "Writeback",
    "total_dirty": "Dirty", "total_mapped_file": "Mapped", "total_rss": "RSS",
    "total_shmem": "Shmem", "total_cache": "Cached",
    "total_slab_reclaimable": "SReclaimable",
}
MEMORY_STAT_V2 = {
    "active_anon": "Active_anon", "active_file": "Active_file",
    "inactive_anon": "Inactive_anon", "inactive_file": "Inactive_file",
    "unevictable": "Unevictable", "file_writeback": "Writeback", "file_dirty": "Dirty",
    "file_mapped": "Mapped", "anon": "RSS", "shmem": "Shmem", "file": "Cached",
    "slab_reclaimable": "SReclaimable",
}
LOOP_MAJOR = "7"  # loop devices are skipped, as LXD does


class CgroupFiles:
    """The files of one instance's cgroup, wherever the driver keeps each controller."""

    def __init__(self, driver: CgroupDriver, name: str) -> None:
        self.driver = driver
        self.name = name
        self.v2 = driver.name == "v2"

    def dir(self, controller: str) -> str | None:
        """The instance's directory carrying `controller` (v1 name, or v2's), or None;
        `""` asks for v2's core files (cpu.stat is there whatever the controllers)."""
        for h in self.driver.hierarchies:
            path = self.driver.path(h, self.name)
            if h.version == 1 and controller in h.controllers:
                return path
            if h.version == 2 and self.v2 and (controller == "" or
                                               controller in read_controllers(path)):
                return path
        return None

    def read(self, controller: str, file: str) -> str | None:
        """A file's content, or None when the controller or the file is missing."""
        directory = self.dir(controller)
        return read_file(os.path.join(directory, file)) if directory is not None else None


# -- pure parsers ---------------------------------------------------------------------------

def parse_keyed(text: str) -> dict[str, int]:
    """'key value' lines with integer values (memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_usage_all(text: str) -> list[CpuTime]:
    """cpuacct.usage_all ('cpu user system' header, then nanoseconds per CPU)."""
    out: list[CpuTime] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit():
            continue
        out.append(CpuTime(fields[0], "user", int(fields[1]) / NS))
        out.append(CpuTime(fields[0], "system", int(fields[2]) / NS))
    return out


def parse_cpu_stat_v2(text: str) -> list[CpuTime]:
    """cpu.stat user_usec/system_usec; v2 does not split by CPU, so cpu is "0" (as LXD)."""
    stat = parse_keyed(text)
    return [CpuTime("0", mode, stat[f"{mode}_usec"] / 1_000_000)
            for mode in ("user", "system") if f"{mode}_usec" in stat]


def parse_cpuacct_stat(text: str, ticks_per_second: int) -> list[CpuTime]:
    """cpuacct.stat (user/system in USER_HZ ticks), for kernels without usage_all."""
    stat = parse_keyed(text)
    return [CpuTime("0", mode, stat[mode] / ticks_per_second)
            for mode in ("user", "system") if mode in stat]


def parse_memory_stat(text: str, v2: bool) -> dict[str, int]:
    """memory.stat -> MEMORY_FIELDS values, with Active and Inactive summed as LXD does."""
    table = MEMORY_STAT_V2 if v2 else MEMORY_STAT_V1
    stat = parse_keyed(text)
    out = {ours: stat[theirs] for theirs, ours in table.items() if theirs in stat}
    for total in ("Active", "Inactive"):
        out[total] = out.get(f"{total}_anon", 0) + out.get(f"{total}_file", 0)
    return out


def parse_partitions(text: str) -> dict[str, str]:
    """/proc/partitions: 'major:minor' -> device name."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0].isdigit():
            out[f"{fields[0]}:{fields[1]}"] = fields[3]
    return out


def parse_blkio_v1(service_bytes: str, serviced: str) -> dict[str, list[int]]:
    """blkio.throttle.io_service_bytes/io_serviced -> dev -> [rbytes, rios, wbytes, wios]."""
    out: dict[str, list[int]] = {}
    for text, offset in ((service_bytes, 0), (serviced, 1)):
        for line in text.splitlines():
            fields = line.split()
            if len(fields) != 3 or fields[1] not in ("Read", "Write"):
                continue
            slot = offset + (0 if fields[1] == "Read" else 2)
            out.setdefault(fields[0], [0, 0, 0, 0])[slot] = int(fields[2])
    return out


def parse_io_stat(text: str) -> dict[str, list[int]]:
    """v2 io.stat ('8:0 rbytes=.. wbytes=.. rios=.. wios=..') -> dev -> [rb, rios, wb, wios]."""
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        stat = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        out[fields[0]] = [int(stat.get(k, 0)) for k in ("rbytes", "rios", "wbytes", "wios")]
    return out


def build_disks(io: Mapping[str, list[int]], partitions: Mapping[str, str]) -> list[DiskIO]:
    """DiskIO per named host disk; loop devices and unknown numbers are left out."""
    return [DiskIO(partitions[dev], *values) for dev, values in sorted(io.items())
            if dev in partitions and dev.split(":")[0] != LOOP_MAJOR]


# -- readers --------------------------------------------------------------------------------

def read_cpu_times(files: CgroupFiles) -> list[CpuTime]:
    """User and system seconds per CPU (v1) or for all CPUs as cpu "0" (v2)."""
    if files.v2:
        return parse_cpu_stat_v2(files.read("", "cpu.stat") or "")
    usage_all = files.read("cpuacct", "cpuacct.usage_all")
    if usage_all is not None:
        return parse_usage_all(usage_all)
    return parse_cpuacct_stat(files.read("cpuacct", "cpuacct.stat") or "",
                              os.sysconf("SC_CLK_TCK"))


def read_effective_cpus(files: CgroupFiles) -> int:
    """How many CPUs the instance may run on (its cpuset, else the host's online CPUs)."""
    name = "cpuset.cpus.effective" if files.v2 else "cpuset.effective_cpus"
    text = files.read("cpuset", name)
    return len(parse_cpuset(text)) if text else len(online_cpus())


def read_memory_stat(files: CgroupFiles) -> dict[str, int]:
    """memory.stat as MEMORY_FIELDS values ({} without the memory controller)."""
    return parse_memory_stat(files.read("memory", "memory.stat") or "", files.v2)


def read_memory_limit(files: CgroupFiles) -> int:
    """The effective limit: the cgroup's, capped by the host's memory (LXD's rule)."""
    file = "memory.max" if files.v2 else "memory.limit_in_bytes"
    text = files.read("memory", file)
    host = host_memory_bytes()
    if text is None or not text.isdigit():
        return host
    return min(int(text), host)


def read_swap_peak(files: CgroupFiles) -> int | None:
    """The most swap used at once: memory.swap.peak (v2, kernel 6.5+), or v1's
    memory.memsw.max_usage_in_bytes minus memory.max_usage_in_bytes (LXD's
    GetMemorySwapMaxUsage); None when the kernel does not tell."""
    if files.v2:
        text = files.read("memory", "memory.swap.peak")
        return int(text) if text and text.isdigit() else None
    memsw = files.read("memory", "memory.memsw.max_usage_in_bytes")
    memory = files.read("memory", "memory.max_usage_in_bytes")
    if not (memsw and memsw.isdigit() and memory and memory.isdigit()):
        return None
    return max(0, int(memsw) - int(memory))


def read_memory_state(files: CgroupFiles) -> dict[str, int]:
    """What LXD's InstanceState.memory adds to the driver's usage: `total` (the effective
    limit, instances_state_total) and `swap_usage_peak`; {} without a memory controller,
    as LXD's memoryState() leaves them at 0 then."""
    if files.dir("memory") is None:
        return {}
    return {"total": read_memory_limit(files), "swap_usage_peak": read_swap_peak(files) or 0}


def read_oom_kills(files: CgroupFiles) -> int | None:
    """oom_kill from memory.events (v2) or memory.oom_control (v1, kernel 4.13+)."""
    file = "memory.events" if files.v2 else "memory.oom_control"
    return parse_keyed(files.read("memory", file) or "").get("oom_kill")


def read_disks(files: CgroupFiles) -> list[DiskIO]:
    """Block I/O per host disk from io.stat (v2) or blkio.throttle.* (v1)."""
    if files.v2:
        io = parse_io_stat(files.read("io", "io.stat") or "")
    else:
        io = parse_blkio_v1(_blkio(files, "io_service_bytes"), _blkio(files, "io_serviced"))
    with open("/proc/partitions", encoding="ascii") as f:
        return build_disks(io, parse_partitions(f.read()))


def _blkio(files: CgroupFiles, what: str) -> str:
    recursive = files.read("blkio", f"blkio.throttle.{what}_recursive")
    if recursive is not None:
        return recursive
    return files.read("blkio", f"blkio.throttle.{what}") or ""
