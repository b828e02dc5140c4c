"""Which lxcfs files a container gets, and where: the binds of LXC's lxcfs mount hook.

LXCFS (https://github.com/lxc/lxcfs) is a FUSE filesystem whose files answer for the process
that reads them: /proc/meminfo with the memory limit of its cgroup, /proc/cpuinfo, /proc/stat
and /sys/devices/system/cpu with its cpuset, /proc/uptime counted from its PID 1's start,
/proc/loadavg from its cgroup's tasks (lxcfs -l). A runtime binds them over the container's
own files at boot. The list and its order are those of lxcfs's share/lxc.mount.hook.in (LXC
runs it as an lxc.hook.mount: after /proc and /sys are mounted, before the cgroup mounts):

  1. every entry of <lxcfs>/proc/ the container's /proc also has, in glob (sorted) order;
  2. /sys/devices/system/cpu as one directory when lxcfs serves its `uevent` (it then
     serves the whole directory), else each of its entries the container also has.

Not taken from the hook: the bind of <lxcfs> itself at the container's /var/lib/lxcfs (for
nested LXC), and its cgroup tree, which the hook skips too when the container has a cgroup
namespace, as ours always do.

build_binds() and parse_mounts() are PURE; unusable() reads one file. Imports nothing from
lxmgr: the manager (instances/lxcfs.py) and the container's init (runtime/rootfs.py) use it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

PROC = "/proc"
CPU_DIR = "/sys/devices/system/cpu"
FSTYPE = "fuse.lxcfs"


def build_binds(mount: str, proc_entries: Iterable[str],
                cpu_entries: Iterable[str]) -> list[list[str]]:
    """[source, target] pairs for an lxcfs mounted at `mount` whose proc/ and
    sys/devices/system/cpu/ list those entries; targets are paths inside the container.

    lxcfs 5.0 lists some names twice (readdir of sys/devices/system/cpu repeats `online`),
    so names are de-duplicated."""
    mount = mount.rstrip("/")
    binds = [[f"{mount}{PROC}/{name}", f"{PROC}/{name}"] for name in _names(proc_entries)]
    cpu = _names(cpu_entries)
    if "uevent" in cpu:
        binds.append([f"{mount}{CPU_DIR}", CPU_DIR])
    else:
        binds += [[f"{mount}{CPU_DIR}/{name}", f"{CPU_DIR}/{name}"] for name in cpu]
    return binds


def _names(entries: Iterable[str]) -> list[str]:
    return sorted({e for e in entries if e not in (".", "..") and "/" not in e})


def scan(mount: str) -> list[list[str]]:
    """build_binds() for the lxcfs mounted at `mount` (its proc/ must be listable)."""
    proc = os.listdir(f"{mount}{PROC}")
    try:
        cpu = os.listdir(f"{mount}{CPU_DIR}")
    except FileNotFoundError:  # lxcfs < 4.0 has no sys/ tree
        cpu = []
    return build_binds(mount, proc, cpu)


def parse_mounts(mountinfo: str) -> list[str]:
    """PURE: the mount points of every lxcfs filesystem in /proc/<pid>/mountinfo text
    (proc(5): the fstype is the first field after the ' - ' separator)."""
    out = []
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if sep and len(fields) >= 5 and tail.split(" ", 1)[0] == FSTYPE:
            out.append(_unescape(fields[4]))
    return out


def _unescape(path: str) -> str:
    """mountinfo octal-escapes space, tab, newline and backslash."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def unusable(path: str) -> str | None:
    """Why the lxcfs file at `path` cannot be bound, or None when it answers. A dead lxcfs
    leaves its mount behind answering ENOTCONN ('Transport endpoint is not connected'); a
    bind of one of its files would fail the same way and stop the boot. An open and a read
    reach lxcfs itself (its files are direct_io), where a stat may be answered from the
    kernel's attribute cache."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                os.read(fd, 1)
        finally:
            os.close(fd)
    except OSError as err:
        return f"{path}: {err.strerror or err}"
    return None
