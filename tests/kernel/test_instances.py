"""Creating and starting instances: storage drivers, id maps, privileged mode, the rootfs
guards and bad input, each leaving nothing behind."""

from __future__ import annotations

import os
import shutil

import pytest

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotFound, UnsafeRootfs
from lxmgr.instances.host import check_host
from lxmgr.runtime import child
from lxmgr.runtime.plan import build_plan
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


def host_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(ln for ln in f if ln.startswith("Uid:")).split()[1])


def nothing_left(manager, name: str) -> bool:  # type: ignore[no-untyped-def]
    return (not paths.instance_dir(name).exists() and not manager.cgroups.exists(name)
            and not any((paths.storage_dir() / d / name).exists() for d in ("dir", "overlay")))


def test_overlay_create_is_constant_time_and_copies_nothing(manager, debian_image) -> None:  # type: ignore[no-untyped-def]
    manager.create("ov1", "debian")
    upper = paths.storage_dir() / "overlay" / "ov1" / "upper"
    written = sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))
    assert written == ["etc", "etc/hostname", "etc/hosts"]  # only the instance's own files
    manager.delete("ov1")
    assert nothing_left(manager, "ov1")
    assert debian_image.rootfs.joinpath("usr/lib/systemd/systemd").exists()


def test_dir_driver_boots_a_full_copy(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("dir1", "debian", storage="dir")
    manager.start("dir1")
    assert wait_running(manager, "dir1") == "running"
    _, out, _ = exec_out(manager, "dir1", ["stat", "-c", "%u", "/etc/passwd"])
    assert out.strip() == "0"
    manager.delete("dir1", force=True)
    assert nothing_left(manager, "dir1")


def test_isolated_idmaps_do_not_overlap(manager) -> None:  # type: ignore[no-untyped-def]
    bases = []
    for name in ("iso1", "iso2", "shared"):
        config = {} if name == "shared" else {"security.idmap.isolated": "true"}
        manager.create(name, "debian", config=config)
        manager.start(name)
        bases.append(host_uid(manager.state(name)["pid"]))
    assert len(set(bases)) == 3
    assert all(abs(a - b) >= 65536 for a in bases for b in bases if a != b)
    assert wait_running(manager, "iso2") == "running"


def test_privileged_is_supported(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("priv", "debian", config={"security.privileged": "true"})
    manager.start("priv")
    pid = manager.state("priv")["pid"]
    assert host_uid(pid) == 0
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")
    assert wait_running(manager, "priv") in ("running", "degraded")
    with open(f"/proc/{pid}/status") as f:
        bounding = int(next(ln for ln in f if ln.startswith("CapBnd:")).split()[1], 16)
    assert not bounding & (1 << 16) and not bounding & (1 << 25)  # sys_module, sys_time


def test_bad_input_is_refused_with_nothing_left(manager) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound, match="nosuchimage"):
        manager.create("x1", "nosuchimage")
    with pytest.raises(InvalidConfig, match="limits.processes"):
        manager.create("x1", "debian", config={"limits.processes": "many"})
    with pytest.raises(InvalidConfig, match="bogus.key"):
        manager.create("x1", "debian", config={"bogus.key": "1"})
    with pytest.raises(InvalidConfig):
        manager.create("1bad", "debian")
    with pytest.raises(NotFound, match="nosuchprofile"):
        manager.create("x1", "debian", profiles=["nosuchprofile"])
    assert nothing_left(manager, "x1") and manager.list() == []
    manager.create("x1", "debian")
    with pytest.raises(Conflict):
        manager.create("x1", "debian")
    manager.start("x1")
    with pytest.raises(Conflict, match="already running"):
        manager.start("x1")
    with pytest.raises(Conflict, match="running"):
        manager.delete("x1")
    with pytest.raises(NotFound):
        manager.start("nosuchinstance")


def test_rootfs_without_init_is_refused(manager) -> None:  # type: ignore[no-untyped-def]
    manager.create("noinit", "debian", storage="dir")
    rootfs = paths.storage_dir() / "dir" / "noinit" / "rootfs"
    os.unlink(rootfs / "usr/sbin/init")
    with pytest.raises(InvalidConfig, match="/sbin/init"):
        manager.start("noinit")
    assert not manager.cgroups.exists("noinit")
    assert manager.state("noinit")["status"] == "Stopped"


def unsafe_plan(tmp_path, rootfs: str, storage_root: str, kind: str = "bind"):  # type: ignore[no-untyped-def]
    spec = {"kind": kind, "target": rootfs, "lower": "/" if kind == "overlay" else "",
            "upper": "", "work": "", "source": rootfs, "idmap_lower": False}
    return build_plan(name="unsafe", uuid="u", config={}, storage_root=storage_root,
                      rootfs=rootfs, rootfs_spec=spec, idmap=None,
                      init_target="/lib/systemd/systemd", cgroup_procs=[], cgroup_mounts=[])


def test_runtime_refuses_unsafe_rootfs_before_anything_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    consoles = child.Consoles("/dev/null", [])
    storage = tmp_path / "vol"
    (storage / "rootfs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink("/", storage / "link")
    cases = [
        ("/", str(storage), "host's root"),
        (str(storage / "link"), str(storage), "symlink"),
        (str(tmp_path / "elsewhere"), str(storage), "outside"),
        (str(storage), str(storage), "outside"),
    ]
    before = set(os.listdir("/proc"))
    for rootfs, root, why in cases:
        with pytest.raises(UnsafeRootfs, match=why):
            child.start(unsafe_plan(tmp_path, rootfs, root), consoles)
    with pytest.raises(UnsafeRootfs, match="host's root"):
        child.start(unsafe_plan(tmp_path, str(storage / "rootfs"), str(storage), "overlay"),
                    consoles)
    with open(f"/proc/self/task/{os.getpid()}/children") as f:
        assert f.read().split() == []  # nothing was forked
    assert before is not None
    shutil.rmtree(storage)


def test_host_readiness() -> None:
    checks = {c.name: c for c in check_host()}
    for name in ("user namespaces", "overlayfs", "idmapped mounts", "cgroups",
                 "subordinate ids"):
        assert checks[name].ok, checks[name]


def test_planted_mount_target_symlink_is_refused(manager, container) -> None:  # type: ignore[no-untyped-def]
    # Container root may unmount its own /proc and plant a symlink for the next boot.
    code, _, err = exec_out(manager, container, [
        "sh", "-c", "umount -l /proc && rmdir /proc && ln -s /tmp /proc"])
    assert code == 0, err
    manager.stop(container, force=True)
    with pytest.raises(Exception, match="Refusing to mount on /proc: it is a symlink"):
        manager.start(container)
    assert not manager.cgroups.exists(container)
    assert manager.state(container)["status"] == "Stopped"
