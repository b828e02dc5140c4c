"""Metrics collection: the cgroup file parsers (v1 and v2), the read-only file lookup on fake
cgroup trees, and the pieces taken from the instance's state and mountinfo."""

from __future__ import annotations

from pathlib import Path

from lxmgr.api.metrics import CpuTime, DiskIO, NetworkCounters
from lxmgr.cgroups import base as cgroup_base
from lxmgr.cgroups.detect import Hierarchy, Layout
from lxmgr.instances import metrics_cgroup as mcg
from lxmgr.instances.metrics import build_networks, parse_root_mount

USAGE_ALL = "cpu user system\n0 1000000000 500000000\n1 250000000 0\n"
MEMORY_STAT_V1 = """cache 5
rss 6
total_cache 4096
total_rss 8192
total_shmem 1024
total_mapped_file 512
total_active_anon 100
total_inactive_anon 200
total_active_file 30
total_inactive_file 40
total_unevictable 0
"""
MEMORY_STAT_V2 = "anon 8192\nfile 4096\nshmem 1024\nactive_anon 100\ninactive_anon 200\n" \
    "active_file 30\ninactive_file 40\nslab_reclaimable 64\nfile_dirty 8\n"


def test_cpu_times() -> None:
    assert mcg.parse_usage_all(USAGE_ALL) == [
        CpuTime("0", "user", 1.0), CpuTime("0", "system", 0.5),
        CpuTime("1", "user", 0.25), CpuTime("1", "system", 0.0)]
    assert mcg.parse_cpu_stat_v2("usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n"
                                 ) == [CpuTime("0", "user", 2.0), CpuTime("0", "system", 1.0)]
    assert mcg.parse_cpuacct_stat("user 300\nsystem 100\n", 100) == [
        CpuTime("0", "user", 3.0), CpuTime("0", "system", 1.0)]


def test_memory_stat_uses_hierarchical_keys_on_v1() -> None:
    memory = mcg.parse_memory_stat(MEMORY_STAT_V1, v2=False)
    assert memory["Cached"] == 4096 and memory["RSS"] == 8192 and memory["Shmem"] == 1024
    assert memory["Active"] == 130 and memory["Inactive"] == 240
    assert "SReclaimable" not in memory


def test_memory_stat_v2_reports_anon_as_rss() -> None:
    memory = mcg.parse_memory_stat(MEMORY_STAT_V2, v2=True)
    assert memory["RSS"] == 8192 and memory["Cached"] == 4096
    assert memory["SReclaimable"] == 64 and memory["Dirty"] == 8
    assert memory["Active"] == 130 and memory["Inactive"] == 240


def test_block_io_v1_and_v2_skip_loop_devices() -> None:
    partitions = mcg.parse_partitions(
        "major minor  #blocks  name\n\n 254 0 268435456 vda\n   7 0 1024 loop0\n")
    assert partitions == {"254:0": "vda", "7:0": "loop0"}
    v1 = mcg.parse_blkio_v1(
        "254:0 Read 4096\n254:0 Write 8192\n254:0 Total 12288\n7:0 Read 1\nTotal 12289\n",
        "254:0 Read 1\n254:0 Write 2\n254:0 Total 3\nTotal 3\n")
    assert mcg.build_disks(v1, partitions) == [DiskIO("vda", 4096, 1, 8192, 2)]
    v2 = mcg.parse_io_stat("254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"
                           "7:0 rbytes=5 wbytes=0 rios=1 wios=0\n9:9 rbytes=1\n")
    assert mcg.build_disks(v2, partitions) == [DiskIO("vda", 10, 1, 20, 2)]


def _v1_driver(tmp_path: Path) -> cgroup_base.CgroupDriver:
    hierarchies = [Hierarchy(c, str(tmp_path / c), tuple(c.split(",")), 1)
                   for c in ("memory", "cpu,cpuacct", "cpuset")]
    for h in hierarchies:
        (Path(h.mountpoint) / "lxmgr" / "c1").mkdir(parents=True)
    return cgroup_base.load("v1", layout=Layout("legacy", hierarchies))


def test_files_are_found_through_the_driver_paths(tmp_path: Path) -> None:
    files = mcg.CgroupFiles(_v1_driver(tmp_path), "c1")
    (tmp_path / "cpu,cpuacct/lxmgr/c1/cpuacct.usage_all").write_text(USAGE_ALL)
    (tmp_path / "memory/lxmgr/c1/memory.limit_in_bytes").write_text("268435456\n")
    (tmp_path / "memory/lxmgr/c1/memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (tmp_path / "cpuset/lxmgr/c1/cpuset.effective_cpus").write_text("0-2,5\n")
    assert files.dir("cpuacct") == str(tmp_path / "cpu,cpuacct/lxmgr/c1")
    assert files.dir("pids") is None and files.read("pids", "pids.current") is None
    assert len(mcg.read_cpu_times(files)) == 4
    assert mcg.read_memory_limit(files) == 256 << 20
    assert mcg.read_oom_kills(files) == 2
    assert mcg.read_effective_cpus(files) == 4
    assert mcg.read_memory_stat(files) == {"Active": 0, "Inactive": 0}


def test_v2_files_need_the_controller_enabled(tmp_path: Path) -> None:
    top = tmp_path / "unified"
    (top / "lxmgr" / "c1").mkdir(parents=True)
    (top / "lxmgr/c1/cgroup.controllers").write_text("memory pids\n")
    (top / "lxmgr/c1/cpu.stat").write_text("usage_usec 3\nuser_usec 2\nsystem_usec 1\n")
    (top / "lxmgr/c1/memory.max").write_text("max\n")
    (top / "lxmgr/c1/memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    driver = cgroup_base.load("v2", layout=Layout("unified", [
        Hierarchy("", str(top), ("cpu", "memory", "pids"), 2)]))
    files = mcg.CgroupFiles(driver, "c1")
    assert files.v2 and files.dir("cpu") is None and files.dir("memory") is not None
    assert [t.seconds for t in mcg.read_cpu_times(files)] == [2e-6, 1e-6]
    assert mcg.read_memory_limit(files) == cgroup_base.host_memory_bytes()
    assert mcg.read_oom_kills(files) == 1


def test_unlimited_memory_is_capped_by_the_host(tmp_path: Path) -> None:
    files = mcg.CgroupFiles(_v1_driver(tmp_path), "c1")
    (tmp_path / "memory/lxmgr/c1/memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert mcg.read_memory_limit(files) == cgroup_base.host_memory_bytes()


def test_networks_from_state() -> None:
    state = {"eth1": {"counters": {"bytes_received": 10, "packets_sent": 2}},
             "eth0": {"counters": {"bytes_sent": 5, "packets_dropped_inbound": 1}},
             "eth2": {"counters": {}}}
    assert build_networks(state) == (
        NetworkCounters("eth0", transmit_bytes=5, receive_drop=1),
        NetworkCounters("eth1", receive_bytes=10, transmit_packets=2),
        NetworkCounters("eth2"))


def test_root_mount_is_the_topmost_at_slash() -> None:
    mountinfo = (
        "1 0 0:1 / / rw - rootfs rootfs rw\n"
        "20 1 0:35 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/a\n"
        "21 20 0:36 / /proc rw - proc proc rw\n")
    assert parse_root_mount(mountinfo) == ("overlay", "overlay")
    assert parse_root_mount("") == ("", "")
