"""PURE Prometheus text exposition (format 0.0.4) of instance metrics, with LXD's names.

A list of `InstanceMetrics` (one per running instance) goes in, the text `GET /1.0/metrics`
serves comes out. Family names, HELP texts and types are LXD's (`lxd/metrics/types.go`,
`metrics.go`): every instance sample carries `name`, `project` and `type` labels; families
come in LXD's order, each with one `# HELP` and one `# TYPE` line and all its samples
together, as the exposition format requires. Unlike LXD, label values are escaped.

Must not import anything but the stdlib; no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["counter", "gauge"]
Labels = Mapping[str, str]

_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Family:
    """One metric family: its name, type and help text."""

    name: str
    kind: Kind
    help: str


# LXD's memory.stat-derived gauges, `lxd_memory_<field>_bytes`, in LXD's order.
MEMORY_FIELDS: dict[str, str] = {
    "Active_anon": "The amount of anonymous memory on active LRU list.",
    "Active": "The amount of memory on active LRU list.",
    "Active_file": "The amount of file-backed memory on active LRU list.",
    "Cached": "The amount of cached memory.",
    "Dirty": "The amount of memory waiting to get written back to the disk.",
    "Inactive_anon": "The amount of anonymous memory on inactive LRU list.",
    "Inactive": "The amount of memory on inactive LRU list.",
    "Inactive_file": "The amount of file-backed memory on inactive LRU list.",
    "Mapped": "The amount of mapped memory.",
    "MemAvailable": "The amount of available memory.",
    "MemFree": "The amount of free memory.",
    "MemTotal": "The total amount of memory or configured memory limit.",
    "RSS": "The amount of anonymous and swap cache memory.",
    "Shmem": "The amount of cached filesystem data that is swap-backed.",
    "SReclaimable": "The amount of reclaimable slab memory.",
    "Swap": "The amount of used swap memory.",
    "Unevictable": "The amount of unevictable memory.",
    "Writeback": "The amount of memory queued for syncing to disk.",
}



def _memory_families(first: str, last: str) -> list[Family]:
    """The `lxd_memory_<field>_bytes` gauges from `first` to `last` of MEMORY_FIELDS."""
    keys = list(MEMORY_FIELDS)
    return [Family(f"lxd_memory_{key}_bytes", "gauge", MEMORY_FIELDS[key])
            for key in keys[keys.index(first):keys.index(last) + 1]]


_NET = "on a given interface."
FAMILIES: tuple[Family, ...] = (
    Family("lxd_cpu_seconds_total", "counter", "The total number of CPU time used in seconds."),
    Family("lxd_cpu_effective_total", "gauge", "The total number of effective CPUs."),
    Family("lxd_disk_read_bytes_total", "counter", "The total number of bytes read."),
    Family("lxd_disk_reads_completed_total", "counter", "The total number of completed reads."),
    Family("lxd_disk_written_bytes_total", "counter", "The total number of bytes written."),
    Family("lxd_disk_writes_completed_total", "counter",
           "The total number of completed writes."),
    Family("lxd_filesystem_avail_bytes", "gauge", "The number of available space in bytes."),
    Family("lxd_filesystem_free_bytes", "gauge", "The number of free space in bytes."),
    Family("lxd_filesystem_size_bytes", "gauge", "The size of the filesystem in bytes."),
    Family("lxd_instances", "gauge", "The number of instances."),
    *_memory_families("Active_anon", "MemTotal"),
    Family("lxd_memory_OOM_kills_total", "counter", "The number of out of memory kills."),
    *_memory_families("RSS", "Writeback"),
    Family("lxd_network_receive_bytes_total", "counter", f"The amount of received bytes {_NET}"),
    Family("lxd_network_receive_drop_total", "counter",
           f"The amount of received dropped bytes {_NET}"),
    Family("lxd_network_receive_errs_total", "counter", f"The amount of received errors {_NET}"),
    Family("lxd_network_receive_packets_total", "counter",
           f"The amount of received packets {_NET}"),
    Family("lxd_network_transmit_bytes_total", "counter",
           f"The amount of transmitted bytes {_NET}"),
    Family("lxd_network_transmit_drop_total", "counter",
           f"The amount of transmitted dropped bytes {_NET}"),
    Family("lxd_network_transmit_errs_total", "counter",
           f"The amount of transmitted errors {_NET}"),
    Family("lxd_network_transmit_packets_total", "counter",
           f"The amount of transmitted packets {_NET}"),
    # A gauge although it ends in _total: the count goes down (LXD's choice, kept for its name).
    Family("lxd_procs_total", "gauge", "The number of running processes."),
)
FAMILY_BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}


@dataclass(frozen=True)
class CpuTime:
    """CPU time of one mode (user, system) on one CPU ("0" when the kernel does not split)."""

    cpu: str
    mode: str
    seconds: float


@dataclass(frozen=True)
class DiskIO:
    """Block I/O of the instance on one host disk."""

    device: str
    read_bytes: int
    reads_completed: int
    written_bytes: int
    writes_completed: int


@dataclass(frozen=True)
class Filesystem:
    """Space of one filesystem the instance sees at `mountpoint`."""

    device: str
    mountpoint: str
    fstype: str
    size_bytes: int
    avail_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class NetworkCounters:
    """Interface counters of one NIC as seen inside the instance."""

    device: str
    receive_bytes: int = 0
    receive_packets: int = 0
    receive_errs: int = 0
    receive_drop: int = 0
    transmit_bytes: int = 0
    transmit_packets: int = 0
    transmit_errs: int = 0
    transmit_drop: int = 0


@dataclass(frozen=True)
class InstanceMetrics:
    """One running instance's sample; None or empty means "not measured here" (omitted)."""

    name: str
    project: str = "default"
    type: str = "container"
    cpu: tuple[CpuTime, ...] = ()
    cpus: int | None = None
    memory: Mapping[str, int] = field(default_factory=dict)  # MEMORY_FIELDS key -> bytes
    oom_kills: int | None = None
    disks: tuple[DiskIO, ...] = ()
    filesystems: tuple[Filesystem, ...] = ()
    networks: tuple[NetworkCounters, ...] = ()
    processes: int | None = None


Row = tuple[str, Labels, float]  # (family name, sample labels, value)


def build_rows(inst: InstanceMetrics) -> list[Row]:
    """Every sample of one instance, its identity labels added to each."""
    ident = {"name": inst.name, "project": inst.project, "type": inst.type}
    rows = [*_cpu_rows(inst), *_memory_rows(inst), *_disk_rows(inst), *_fs_rows(inst),
            *_network_rows(inst)]
    if inst.processes is not None:
        rows.append(("lxd_procs_total", {}, inst.processes))
    return [(family, {**labels, **ident}, value) for family, labels, value in rows]


def _cpu_rows(inst: InstanceMetrics) -> Iterator[Row]:
    for t in inst.cpu:
        yield "lxd_cpu_seconds_total", {"cpu": t.cpu, "mode": t.mode}, t.seconds
    if inst.cpus is not None:
        yield "lxd_cpu_effective_total", {}, inst.cpus


def _memory_rows(inst: InstanceMetrics) -> Iterator[Row]:
    for key, value in inst.memory.items():
        if key not in MEMORY_FIELDS:
            raise ValueError(f"Unknown memory metric '{key}'")
        yield f"lxd_memory_{key}_bytes", {}, value
    if inst.oom_kills is not None:
        yield "lxd_memory_OOM_kills_total", {}, inst.oom_kills


def _disk_rows(inst: InstanceMetrics) -> Iterator[Row]:
    for d in inst.disks:
        labels = {"device": d.device}
        yield "lxd_disk_read_bytes_total", labels, d.read_bytes
        yield "lxd_disk_reads_completed_total", labels, d.reads_completed
        yield "lxd_disk_written_bytes_total", labels, d.written_bytes
        yield "lxd_disk_writes_completed_total", labels, d.writes_completed


def _fs_rows(inst: InstanceMetrics) -> Iterator[Row]:
    for f in inst.filesystems:
        labels = {"device": f.device, "fstype": f.fstype, "mountpoint": f.mountpoint}
        yield "lxd_filesystem_avail_bytes", labels, f.avail_bytes
        yield "lxd_filesystem_free_bytes", labels, f.free_bytes
        yield "lxd_filesystem_size_bytes", labels, f.size_bytes


def _network_rows(inst: InstanceMetrics) -> Iterator[Row]:
    for n in inst.networks:
        labels = {"device": n.device}
        for direction in ("receive", "transmit"):
            for what in ("bytes", "drop", "errs", "packets"):
                value = getattr(n, f"{direction}_{what}")
                yield f"lxd_network_{direction}_{what}_total", labels, value


def build_instance_counts(counts: Mapping[tuple[str, str], int]) -> list[Row]:
    """`lxd_instances{project,type}` rows from (project, type) -> number of instances."""
    return [("lxd_instances", {"project": project, "type": kind}, value)
            for (project, kind), value in sorted(counts.items())]


def render_metrics(instances: Sequence[InstanceMetrics],
                   counts: Mapping[tuple[str, str], int] | None = None) -> str:
    """The exposition text: families in LXD's order, HELP and TYPE once per family present."""
    grouped: dict[str, list[tuple[Labels, float]]] = {}
    rows = build_instance_counts(counts or {})
    for inst in instances:
        rows.extend(build_rows(inst))
    for family, labels, value in rows:
        grouped.setdefault(family, []).append((labels, value))
    lines: list[str] = []
    for fam in FAMILIES:
        if fam.name in grouped:
            lines.extend(render_family(fam, grouped[fam.name]))
    return "".join(line + "\n" for line in lines)


def render_family(fam: Family, samples: Sequence[tuple[Labels, float]]) -> list[str]:
    """HELP, TYPE and one line per sample of one family."""
    if not _METRIC_NAME_RE.match(fam.name):
        raise ValueError(f"Invalid metric name '{fam.name}'")
    return [f"# HELP {fam.name} {escape_help(fam.help)}", f"# TYPE {fam.name} {fam.kind}",
            *(render_sample(fam.name, labels, value) for labels, value in samples)]


def render_sample(name: str, labels: Labels, value: float) -> str:
    """`name{a="x",b="y"} value`, label names sorted (as LXD), values escaped."""
    for key in labels:
        if not _LABEL_NAME_RE.match(key) or key.startswith("__"):
            raise ValueError(f"Invalid label name '{key}'")
    if not labels:
        return f"{name} {format_value(value)}"
    text = ",".join(f'{key}="{escape_label_value(labels[key])}"' for key in sorted(labels))
    return f"{name}{{{text}}} {format_value(value)}"


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed escaped, as the text format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Backslash and line feed escaped (quotes stay as they are in HELP)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Integers without a fraction, other floats in Go's ParseFloat syntax, NaN and +-Inf."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))
