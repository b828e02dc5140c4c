"""unix-char devices and the device access list on real containers: nodes at boot with
uid/gid/mode as seen inside (the host node owned by the mapped ids, as LXD makes it),
hot-plugged and unplugged live (also across a reboot from inside), and nodes the list
does not allow staying unusable even when a disk device brings them in.

Harmless nodes only: char 1:3 (/dev/null) under another name, and char 60:N (a major
reserved for local use, no driver): the list allowing it makes open() fail with ENXIO
("No such device or address"), the list refusing it with EPERM ("Operation not
permitted") before any driver is asked."""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path

import pytest

from lxmgr import paths
from lxmgr.cgroups.devices import attached_programs
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel

ALLOWED_NO_DRIVER = "No such device or address"
REFUSED = "Operation not permitted"
LOCAL0 = {"type": "unix-char", "path": "/dev/local0", "major": "60", "minor": "0",
          "mode": "0666"}


@pytest.fixture
def share(tmp_path: Path) -> Path:
    """A host directory holding nodes, for a disk device: 60:0, 60:1 and null (1:3)."""
    src = tmp_path / "share"
    src.mkdir()
    for name, minor in (("local0", 0), ("local1", 1)):
        os.mknod(src / name, stat.S_IFCHR | 0o666, os.makedev(60, minor))
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for node in src.iterdir():
        os.chmod(node, 0o666)  # mknod applied the umask
    return src


def _open(mgr, name: str, path: str) -> str:  # type: ignore[no-untyped-def]
    """'ok', or dd's reason for not opening path read-write inside the container."""
    code, _, err = exec_out(mgr, name, ["dd", f"if={path}", f"of={path}", "count=0",
                                        "conv=notrunc", "status=none"])
    return "ok" if code == 0 else err.strip()


def _cgroup_dirs(mgr, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The container's cgroup in the devices hierarchy and the cgroup2 tree, when present."""
    dirs = {}
    for h in mgr.cgroups.hierarchies:
        if "devices" in h.controllers:
            dirs["v1"] = mgr.cgroups.path(h, name)
        elif h.version == 2:
            dirs["v2"] = mgr.cgroups.path(h, name)
    return dirs


def _new(mgr, devices: dict[str, dict[str, str]]) -> str:  # type: ignore[no-untyped-def]
    name = f"u{uuid.uuid4().hex[:8]}"
    mgr.create(name, "debian", devices=devices)
    return name


def test_nodes_at_boot_owner_mode_and_access_list(manager, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 share: Path) -> None:
    os.mknod(tmp_path / "nullalias", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    name = _new(manager, {
        "alias": {"type": "unix-char", "source": str(tmp_path / "nullalias"),
                  "path": "/dev/mynull", "uid": "1000", "gid": "1000", "mode": "0620"},
        "local": LOCAL0,
        "blk": {"type": "unix-block", "path": "/dev/blk0", "major": "60", "minor": "5"},
        "share": {"type": "disk", "source": str(share), "path": "/mnt/share"},
    })
    manager.start(name)
    assert wait_running(manager, name) == "running"
    code, out, err = exec_out(manager, name, ["stat", "-c", "%t:%T %u:%g %a %F",
                                              "/dev/mynull", "/dev/local0", "/dev/blk0"])
    assert code == 0, err
    assert out.split("\n")[:3] == ["1:3 1000:1000 620 character special file",
                                   "3c:0 0:0 666 character special file",
                                   "3c:5 0:0 660 block special file"]  # LXD's default mode
    assert _open(manager, name, "/dev/blk0").endswith(ALLOWED_NO_DRIVER)
    # mode 0620 for 1000:1000: the owner writes, a stranger is refused by the mode.
    code, _, err = exec_out(manager, name, [
        "setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
        "sh", "-c", "echo hi > /dev/mynull"])
    assert code == 0, err
    code, _, err = exec_out(manager, name, [
        "setpriv", "--reuid", "2000", "--regid", "2000", "--clear-groups",
        "cat", "/dev/mynull"])
    assert code != 0 and "Permission denied" in err
    # The host node LXD-style: in the instance's devices dir, owned by the mapped ids.
    idmap = manager._idmap(manager.get(name))
    host = paths.instance_dir(name) / "devices" / "alias" / "dev-mynull"
    st = host.stat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        idmap.uid_base + 1000, idmap.gid_base + 1000, 0o620)
    # The access list: the device's node is allowed (no driver: ENXIO); the same major's
    # next minor, brought in by a disk device, is refused; null is allowed by default.
    assert _open(manager, name, "/dev/local0").endswith(ALLOWED_NO_DRIVER)
    assert _open(manager, name, "/mnt/share/local0").endswith(ALLOWED_NO_DRIVER)
    assert _open(manager, name, "/mnt/share/local1").endswith(REFUSED)
    assert _open(manager, name, "/mnt/share/null") == "ok"
    dirs = _cgroup_dirs(manager, name)
    if "v1" in dirs:
        listed = Path(dirs["v1"], "devices.list").read_text().split("\n")
        assert "c 60:0 rwm" in listed and "b 60:5 rwm" in listed and "c 1:3 rwm" in listed
        assert not any(line.startswith(("a ", "c 60:1")) for line in listed)
    if "v2" in dirs:
        assert len(attached_programs(dirs["v2"])) == 1


def _reboot(mgr, name: str) -> None:  # type: ignore[no-untyped-def]
    pid = mgr.state(name)["pid"]
    exec_out(mgr, name, ["systemctl", "reboot"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = mgr.state(name)
        if state["status"] == "Running" and state["pid"] != pid:
            break
        time.sleep(0.05)
    assert wait_running(mgr, name) == "running"


def test_hotplug_unplug_and_reboot(manager, container: str, share: Path) -> None:  # type: ignore[no-untyped-def]
    devices = {**manager.get(container).devices,
               "share": {"type": "disk", "source": str(share), "path": "/mnt/share"}}
    manager.update(container, devices=devices)
    assert _open(manager, container, "/mnt/share/local0").endswith(REFUSED)
    assert _open(manager, container, "/dev/local0").endswith("No such file or directory")
    devices["local"] = LOCAL0
    manager.update(container, devices=devices)
    code, out, err = exec_out(manager, container, ["stat", "-c", "%t:%T %a", "/dev/local0"])
    assert code == 0 and out.strip() == "3c:0 666", err
    assert _open(manager, container, "/dev/local0").endswith(ALLOWED_NO_DRIVER)
    assert _open(manager, container, "/mnt/share/local0").endswith(ALLOWED_NO_DRIVER)
    assert _open(manager, container, "/mnt/share/local1").endswith(REFUSED)
    # The container's own child cgroups (systemd's) get the addition too.
    dirs = _cgroup_dirs(manager, container)
    for top in [d for k, d in dirs.items() if k == "v1"]:
        for dirpath, _dirs, _files in os.walk(top):
            assert "c 60:0 rwm" in Path(dirpath, "devices.list").read_text().split("\n")
    # A reboot from inside keeps the plugged device (the supervisor's plan has it).
    _reboot(manager, container)
    assert _open(manager, container, "/dev/local0").endswith(ALLOWED_NO_DRIVER)
    # Unplug: the node leaves the container and the list, its host directory goes.
    devices.pop("local")
    manager.update(container, devices=devices)
    code, _, _ = exec_out(manager, container, ["test", "-e", "/dev/local0"])
    assert code != 0
    assert _open(manager, container, "/mnt/share/local0").endswith(REFUSED)
    assert not (paths.instance_dir(container) / "devices" / "local").exists()
    for top in [d for k, d in dirs.items() if k == "v1"]:
        assert "c 60:0 rwm" not in Path(top, "devices.list").read_text().split("\n")


def test_missing_node_refused_or_skipped(manager, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = str(tmp_path / "nothing")
    with pytest.raises(Exception, match=f"Missing source path '{missing}' for device 'n'"):
        _new(manager, {"n": {"type": "unix-char", "source": missing, "path": "/dev/n"}})
    name = _new(manager, {"n": {"type": "unix-char", "source": missing, "path": "/dev/n",
                                "required": "false"}})
    manager.start(name)
    assert wait_running(manager, name) == "running"
    code, _, _ = exec_out(manager, name, ["test", "-e", "/dev/n"])
    assert code != 0


def test_privileged_mknod_allowed_but_not_use(manager) -> None:  # type: ignore[no-untyped-def]
    """A privileged container may mknod any node (LXD's 'c *:* m'), but opening one its
    list does not allow fails with EPERM."""
    name = f"p{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", config={"security.privileged": "true"})
    manager.start(name)
    assert wait_running(manager, name) == "running"
    code, _, err = exec_out(manager, name, ["sh", "-c", "mknod /root/local1 c 60 1 && "
                                            "mknod /root/null c 1 3 && chmod 666 /root/*"])
    assert code == 0, err
    assert _open(manager, name, "/root/local1").endswith(REFUSED)
    assert _open(manager, name, "/root/null") == "ok"


def test_gpu_nodes_on_a_fake_sysfs(manager, tmp_path: Path,  # type: ignore[no-untyped-def]
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """This host has no GPU: a gpu device on a fake /sys/class/drm whose card0 and
    renderD128 carry the numbers 60:2 and 60:3 (harmless), with /dev/dri nodes of mode
    0660 and 0666, booted and hot-plugged on a real container."""
    from lxmgr.devices.gpu import Gpu

    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    device = sys_root / "devices" / "pci0000:00" / "0000:00:02.0"
    (sys_root / "bus" / "pci").mkdir(parents=True)
    (sys_root / "class" / "drm").mkdir(parents=True)
    (device / "drm").mkdir(parents=True)
    (device / "subsystem").symlink_to(sys_root / "bus" / "pci")
    (device / "vendor").write_text("0x8086\n")
    (device / "device").write_text("0x46a6\n")
    (dev_root / "dri").mkdir(parents=True)
    for node, minor, mode in (("card0", 2, 0o660), ("renderD128", 3, 0o666)):
        (device / "drm" / node).mkdir()
        (device / "drm" / node / "dev").write_text(f"60:{minor}\n")
        (device / "drm" / node / "device").symlink_to(device)
        (sys_root / "class" / "drm" / node).symlink_to(device / "drm" / node)
        (dev_root / "dri" / node).write_text("")
        os.chmod(dev_root / "dri" / node, mode)
    monkeypatch.setattr(Gpu, "sysfs", str(sys_root))
    monkeypatch.setattr(Gpu, "dev", str(dev_root))
    name = _new(manager, {"gpu": {"type": "gpu", "gid": "44"}})
    manager.start(name)
    assert wait_running(manager, name) == "running"
    code, out, err = exec_out(manager, name, ["stat", "-c", "%n %t:%T %u:%g %a",
                                              "/dev/dri/card0", "/dev/dri/renderD128"])
    assert code == 0, err
    assert out.split("\n")[:2] == ["/dev/dri/card0 3c:2 0:44 660",
                                   "/dev/dri/renderD128 3c:3 0:44 666"]
    assert _open(manager, name, "/dev/dri/renderD128").endswith(ALLOWED_NO_DRIVER)
    # Unplug, then plug the one card again by its PCI address.
    spec = manager.get(name)
    devices = {k: v for k, v in spec.devices.items() if k != "gpu"}
    manager.update(name, devices=devices)
    code, _, _ = exec_out(manager, name, ["test", "-e", "/dev/dri/card0"])
    assert code != 0
    manager.update(name, devices={**devices, "igpu": {"type": "gpu", "pci": "00:02.0"}})
    assert _open(manager, name, "/dev/dri/card0").endswith(ALLOWED_NO_DRIVER)
    with pytest.raises(Exception, match="Failed to find the GPU of device 'other': no DRM "
                                        "card matches id=1"):
        manager.update(name, devices={**devices, "other": {"type": "gpu", "id": "1"}})
    assert "other" not in manager.get(name).devices
    # The refused update unplugged igpu first; its revert plugged it back.
    assert _open(manager, name, "/dev/dri/card0").endswith(ALLOWED_NO_DRIVER)
