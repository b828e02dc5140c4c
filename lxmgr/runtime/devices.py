"""The container's /dev: a tmpfs with the standard nodes, devpts, /dev/shm and console ptys.

Pure builders return MountOps rooted at the (not yet pivoted) rootfs path.
"""

from __future__ import annotations

from lxmgr.linux import consts as c
from lxmgr.runtime.mounts import Bind, Mount, MountOp, Symlink
from lxmgr.runtime.plan import DEV_NODES, DEV_SYMLINKS


def build_dev_ops(rootfs: str, console: str | None, ttys: list[str], tty_gid: int) -> list[MountOp]:
    """/dev as systemd's Container Interface describes it; console and ttyN are host ptys."""
    dev = f"{rootfs}/dev"
    ops: list[MountOp] = [
        Mount("tmpfs", dev, c.MS_NOSUID | c.MS_NOEXEC | c.MS_STRICTATIME,
              "mode=755,size=65536k", "tmpfs"),
    ]
    ops += [Bind(f"/dev/{node}", f"{dev}/{node}", is_file=True) for node in DEV_NODES]
    ops.append(Mount("devpts", f"{dev}/pts", c.MS_NOSUID | c.MS_NOEXEC,
                     f"newinstance,ptmxmode=0666,mode=0620,gid={tty_gid}", "devpts"))
    ops.append(Mount("tmpfs", f"{dev}/shm", c.MS_NOSUID | c.MS_NODEV | c.MS_STRICTATIME,
                     "mode=1777,size=65536k", "shm"))
    ops += [Symlink(target, f"{dev}/{name}") for name, target in DEV_SYMLINKS]
    if console:
        ops.append(Bind(console, f"{dev}/console", is_file=True))
    ops += [Bind(pty, f"{dev}/tty{i}", is_file=True) for i, pty in enumerate(ttys, start=1)]
    return ops
