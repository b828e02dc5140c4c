"""Which lxcfs files a container gets (LXC's lxcfs mount hook), the ops that bind them in the
container's init, and a plan without lxcfs booting as before. The real binds and what they
show inside are in tests/kernel/test_lxcfs.py."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from lxmgr.linux import consts as c
from lxmgr.runtime import lxcfs
from lxmgr.runtime.mounts import Bind, Mount, apply_all
from lxmgr.runtime.plan import RuntimePlan
from lxmgr.runtime.rootfs import build_lxcfs_ops, build_proc_sys_ops
from tests.fakes.syscalls import RecordingSyscalls
from tests.unit.runtime.conftest import make_plan

R = "/var/lib/lxmgr/storage/dir/c1/rootfs"
L = "/var/lib/lxmgr/lxcfs"
# What lxcfs 5.0.3 lists (readdir of its sys/devices/system/cpu repeats '.', '..', 'online').
PROC = ["cpuinfo", "diskstats", "loadavg", "meminfo", "slabinfo", "stat", "swaps", "uptime"]
CPU = [".", ".", "..", "..", "cpu0", "cpu1", "cpufreq", "cpuidle", "enabled", "hotplug",
       "isolated", "kernel_max", "modalias", "offline", "online", "online", "possible",
       "power", "present", "smt", "uevent", "vulnerabilities"]


def test_binds_follow_the_lxc_hook_proc_sorted_then_the_cpu_directory() -> None:
    binds = lxcfs.build_binds(L + "/", reversed(PROC), CPU)
    assert binds == [[f"{L}/proc/{n}", f"/proc/{n}"] for n in PROC] + \
        [[f"{L}/sys/devices/system/cpu", "/sys/devices/system/cpu"]]


def test_cpu_entries_one_by_one_without_uevent() -> None:
    binds = lxcfs.build_binds(L, ["meminfo"], ["online", "online", "cpu0", ".."])
    assert binds == [[f"{L}/proc/meminfo", "/proc/meminfo"],
                     [f"{L}/sys/devices/system/cpu/cpu0", "/sys/devices/system/cpu/cpu0"],
                     [f"{L}/sys/devices/system/cpu/online", "/sys/devices/system/cpu/online"]]


def test_scan_lists_a_mounted_tree(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    for name in ("uptime", "meminfo"):
        (tmp_path / "proc" / name).write_text("")
    assert lxcfs.scan(str(tmp_path)) == [[f"{tmp_path}/proc/meminfo", "/proc/meminfo"],
                                         [f"{tmp_path}/proc/uptime", "/proc/uptime"]]


def test_parse_mounts_keeps_only_lxcfs_and_unescapes() -> None:
    text = (
        "68 27 0:43 / /tmp/a\\040b/mnt rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs "
        "rw,user_id=0,group_id=0,allow_other\n"
        "69 27 0:44 / /var/lib/lxcfs rw shared:5 - fuse.lxcfs lxcfs rw,allow_other\n"
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "70 27 0:45 / /mnt/x rw - fuse.sshfs host: rw\n")
    assert lxcfs.parse_mounts(text) == ["/tmp/a b/mnt", "/var/lib/lxcfs"]


def test_unusable_says_why(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("")
    assert lxcfs.unusable(str(tmp_path / "meminfo")) is None
    why = lxcfs.unusable(str(tmp_path / "gone"))
    assert why == f"{tmp_path}/gone: No such file or directory"


def _plan_with(source_root: str) -> RuntimePlan:
    plan = make_plan(R)
    plan.lxcfs = lxcfs.build_binds(source_root, ["meminfo", "uptime", "nosuchfile"], CPU)
    return plan


def test_ops_bind_over_the_kernel_files_after_cgroups(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("")
    ops = build_proc_sys_ops(_plan_with(str(tmp_path)))
    cgroup = next(i for i, op in enumerate(ops) if isinstance(op, Mount) and
                  op.target == f"{R}/sys/fs/cgroup")
    assert ops[cgroup + 1:] == [
        Bind(f"{tmp_path}/proc/meminfo", f"{R}/proc/meminfo", is_file=True),
        Bind(f"{tmp_path}/proc/uptime", f"{R}/proc/uptime", is_file=True),
        # /proc/nosuchfile: the kernel has none, so neither has the container's /proc
        Bind(f"{tmp_path}/sys/devices/system/cpu", f"{R}/sys/devices/system/cpu"),
    ]


def test_a_plan_without_lxcfs_boots_as_before() -> None:
    plan = make_plan(R)
    assert plan.lxcfs == []
    assert build_lxcfs_ops(plan) == []
    assert not any("lxcfs" in op.describe() for op in build_proc_sys_ops(plan))
    # a plan written before the field existed (a supervisor.json of a running container)
    data = plan.to_json().replace('"lxcfs": [],', "")
    assert '"lxcfs"' not in data and RuntimePlan.from_json(data).lxcfs == []


def test_plan_carries_the_binds_through_json(tmp_path: Path) -> None:
    plan = _plan_with(str(tmp_path))
    assert RuntimePlan.from_json(plan.to_json()).lxcfs == plan.lxcfs


def test_a_dead_lxcfs_gives_no_binds_and_a_warning(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    plan = _plan_with(str(tmp_path / "dead"))  # its meminfo does not answer
    with caplog.at_level(logging.WARNING, logger="lxmgr.runtime.rootfs"):
        assert build_lxcfs_ops(plan) == []
    assert caplog.messages == [
        f"Container c1 boots without lxcfs (it sees the host's /proc files): "
        f"{tmp_path}/dead/proc/meminfo: No such file or directory"]


def test_apply_binds_each_file(tmp_path: Path) -> None:
    src = tmp_path / "lxcfs"
    (src / "proc").mkdir(parents=True)
    (src / "proc" / "meminfo").write_text("")
    root = tmp_path / "rootfs"
    (root / "proc").mkdir(parents=True)
    (root / "sys/devices/system/cpu").mkdir(parents=True)
    plan = make_plan(str(root))
    plan.lxcfs = lxcfs.build_binds(str(src), ["meminfo"], ["uevent"])
    sc = RecordingSyscalls()
    apply_all(build_lxcfs_ops(plan), sc, root=str(root))
    assert sc.named("mount") == [
        (f"{src}/proc/meminfo", f"{root}/proc/meminfo", None, c.MS_BIND, None),
        (f"{src}/sys/devices/system/cpu", f"{root}/sys/devices/system/cpu", None, c.MS_BIND,
         None)]
    assert os.path.isfile(root / "proc/meminfo")  # the mount point made for the file
