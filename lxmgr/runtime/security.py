"""Least privilege for container processes: capability bounding set and seccomp.

Runs in the container child (and in exec'd processes) as the last step before execve.
The seccomp filter implements LXD's security.syscalls.deny, deny_default and deny_compat.
"""

from __future__ import annotations

import errno
import os

import pyseccomp

from lxmgr.errors import InvalidConfig
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.model import validate as v
from lxmgr.runtime.plan import SECCOMP_DENY, RuntimePlan


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


# The ABIs besides the native one whose syscalls a container may make, as liblxc builds LXD's
# policy (src/lxc/seccomp.c parse_config_v2: i386 and x32 contexts on amd64, arm on arm64,
# every rule added to each): 32-bit binaries run as on LXD, and a denied syscall stays denied
# when made through int 0x80 (i386 numbers) or with the x32 bit set.
COMPAT_ARCHES: dict[int, tuple[int, ...]] = {
    pyseccomp.Arch.X86_64: (pyseccomp.Arch.X86, pyseccomp.Arch.X32),
    pyseccomp.Arch.AARCH64: (pyseccomp.Arch.ARM,),
}
# The errnos: LXD 5.0's default policy and its deny_compat list say "errno 38" (ENOSYS,
# lxd/seccomp/seccomp.go); liblxc's reject_force_umount answers EACCES; the names of
# security.syscalls.deny get EPERM (liblxc would kill the caller: its denylist default).
DEFAULT_DENY_ERRNO = errno.ENOSYS
COMPAT_DENY_ERRNO = errno.ENOSYS
FORCE_UMOUNT_ERRNO = errno.EACCES
DENY_ERRNO = errno.EPERM


def compat_arches(native: int, deny_compat: bool) -> tuple[int, ...]:
    """The foreign ABIs the filter admits. security.syscalls.deny_compat is LXD's x86_64-only
    key ("no-op on other architectures", doc/reference/instance_options.md)."""
    if deny_compat and native == pyseccomp.Arch.X86_64:
        return ()
    return COMPAT_ARCHES.get(native, ())


def build_seccomp(plan: RuntimePlan) -> pyseccomp.SyscallFilter:
    """Allow-by-default filter for the plan: the default deny list (ENOSYS) and no forced
    umount unless deny_default is off, the extra names (EPERM), applied to the native ABI and
    each compat ABI; an ABI left out (deny_compat) gets ENOSYS for every syscall.

    Raises InvalidConfig naming a syscall libseccomp does not know (a config stored before
    set-time validation, or written for another libseccomp)."""
    unknown = v.unknown_syscalls(plan.seccomp_deny)
    if unknown:
        raise InvalidConfig(f"Unknown syscall '{unknown[0]}' in security.syscalls.deny")
    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    # libseccomp sets no_new_privs by default; setuid binaries in a system container must work.
    flt.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    flt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ERRNO(COMPAT_DENY_ERRNO))
    # Arches first: libseccomp adds a rule to the arches the filter has at that moment.
    for arch in compat_arches(pyseccomp.system_arch(), plan.seccomp_deny_compat):
        flt.add_arch(arch)
    rules: dict[str, int] = {}
    if plan.seccomp_deny_default:
        rules.update((name, DEFAULT_DENY_ERRNO) for name, _why in SECCOMP_DENY)
    # A name in both lists gets the explicit EPERM (libseccomp would keep either silently).
    rules.update((name, DENY_ERRNO) for name in plan.seccomp_deny)
    for name, err in rules.items():
        flt.add_rule(pyseccomp.ERRNO(err), name)
    if plan.seccomp_deny_default and "umount2" not in rules:
        force = pyseccomp.Arg(1, pyseccomp.MASKED_EQ, c.MNT_FORCE, c.MNT_FORCE)
        flt.add_rule(pyseccomp.ERRNO(FORCE_UMOUNT_ERRNO), "umount2", force)
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
