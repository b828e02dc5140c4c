"""Collect the samples behind `GET /1.0/metrics` from the Manager: one InstanceMetrics per
running (or frozen) instance, as LXD only measures running instances.

Sources: `Manager.state()` (supervisor pid, processes, NIC counters read inside the
container), the cgroup driver's `usage()` and the read-only readers of metrics_cgroup.py, and
statvfs of the container's root as its init sees it (`/proc/<pid>/root`). Synchronous and
blocking (netns switches, file reads): the daemon runs it in a worker thread. A part that
cannot be read is left out of the sample with a warning; an instance that stops meanwhile
is left out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from lxmgr.api.metrics import Filesystem, InstanceMetrics, NetworkCounters, render_metrics
from lxmgr.errors import LxmgrError
from lxmgr.instances import metrics_cgroup as mcg
from lxmgr.model.project import DEFAULT, display, storage_parts

if TYPE_CHECKING:
    from lxmgr.instances.manager import Manager

log = logging.getLogger(__name__)

T = TypeVar("T")
MEASURED = ("Running", "Frozen")
# Our NIC counters (LXD's state.network names) -> NetworkCounters fields.
NIC_COUNTERS = {
    "bytes_received": "receive_bytes", "packets_received": "receive_packets",
    "errors_received": "receive_errs", "packets_dropped_inbound": "receive_drop",
    "bytes_sent": "transmit_bytes", "packets_sent": "transmit_packets",
    "errors_sent": "transmit_errs", "packets_dropped_outbound": "transmit_drop",
}


def render_scrape(manager: Manager, project: str | None = None) -> str:
    """The whole exposition text for the daemon's `/1.0/metrics`: of one project's
    instances, or (None) of every project's, each sample labelled with its project."""
    names = [n for n in manager.list() if project is None or storage_parts(n)[0] == project]
    samples = [s for s in (collect_instance(manager, name) for name in names) if s]
    counts: dict[tuple[str, str], int] = {}
    for name in names:
        key = (storage_parts(name)[0], "container")
        counts[key] = counts.get(key, 0) + 1
    for each in {p for p, _kind in counts} or {project or DEFAULT}:
        counts.setdefault((each, "container"), 0)
        counts[(each, "virtual-machine")] = 0
    return render_metrics(samples, counts)


def collect_instance(manager: Manager, name: str) -> InstanceMetrics | None:
    """One instance's sample; None when it is not running (or stops while measured)."""
    try:
        state = manager.state(name)
    except (LxmgrError, OSError) as err:
        log.debug("No metrics for '%s': %s", name, err)
        return None
    if state["status"] not in MEASURED:
        return None
    files = mcg.CgroupFiles(manager.cgroups, name)
    return InstanceMetrics(
        name=display(name), project=storage_parts(name)[0], type="container",
        cpu=tuple(_part(name, "CPU time", lambda: mcg.read_cpu_times(files), [])),
        cpus=_part(name, "effective CPUs", lambda: mcg.read_effective_cpus(files), None),
        memory=_part(name, "memory", lambda: build_memory(manager, files), {}),
        oom_kills=_part(name, "OOM kills", lambda: mcg.read_oom_kills(files), None),
        disks=tuple(_part(name, "disk I/O", lambda: mcg.read_disks(files), [])),
        filesystems=tuple(_part(name, "filesystem", lambda: read_root_fs(state["pid"]), [])),
        networks=build_networks(state.get("network") or {}),
        processes=int(state["processes"]),
    )


def _part(name: str, what: str, read: Callable[[], T], default: T) -> T:
    """`read()`, or `default` with a warning when the kernel files are not there."""
    try:
        return read()
    except (LxmgrError, OSError, ValueError) as err:
        log.warning("Failed getting %s of '%s' for metrics: %s", what, name, err)
        return default


def build_memory(manager: Manager, files: mcg.CgroupFiles) -> dict[str, int]:
    """memory.stat details plus LXD's MemTotal/MemFree/MemAvailable and Swap."""
    memory = mcg.read_memory_stat(files)
    usage = manager.cgroups.usage(files.name)
    limit = mcg.read_memory_limit(files)
    free = max(0, limit - usage.memory_bytes)
    memory.update(MemTotal=limit, MemFree=free,
                  # as LXD: free plus what the kernel can reclaim without swapping
                  MemAvailable=free + memory.get("Cached", 0) + memory.get("SReclaimable", 0))
    if usage.swap_bytes is not None:
        memory["Swap"] = max(0, usage.swap_bytes)
    return memory


def build_networks(network: dict[str, Any]) -> tuple[NetworkCounters, ...]:
    """NetworkCounters from state.network (NICs only; counters are read inside)."""
    out = []
    for device, nic in sorted(network.items()):
        counters = nic.get("counters") or {}
        out.append(NetworkCounters(device, **{ours: int(counters.get(theirs, 0))
                                              for theirs, ours in NIC_COUNTERS.items()}))
    return tuple(out)


def read_root_fs(pid: int) -> list[Filesystem]:
    """Space of the root filesystem the container's init sees, labelled from its mountinfo."""
    st = os.statvfs(f"/proc/{pid}/root")
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="replace") as f:
        device, fstype = parse_root_mount(f.read())
    return [Filesystem(device=device, mountpoint="/", fstype=fstype,
                       size_bytes=st.f_blocks * st.f_frsize,
                       avail_bytes=st.f_bavail * st.f_frsize,
                       free_bytes=st.f_bfree * st.f_frsize)]


def parse_root_mount(mountinfo: str) -> tuple[str, str]:
    """(source, fstype) of the topmost mount at '/' in a mountinfo text."""
    found = ("", "")
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 7 or fields[4] != "/" or "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        if len(fields) > dash + 2:
            found = (fields[dash + 2], fields[dash + 1])
    return found
