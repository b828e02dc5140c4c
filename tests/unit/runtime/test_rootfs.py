"""/proc, /sys and cgroup mount plans, applying them through the recorder, pivot and the
rootfs guards (the kernel tier boots through the same guards; these stay light)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from lxmgr.errors import UnsafeRootfs
from lxmgr.linux import consts as c
from lxmgr.runtime.mounts import NOSUID_NODEV_NOEXEC, Bind, Mount, MountOp, apply_all
from lxmgr.runtime.plan import PROC_MASKED, RuntimePlan
from lxmgr.runtime.rootfs import (
    build_cgroup_ops,
    build_proc_sys_ops,
    check_pivoted,
    check_rootfs,
    pivot_into,
)
from tests.fakes.syscalls import RecordingSyscalls
from tests.unit.runtime.conftest import make_plan

R = "/var/lib/lxmgr/storage/dir/c1/rootfs"


def build_with_proc(plan: RuntimePlan, monkeypatch: pytest.MonkeyPatch,
                    exists: Callable[[str], bool] = lambda _path: True) -> list[MountOp]:
    """build_proc_sys_ops with the host's /proc entries decided by `exists`."""
    with monkeypatch.context() as m:
        m.setattr(os.path, "exists", exists)
        return build_proc_sys_ops(plan)


def test_proc_sys_ops_order(monkeypatch: pytest.MonkeyPatch) -> None:
    ops = build_with_proc(make_plan(R), monkeypatch)
    masks = [Bind("/dev/null", f"{R}/proc/{p}", is_file=True) for p in PROC_MASKED]
    assert ops == [
        Bind(R, R, recursive=True),
        Mount("proc", f"{R}/proc", NOSUID_NODEV_NOEXEC, None, "proc"),
        *masks,
        Bind(f"{R}/proc/sys/net", f"{R}/proc/sys/net"),
        Bind(f"{R}/proc/sys", f"{R}/proc/sys", readonly=True, recursive=True,
             extra_flags=NOSUID_NODEV_NOEXEC),
        Bind(f"{R}/proc/sysrq-trigger", f"{R}/proc/sysrq-trigger", readonly=True,
             is_file=True, extra_flags=NOSUID_NODEV_NOEXEC),
        Mount("sysfs", f"{R}/sys", c.MS_RDONLY | NOSUID_NODEV_NOEXEC, None, "sysfs"),
        Mount("cgroup2", f"{R}/sys/fs/cgroup", NOSUID_NODEV_NOEXEC, "nsdelegate", "cgroup2"),
    ]


def test_proc_sys_ops_skip_missing_proc_files(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = {"/proc/timer_stats", "/proc/sysrq-trigger"}
    ops = build_with_proc(make_plan(R), monkeypatch, lambda p: p not in missing)
    targets = [op.target for op in ops]
    assert f"{R}/proc/timer_stats" not in targets
    assert f"{R}/proc/sysrq-trigger" not in targets
    assert f"{R}/proc/kcore" in targets


def test_sysfs_is_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    sysfs = [op for op in build_with_proc(make_plan(R), monkeypatch)
             if isinstance(op, Mount) and op.fstype == "sysfs"]
    assert len(sysfs) == 1 and sysfs[0].flags & c.MS_RDONLY


def test_cgroup_ops_v1_hybrid() -> None:
    mounts = [("", "tmpfs", "mode=755,size=4096k"), ("unified", "cgroup2", ""),
              ("systemd", "cgroup", "none,name=systemd"), ("cpu", "cgroup", "cpu")]
    ops = build_cgroup_ops(make_plan(R, cgroup_mounts=mounts))
    cg = f"{R}/sys/fs/cgroup"
    assert ops == [
        Mount("tmpfs", cg, NOSUID_NODEV_NOEXEC, "mode=755,size=4096k", "tmpfs"),
        Mount("cgroup2", f"{cg}/unified", NOSUID_NODEV_NOEXEC, None, "cgroup2"),
        Mount("cgroup", f"{cg}/systemd", NOSUID_NODEV_NOEXEC, "none,name=systemd", "cgroup"),
        Mount("cgroup", f"{cg}/cpu", NOSUID_NODEV_NOEXEC, "cpu", "cgroup"),
    ]
    assert not any(op.flags & c.MS_RDONLY for op in ops)  # systemd remounts it itself


def test_apply_proc_sys_ops_records_mounts(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    r = str(tmp_path / "rootfs")
    os.mkdir(r)
    ops = build_with_proc(make_plan(r), monkeypatch)
    sc = RecordingSyscalls()
    apply_all(ops, sc)
    mounts = sc.named("mount")
    assert mounts[0] == (r, r, None, c.MS_BIND | c.MS_REC, None)
    assert mounts[1] == ("proc", f"{r}/proc", "proc", NOSUID_NODEV_NOEXEC, None)
    targets = [m[1] for m in mounts]
    for p in PROC_MASKED:
        assert ("/dev/null", f"{r}/proc/{p}", None, c.MS_BIND, None) in mounts
        assert targets.index(f"{r}/proc/{p}") > 1  # masks go on the new /proc
        assert (tmp_path / "rootfs" / "proc" / p).is_file()
    net = targets.index(f"{r}/proc/sys/net")
    sys_bind = mounts.index((f"{r}/proc/sys", f"{r}/proc/sys", None,
                             c.MS_BIND | c.MS_REC, None))
    assert net < sys_bind
    # The read-only remount follows its bind and repeats the locked flags.
    assert mounts[sys_bind + 1] == (None, f"{r}/proc/sys", None, c.MS_BIND | c.MS_REMOUNT
                                    | c.MS_RDONLY | NOSUID_NODEV_NOEXEC, None)
    assert ("sysfs", f"{r}/sys", "sysfs", c.MS_RDONLY | NOSUID_NODEV_NOEXEC, None) in mounts
    assert (tmp_path / "rootfs" / "sys" / "fs" / "cgroup").is_dir()
    assert {call.name for call in sc.calls} == {"mount"}


def test_apply_all_names_the_failing_step(tmp_path: Path) -> None:
    sc = RecordingSyscalls()
    sc.fail("mount", errno.EPERM, "proc")
    ops: list[MountOp] = [Mount("tmpfs", str(tmp_path / "a"), 0, None, "tmpfs"),
                          Mount("proc", str(tmp_path / "proc"), 0, None, "proc"),
                          Mount("sysfs", str(tmp_path / "sys"), 0, None, "sysfs")]
    with pytest.raises(OSError, match="Failed to mount -t proc") as info:
        apply_all(ops, sc)
    assert info.value.errno == errno.EPERM
    assert "Operation not permitted" in str(info.value)
    assert [m[0] for m in sc.named("mount")] == ["tmpfs", "proc"]  # stops at the failure


def test_pivot_into(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # pivot_into ends in "/"; monkeypatch restores our cwd
    sc = RecordingSyscalls()
    pivot_into(str(tmp_path), sc)
    assert [(call.name, call.args) for call in sc.calls] == [
        ("pivot_root", (".", ".")),
        ("umount2", (".", c.MNT_DETACH)),
    ]
    assert os.getcwd() == "/"


def test_check_pivoted() -> None:
    st = os.stat("/")
    with pytest.raises(UnsafeRootfs, match="host's root"):
        check_pivoted((st.st_dev, st.st_ino))
    check_pivoted((st.st_dev, st.st_ino + 1))


def guarded(storage: Path, rootfs: str) -> RuntimePlan:
    return make_plan(rootfs, storage_root=str(storage),
                     rootfs_spec={"kind": "bind", "target": rootfs, "source": rootfs})


def test_check_rootfs_accepts_private_dir(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    check_rootfs(guarded(tmp_path, str(tmp_path / "rootfs")))


def test_check_rootfs_refusals(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "file").write_text("")
    (tmp_path / "elsewhere").mkdir()
    (storage / "link").symlink_to(tmp_path / "elsewhere")
    cases = {
        "/": "host's root|outside",
        str(storage / "link"): "symlink",
        str(tmp_path / "elsewhere"): "outside the instance storage",
        str(storage): "outside the instance storage",
        str(storage / "file"): "not a directory",
        str(storage / "missing"): "does not exist",
        "relative/rootfs": "not an absolute path",
    }
    for rootfs, why in cases.items():
        with pytest.raises(UnsafeRootfs, match=why):
            check_rootfs(guarded(storage, rootfs))


def test_check_rootfs_refuses_host_root_as_lower(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    plan = guarded(tmp_path, str(tmp_path / "rootfs"))
    plan.rootfs_spec = {"kind": "overlay", "target": plan.rootfs, "lower": "/"}
    with pytest.raises(UnsafeRootfs, match="image rootfs '/'"):
        check_rootfs(plan)
