"""Single MountOps through the recorder: flags, read-only remounts, mount point creation."""

from __future__ import annotations

import os
from pathlib import Path

from lxmgr.linux import consts as c
from lxmgr.runtime.mounts import Bind, Mount, Symlink, ensure_file
from tests.fakes.syscalls import RecordingSyscalls


def test_mount_creates_its_mount_point(tmp_path: Path) -> None:
    sc = RecordingSyscalls()
    Mount("tmpfs", str(tmp_path / "a" / "b"), c.MS_NOSUID, "mode=755").apply(sc)
    assert sc.named("mount") == [("tmpfs", str(tmp_path / "a" / "b"), "tmpfs", c.MS_NOSUID,
                                  "mode=755")]
    assert (tmp_path / "a" / "b").is_dir()


def test_readonly_bind_remounts_with_locked_flags(tmp_path: Path) -> None:
    sc = RecordingSyscalls()
    target = str(tmp_path / "t")
    Bind("/src", target, readonly=True, recursive=True, extra_flags=c.MS_NOSUID).apply(sc)
    assert sc.named("mount") == [
        ("/src", target, None, c.MS_BIND | c.MS_REC, None),
        (None, target, None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | c.MS_NOSUID, None),
    ]


def test_self_bind_creates_nothing(tmp_path: Path) -> None:
    sc = RecordingSyscalls()
    path = str(tmp_path / "missing")
    Bind(path, path).apply(sc)
    assert not os.path.lexists(path)
    assert sc.named("mount") == [(path, path, None, c.MS_BIND, None)]


def test_file_bind_creates_an_empty_file(tmp_path: Path) -> None:
    sc = RecordingSyscalls()
    Bind("/dev/null", str(tmp_path / "null"), is_file=True).apply(sc)
    assert (tmp_path / "null").read_bytes() == b""


def test_ensure_file_leaves_existing_entries(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("keep")
    ensure_file(str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "keep"
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    ensure_file(str(tmp_path / "dangling"))  # never creates through a symlink
    assert not (tmp_path / "nowhere").exists()


def test_symlink_keeps_an_existing_entry(tmp_path: Path) -> None:
    sc = RecordingSyscalls()
    Symlink("/proc/self/fd", str(tmp_path / "fd")).apply(sc)
    Symlink("/elsewhere", str(tmp_path / "fd")).apply(sc)
    assert os.readlink(tmp_path / "fd") == "/proc/self/fd"
    assert sc.calls == []


def test_describe() -> None:
    assert Bind("/a", "/b", readonly=True).describe() == "bind /a -> /b ro"
    assert Mount("proc", "/r/proc").describe() == "mount -t proc proc /r/proc (None)"
    assert Symlink("pts/ptmx", "/r/dev/ptmx").describe() == "symlink /r/dev/ptmx -> pts/ptmx"


def test_apply_all_refuses_targets_through_symlinks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from lxmgr.runtime.mounts import Mount, apply_all
    from tests.fakes.syscalls import RecordingSyscalls

    root = tmp_path / "rootfs"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "proc").symlink_to(tmp_path / "elsewhere")
    sc = RecordingSyscalls()
    with pytest.raises(OSError, match="Refusing to mount on /proc: it is a symlink"):
        apply_all([Mount("proc", f"{root}/proc")], sc, root=str(root))
    assert sc.calls == []
