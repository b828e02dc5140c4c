"""The container's /dev plan: tmpfs, host node binds, a private devpts, shm, symlinks, ptys."""

from __future__ import annotations

import os
from pathlib import Path

from lxmgr.linux import consts as c
from lxmgr.runtime.devices import build_dev_ops
from lxmgr.runtime.mounts import Bind, Mount, Symlink, apply_all
from lxmgr.runtime.plan import DEV_NODES
from tests.fakes.syscalls import RecordingSyscalls

R = "/var/lib/lxmgr/storage/dir/c1/rootfs"


def test_dev_ops() -> None:
    ops = build_dev_ops(R, "/dev/pts/7", ["/dev/pts/8", "/dev/pts/9"], tty_gid=5)
    dev = f"{R}/dev"
    assert ops[0] == Mount("tmpfs", dev, c.MS_NOSUID | c.MS_NOEXEC | c.MS_STRICTATIME,
                           "mode=755,size=65536k", "tmpfs")
    assert ops[1:1 + len(DEV_NODES)] == [Bind(f"/dev/{n}", f"{dev}/{n}", is_file=True)
                                         for n in DEV_NODES]
    devpts = ops[1 + len(DEV_NODES)]
    assert devpts == Mount("devpts", f"{dev}/pts", c.MS_NOSUID | c.MS_NOEXEC,
                           "newinstance,ptmxmode=0666,mode=0620,gid=5", "devpts")
    assert Mount("tmpfs", f"{dev}/shm", c.MS_NOSUID | c.MS_NODEV | c.MS_STRICTATIME,
                 "mode=1777,size=65536k", "shm") in ops
    assert Symlink("pts/ptmx", f"{dev}/ptmx") in ops
    assert Symlink("/proc/self/fd", f"{dev}/fd") in ops
    assert ops[-3:] == [Bind("/dev/pts/7", f"{dev}/console", is_file=True),
                        Bind("/dev/pts/8", f"{dev}/tty1", is_file=True),
                        Bind("/dev/pts/9", f"{dev}/tty2", is_file=True)]


def test_dev_ops_without_console() -> None:
    ops = build_dev_ops(R, None, [], tty_gid=5)
    targets = [getattr(op, "target", None) for op in ops]
    assert f"{R}/dev/console" not in targets
    assert not any(str(t).startswith(f"{R}/dev/tty1") for t in targets)


def test_apply_dev_ops(tmp_path: Path) -> None:
    r = str(tmp_path)
    sc = RecordingSyscalls()
    apply_all(build_dev_ops(r, "/dev/pts/7", ["/dev/pts/8"], tty_gid=5), sc)
    mounts = sc.named("mount")
    assert mounts[0][:3] == ("tmpfs", f"{r}/dev", "tmpfs")
    assert ("/dev/null", f"{r}/dev/null", None, c.MS_BIND, None) in mounts
    assert ("/dev/pts/7", f"{r}/dev/console", None, c.MS_BIND, None) in mounts
    assert ("/dev/pts/8", f"{r}/dev/tty1", None, c.MS_BIND, None) in mounts
    # Bind targets are created as files, symlinks for real (the tmpfs is faked).
    assert (tmp_path / "dev" / "console").is_file()
    assert (tmp_path / "dev" / "pts").is_dir()
    assert os.readlink(tmp_path / "dev" / "ptmx") == "pts/ptmx"
    assert os.readlink(tmp_path / "dev" / "stderr") == "/proc/self/fd/2"
