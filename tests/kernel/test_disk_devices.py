"""disk devices on real containers: host directories and files mounted at boot and
hot-plugged, readonly, shift=true (idmapped: host owners show through), required=false,
and the refusals (missing source, lxmgr's state dir, a target reached through a symlink the
container planted) that leave nothing mounted."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from lxmgr import paths
from lxmgr.errors import LxmgrError
from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


@pytest.fixture
def share(tmp_path: Path) -> Path:
    """A host directory with a file owned by uid/gid 1000 (a developer's checkout)."""
    src = tmp_path / "code"
    src.mkdir()
    (src / "main.c").write_text("int main(void) { return 0; }\n")
    os.chown(src / "main.c", 1000, 1000)
    os.chmod(src, 0o777)
    return src


def _owner(mgr, name: str, path: str) -> str:  # type: ignore[no-untyped-def]
    code, out, err = exec_out(mgr, name, ["stat", "-c", "%u:%g", path])
    assert code == 0, err
    return out.strip()


def _mounted(mgr, name: str, path: str) -> bool:  # type: ignore[no-untyped-def]
    code, _, _ = exec_out(mgr, name, ["mountpoint", "-q", path])
    return code == 0


def _new(mgr, devices: dict[str, dict[str, str]], **kw) -> str:  # type: ignore[no-untyped-def]
    name = f"d{uuid.uuid4().hex[:8]}"
    mgr.create(name, "debian", devices=devices, **kw)
    return name


def test_disk_at_boot_unshifted_and_readonly(manager, share: Path) -> None:  # type: ignore[no-untyped-def]
    (share.parent / "app.conf").write_text("port=80\n")
    os.chmod(share.parent / "app.conf", 0o666)  # writable by anyone: only `readonly` stops it
    name = _new(manager, {
        "code": {"type": "disk", "source": str(share), "path": "/srv/code"},
        "conf": {"type": "disk", "source": str(share.parent / "app.conf"),
                 "path": "/etc/app.conf", "readonly": "true"},
    })
    manager.start(name)
    assert wait_running(manager, name) == "running"
    code, out, _ = exec_out(manager, name, ["cat", "/srv/code/main.c", "/etc/app.conf"])
    assert code == 0 and "int main" in out and "port=80" in out
    # Not shifted: host uid 1000 is outside the container's map, so it shows as nobody.
    assert _owner(manager, name, "/srv/code/main.c") == "65534:65534"
    code, _, err = exec_out(manager, name, ["sh", "-c", "echo x >> /etc/app.conf"])
    assert code != 0 and "Read-only file system" in err
    assert (share.parent / "app.conf").read_text() == "port=80\n"
    # The mount point was made by the container's root, as LXC's create=dir does.
    assert _owner(manager, name, "/srv") == "0:0"


def test_shift_shows_host_owners_both_ways(manager, share: Path) -> None:  # type: ignore[no-untyped-def]
    name = _new(manager, {"code": {"type": "disk", "source": str(share), "path": "/code",
                                   "shift": "true"}})
    manager.start(name)
    assert wait_running(manager, name) == "running"
    assert _owner(manager, name, "/code/main.c") == "1000:1000"
    code, _, err = exec_out(manager, name, [
        "setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
        "sh", "-c", "echo built > /code/out.o"])
    assert code == 0, err
    assert (share / "out.o").stat().st_uid == 1000 and (share / "out.o").stat().st_gid == 1000
    code, _, err = exec_out(manager, name, ["touch", "/code/by-root"])
    assert code == 0, err
    assert (share / "by-root").stat().st_uid == 0


def test_hotplug_unplug_and_reboot(manager, container: str, share: Path) -> None:  # type: ignore[no-untyped-def]
    spec = manager.get(container)
    devices = {**spec.devices, "code": {"type": "disk", "source": str(share), "path": "/code",
                                        "shift": "true"}}
    manager.update(container, devices=devices)
    assert _mounted(manager, container, "/code")
    assert _owner(manager, container, "/code/main.c") == "1000:1000"
    # A reboot from inside keeps the hot-plugged disk (the supervisor re-mounts it).
    pid = manager.state(container)["pid"]
    exec_out(manager, container, ["systemctl", "reboot"])
    for _ in range(200):
        state = manager.state(container)
        if state["status"] == "Running" and state["pid"] != pid:
            break
        import time
        time.sleep(0.05)
    assert wait_running(manager, container) == "running"
    assert _mounted(manager, container, "/code")
    devices.pop("code")
    manager.update(container, devices=devices)
    assert not _mounted(manager, container, "/code")
    assert (share / "main.c").exists()  # unplugging never touches the source


def test_symlink_target_refused_nothing_mounted(manager, container: str, share: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = exec_out(manager, container, ["ln", "-s", "/etc", "/evil"])
    assert code == 0, err
    devices = {**manager.get(container).devices,
               "code": {"type": "disk", "source": str(share), "path": "/evil/code"}}
    with pytest.raises(LxmgrError, match="/evil is a symlink in the container") as info:
        manager.update(container, devices=devices)
    assert info.value.status == 400
    assert "code" not in manager.get(container).devices
    code, _, _ = exec_out(manager, container, ["test", "-e", "/etc/code"])
    assert code != 0
    # At boot, too: the start is refused with the same reason.
    manager.stop(container, force=True)
    manager.update(container, devices=devices)
    with pytest.raises(LxmgrError, match="/evil is a symlink in the container"):
        manager.start(container)
    assert not manager.is_running(container)


def test_bad_sources_refused(manager, share: Path) -> None:  # type: ignore[no-untyped-def]
    missing = str(share / "missing")
    with pytest.raises(LxmgrError, match=f"Missing source path '{missing}' for disk 'code'"):
        _new(manager, {"code": {"type": "disk", "source": missing, "path": "/code"}})
    for bad in (str(paths.root()), str(paths.root().parent)):
        with pytest.raises(LxmgrError, match="would expose lxmgr's state directory"):
            _new(manager, {"code": {"type": "disk", "source": bad, "path": "/code"}})
    assert manager.list() == []
    # required=false: the instance starts without it.
    name = _new(manager, {"code": {"type": "disk", "source": missing, "path": "/code",
                                   "required": "false"}})
    manager.start(name)
    assert wait_running(manager, name) == "running"
    assert not _mounted(manager, name, "/code")


def test_a_vanished_source_blocks_the_start_not_other_changes(manager, share: Path) -> None:  # type: ignore[no-untyped-def]
    name = _new(manager, {"code": {"type": "disk", "source": str(share), "path": "/code"}})
    for path in sorted(share.rglob("*"), reverse=True):
        path.unlink()
    share.rmdir()
    manager.update_config(name, {"user.note": "source moved"})  # unrelated: accepted
    assert manager.get(name).config["user.note"] == "source moved"
    with pytest.raises(LxmgrError, match=f"Missing source path '{share}' for disk 'code'"):
        manager.start(name)
    assert not manager.is_running(name)



def test_recursive_brings_submounts(manager, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """recursive=true brings the source's submounts along, a plain disk only the directory.
    The host mount is ours (a tmpfs under the test's directory), undone here."""
    from lxmgr.linux import consts as c
    from lxmgr.linux import libc

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    libc.mount("tmpfs", str(src / "sub"), "tmpfs", 0, "size=1m")
    try:
        (src / "sub" / "f").write_text("sub\n")
        name = _new(manager, {
            "rec": {"type": "disk", "source": str(src), "path": "/rec", "recursive": "true",
                    "propagation": "rprivate"},
            "flat": {"type": "disk", "source": str(src), "path": "/flat"}})
        manager.start(name)
        assert wait_running(manager, name) == "running"
        assert exec_out(manager, name, ["cat", "/rec/sub/f"])[1] == "sub\n"
        assert exec_out(manager, name, ["test", "-e", "/flat/sub/f"])[0] != 0
        manager.stop(name, force=True)
    finally:
        libc.umount2(str(src / "sub"), c.MNT_DETACH)
