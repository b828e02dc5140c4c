"""chase() through layered rootfs trees, find_init, and ownership of the files lxmgr writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.instances import files
from lxmgr.instances.files import chase, find_init, write_instance_files
from lxmgr.model.idmap import IdMap
from lxmgr.storage.base import RootfsSpec

IDMAP = IdMap(1000000, 1000000)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="overlay whiteouts need mknod")


def tree(root: Path, entries: dict[str, str | None]) -> str:
    """Files (text), directories (path ends in '/') and symlinks ('-> target')."""
    for rel, value in entries.items():
        path = root / rel.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/"):
            path.mkdir(exist_ok=True)
        elif value is not None and value.startswith("-> "):
            path.symlink_to(value[3:])
        else:
            path.write_text(value or "")
    return str(root)


def whiteout(path: Path) -> None:
    """An overlayfs whiteout: a 0:0 character device."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def test_plain_paths(tmp_path: Path) -> None:
    root = tree(tmp_path, {"sbin/init": "x", "etc/": None})
    assert chase([root], "/sbin/init") == "/sbin/init"
    assert chase([root], "sbin//./init") == "/sbin/init"
    assert chase([root], "/") == "/"
    assert chase([root], "/etc/missing") is None
    assert chase([root], "/nope/init") is None


def test_absolute_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tree(tmp_path / "root", {
        "lib/systemd/systemd": "x",
        "sbin/init": "-> /lib/systemd/systemd",
        "etc/passwd": "container",
        "escape": "-> /etc/passwd",
    })
    assert chase([root], "/sbin/init") == "/lib/systemd/systemd"
    # /etc/passwd of the container, not of the host.
    assert chase([root], "/escape") == "/etc/passwd"
    (tmp_path / "root" / "etc" / "passwd").unlink()
    assert chase([root], "/escape") is None


def test_relative_symlinks(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "usr/lib/systemd/systemd": "x",
        "lib": "-> usr/lib",
        "sbin/init": "-> ../lib/systemd/systemd",
    })
    assert chase([root], "/sbin/init") == "/usr/lib/systemd/systemd"


def test_dotdot_cannot_climb_above_root(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("host")
    root = tree(tmp_path / "root", {
        "etc/": None,
        "up": "-> ../../../../secret",
        "abs": "-> /../../secret",
    })
    assert chase([root], "/../../secret") is None
    assert chase([root], "/up") is None
    assert chase([root], "/abs") is None
    assert chase([root], "/etc/../../etc") == "/etc"


def test_symlink_loops_give_none(tmp_path: Path) -> None:
    root = tree(tmp_path, {"a": "-> b", "b": "-> /a", "self": "-> self"})
    assert chase([root], "/a") is None
    assert chase([root], "/self/x") is None


def test_upper_layer_wins(tmp_path: Path) -> None:
    upper = tree(tmp_path / "upper", {"sbin/init": "-> /bin/busybox"})
    lower = tree(tmp_path / "lower", {"sbin/init": "-> /lib/systemd/systemd",
                                      "bin/busybox": "x", "lib/systemd/systemd": "x"})
    assert chase([upper, lower], "/sbin/init") == "/bin/busybox"
    assert chase([lower], "/sbin/init") == "/lib/systemd/systemd"


@needs_root
def test_whiteouts_hide_lower_entries(tmp_path: Path) -> None:
    upper = str(tmp_path / "upper")
    lower = tree(tmp_path / "lower", {"sbin/init": "x", "etc/hosts": "x", "etc/x/y": "x"})
    whiteout(tmp_path / "upper" / "sbin" / "init")
    whiteout(tmp_path / "upper" / "etc" / "x")
    assert chase([upper, lower], "/sbin/init") is None
    assert chase([upper, lower], "/etc/x/y") is None
    assert chase([upper, lower], "/etc/hosts") == "/etc/hosts"
    assert chase([lower], "/sbin/init") == "/sbin/init"


def overlay(tmp_path: Path) -> RootfsSpec:
    return RootfsSpec("overlay", target=str(tmp_path / "rootfs"), lower=str(tmp_path / "lower"),
                      upper=str(tmp_path / "upper"), work=str(tmp_path / "work"))


def test_find_init(tmp_path: Path) -> None:
    tree(tmp_path / "lower", {"lib/systemd/systemd": "x", "sbin/init": "-> /lib/systemd/systemd"})
    tree(tmp_path / "upper", {})
    assert find_init(overlay(tmp_path)) == "/lib/systemd/systemd"


def test_find_init_missing(tmp_path: Path) -> None:
    tree(tmp_path / "src", {"sbin/": None, "usr/": None})
    spec = RootfsSpec("bind", target=str(tmp_path / "rootfs"), source=str(tmp_path / "src"))
    with pytest.raises(InvalidConfig, match=r"The instance rootfs has no /sbin/init: is the "
                                            "image a full distribution with an init system"):
        find_init(spec)
    tree(tmp_path / "src", {"sbin/init": "-> /lib/systemd/systemd"})  # dangling
    with pytest.raises(InvalidConfig, match="no /sbin/init"):
        find_init(spec)


@pytest.fixture
def owners(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, int]]:
    """Record chown/fchown instead of doing them, so the tier needs no root."""
    seen: dict[str, tuple[int, int]] = {}

    def chown(path: str, uid: int, gid: int) -> None:
        seen[str(path)] = (uid, gid)

    def fchown(fd: int, uid: int, gid: int) -> None:
        seen[os.readlink(f"/proc/self/fd/{fd}")] = (uid, gid)

    monkeypatch.setattr(files.os, "chown", chown)
    monkeypatch.setattr(files.os, "fchown", fchown)
    return seen


def test_overlay_files_are_owned_by_the_shifted_root(
        tmp_path: Path, owners: dict[str, tuple[int, int]]) -> None:
    tree(tmp_path / "lower", {"etc/": None})
    (tmp_path / "upper").mkdir()
    write_instance_files(overlay(tmp_path), IDMAP, "c1")
    upper = tmp_path / "upper"
    assert (upper / "etc" / "hostname").read_text() == "c1\n"
    assert "127.0.1.1\tc1\n" in (upper / "etc" / "hosts").read_text()
    assert owners == {str(upper / "etc"): (1000000, 1000000),
                      str(upper / "etc" / "hostname"): (1000000, 1000000),
                      str(upper / "etc" / "hosts"): (1000000, 1000000)}
    assert not (tmp_path / "lower" / "etc" / "hostname").exists()


def test_idmapped_bind_files_stay_host_root(tmp_path: Path,
                                            owners: dict[str, tuple[int, int]]) -> None:
    tree(tmp_path / "src", {"etc/hostname": "old\n"})
    spec = RootfsSpec("bind", target=str(tmp_path / "rootfs"), source=str(tmp_path / "src"),
                      idmap_lower=True)
    write_instance_files(spec, IDMAP, "c2")
    assert (tmp_path / "src" / "etc" / "hostname").read_text() == "c2\n"
    assert set(owners.values()) == {(0, 0)}


def test_shifted_copy_and_privileged_ownership(tmp_path: Path,
                                               owners: dict[str, tuple[int, int]]) -> None:
    tree(tmp_path / "src", {"etc/": None})
    spec = RootfsSpec("bind", target=str(tmp_path / "rootfs"), source=str(tmp_path / "src"))
    write_instance_files(spec, IDMAP, "c3")  # a copy shifted on disk, no idmapped mount
    assert set(owners.values()) == {(1000000, 1000000)}
    owners.clear()
    write_instance_files(spec, None, "c3")  # privileged
    assert set(owners.values()) == {(0, 0)}


def test_write_refuses_symlinks(tmp_path: Path, owners: dict[str, tuple[int, int]]) -> None:
    (tmp_path / "host-etc").mkdir()
    tree(tmp_path / "src", {"etc": f"-> {tmp_path / 'host-etc'}"})
    spec = RootfsSpec("bind", target=str(tmp_path / "rootfs"), source=str(tmp_path / "src"))
    with pytest.raises(InvalidConfig, match="/etc is a symlink"):
        write_instance_files(spec, None, "c4")
    assert list((tmp_path / "host-etc").iterdir()) == []
    tree(tmp_path / "src2", {"etc/hostname": f"-> {tmp_path / 'target'}"})
    spec = RootfsSpec("bind", target=str(tmp_path / "rootfs"), source=str(tmp_path / "src2"))
    with pytest.raises(OSError):
        write_instance_files(spec, None, "c4")
    assert not (tmp_path / "target").exists()
