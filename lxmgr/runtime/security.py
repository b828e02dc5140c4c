"""Least privilege for container processes: capability bounding set and seccomp.

Runs in the container child (and in exec'd processes) as the last step before execve.
"""

from __future__ import annotations

import errno
import os

import pyseccomp

from lxmgr.linux import consts as c
from lxmgr.linux import libc


def drop_bounding_caps(names: list[str], sc) -> None:  # type: ignore[no-untyped-def]
    """Remove capabilities from the bounding set (inherited by every descendant)."""
    for name in names:
        cap = c.CAPABILITIES[name]
        try:
            sc.prctl(c.PR_CAPBSET_DROP, cap)
        except OSError as err:
            if err.errno != errno.EINVAL:  # EINVAL: the kernel does not know this cap
                raise
    sc.prctl(c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_CLEAR_ALL)


def build_seccomp(deny: list[str]) -> pyseccomp.SyscallFilter:
    """Allow-by-default filter denying `deny` with EPERM; native architecture only, so
    foreign-architecture (i386, x32) syscalls fail with ENOSYS instead of bypassing the list."""
    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    # libseccomp sets no_new_privs by default; setuid binaries in a system container must work.
    flt.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    flt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ERRNO(errno.ENOSYS))
    for name in deny:
        flt.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
    return flt


def load_seccomp(flt: pyseccomp.SyscallFilter) -> None:
    """Install the filter; needs CAP_SYS_ADMIN in the current user namespace (no NNP)."""
    flt.load()


def close_fds(keep: tuple[int, ...] = (0, 1, 2)) -> None:
    """Close every descriptor above the highest one kept: nothing of the manager leaks in."""
    top = max(keep) + 1
    for fd in range(top):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    libc.close_range(top)
