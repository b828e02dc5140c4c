"""The container's root: guards against unsafe roots, the rootfs mount, /proc, /sys, cgroups, pivot.

Host-side steps run in the child's private mount namespace (nothing shows in the host's mount
table); in-container steps run in PID 1 before it execs init. Imports linux, errors, runtime.
"""

from __future__ import annotations

import logging
import os
import stat

from lxmgr.errors import RuntimeSetupError, UnsafeRootfs
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.linux.idmapped import idmapped_clone
from lxmgr.model.rootfs import RootfsSpec
from lxmgr.runtime import lxcfs
from lxmgr.runtime.mounts import NOSUID_NODEV_NOEXEC, Bind, Mount, MountOp
from lxmgr.runtime.plan import PROC_MASKED, PROC_READ_ONLY_FILES, RuntimePlan

log = logging.getLogger(__name__)


def check_rootfs(plan: RuntimePlan) -> None:
    """Refuse, before anything runs, a rootfs that is not a private directory made for this
    instance: the host's `/`, a symlink, or anything outside the instance's own storage path.

    systemd booted on the host's own root wipes the host's /tmp and starts its services.
    """
    paths = [plan.rootfs]
    spec = plan.rootfs_spec
    paths += [spec[k] for k in ("upper", "work", "source") if spec.get(k)]
    host_root = os.stat("/")
    for path in paths:
        if not os.path.isabs(path):
            raise UnsafeRootfs(f"Refusing rootfs '{path}': not an absolute path")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise UnsafeRootfs(f"Refusing rootfs '{path}': it does not exist") from None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeRootfs(f"Refusing rootfs '{path}': it is a symlink")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeRootfs(f"Refusing rootfs '{path}': not a directory")
        if (st.st_dev, st.st_ino) == (host_root.st_dev, host_root.st_ino):
            raise UnsafeRootfs(f"Refusing rootfs '{path}': it is the host's root directory")
        real = os.path.realpath(path)
        base = os.path.realpath(plan.storage_root)
        if real == base or not real.startswith(base + os.sep):
            raise UnsafeRootfs(f"Refusing rootfs '{path}': outside the instance storage '{base}'")
    lower = spec.get("lower")
    if lower:
        st = os.stat(lower)
        if (st.st_dev, st.st_ino) == (host_root.st_dev, host_root.st_ino) or \
                os.path.realpath(lower) == "/":
            raise UnsafeRootfs(f"Refusing image rootfs '{lower}': it is the host's root directory")


def in_private_mount_ns() -> bool:
    """True when our mount namespace differs from our parent's."""
    try:
        return os.readlink("/proc/self/ns/mnt") != os.readlink(f"/proc/{os.getppid()}/ns/mnt")
    except OSError:
        return False


def mount_rootfs(spec: RootfsSpec, userns_fd: int | None) -> None:
    """Mount spec.target: an overlay over the (idmapped, read-only) image, or a bind of a
    private copy (idmapped when the spec says so).

    Host root, in the container child's private mount namespace: nothing shows in the host's
    mount table and the mounts die with that namespace. Recipe A2 of kernel-facts: the
    idmapped lower is a detached open_tree() clone given to overlayfs as /proc/self/fd/N.
    """
    if not in_private_mount_ns():
        raise RuntimeSetupError("Refusing to mount a rootfs in a shared mount namespace")
    if spec.idmap_lower and userns_fd is None:
        raise RuntimeSetupError(f"Failed to mount rootfs on {spec.target}: no userns fd")
    source = spec.lower if spec.kind == "overlay" else spec.source
    fd = None
    if spec.idmap_lower and userns_fd is not None:
        fd = idmapped_clone(source, userns_fd, readonly=spec.kind == "overlay")
    try:
        if spec.kind == "overlay":
            lowerdir = f"/proc/self/fd/{fd}" if fd is not None else source
            libc.mount("overlay", spec.target, "overlay", 0, spec.overlay_options(lowerdir))
        elif fd is not None:
            libc.move_mount(fd, "", c.AT_FDCWD, spec.target, c.MOVE_MOUNT_F_EMPTY_PATH)
        else:
            libc.mount(source, spec.target, None, c.MS_BIND | c.MS_REC, None)
    except OSError as err:
        raise RuntimeSetupError(f"Failed to mount rootfs ({spec.describe()}): "
                                f"{err.strerror}") from err
    finally:
        if fd is not None:
            os.close(fd)  # the mount holds its own reference


def build_proc_sys_ops(plan: RuntimePlan) -> list[MountOp]:
    """Self-bind, /proc with dangerous paths masked or read-only, /sys read-only, cgroups,
    then lxcfs's files over /proc and /sys."""
    r = plan.rootfs
    ops: list[MountOp] = [
        # The rootfs came from a more privileged mount namespace, so it is locked in ours:
        # pivot_root needs it to be a mount point of this namespace (kernel-facts §6).
        Bind(r, r, recursive=True),
        Mount("proc", f"{r}/proc", NOSUID_NODEV_NOEXEC, None, "proc"),
    ]
    ops += [Bind("/dev/null", f"{r}/proc/{p}", is_file=True) for p in PROC_MASKED
            if os.path.exists(f"/proc/{p}")]
    ops += [
        # /proc/sys read-only but /proc/sys/net writable (it belongs to our netns): bind net
        # first, then recursively bind /proc/sys and remount only its top read-only.
        Bind(f"{r}/proc/sys/net", f"{r}/proc/sys/net"),
        Bind(f"{r}/proc/sys", f"{r}/proc/sys", readonly=True, recursive=True,
             extra_flags=NOSUID_NODEV_NOEXEC),
    ]
    ops += [Bind(f"{r}/proc/{p}", f"{r}/proc/{p}", readonly=True, is_file=True,
                 extra_flags=NOSUID_NODEV_NOEXEC)
            for p in PROC_READ_ONLY_FILES if os.path.exists(f"/proc/{p}")]
    if plan.nesting:
        # A read-only mount of a read-write superblock: the sysfs at /dev/.lxc/sys (same
        # network namespace, same superblock) must be read-write for nested mounts.
        ops += [Mount("sysfs", f"{r}/sys", NOSUID_NODEV_NOEXEC, None, "sysfs"),
                Bind(f"{r}/sys", f"{r}/sys", readonly=True, extra_flags=NOSUID_NODEV_NOEXEC)]
    else:
        ops += [Mount("sysfs", f"{r}/sys", c.MS_RDONLY | NOSUID_NODEV_NOEXEC, None, "sysfs")]
    ops += build_cgroup_ops(plan)
    ops += build_lxcfs_ops(plan)
    return ops


def build_lxcfs_ops(plan: RuntimePlan) -> list[MountOp]:
    """lxcfs's files bound over the container's /proc files and /sys/devices/system/cpu
    (plan.lxcfs, runtime.lxcfs), those the kernel has. Where LXC runs its lxcfs mount hook:
    last, once /proc, /sys and the cgroups are mounted (lxc_setup() in src/lxc/conf.c: the
    automatic mounts, the cgroup ones, then the "mount" hooks). None, with a warning in the
    supervisor's log, when that lxcfs stopped answering since the plan was made (it died or
    was unmounted): the container then boots with the kernel's own files."""
    if not plan.lxcfs:
        return []
    problem = lxcfs.unusable(plan.lxcfs[0][0])
    if problem:
        log.warning("Container %s boots without lxcfs (it sees the host's /proc files): %s",
                    plan.name, problem)
        return []
    r = plan.rootfs
    return [Bind(source, f"{r}{target}", is_file=not os.path.isdir(target))
            for source, target in plan.lxcfs if os.path.exists(target)]


def build_nesting_ops(plan: RuntimePlan) -> list[MountOp]:
    """security.nesting: a proc and a sysfs with nothing mounted over them, at /dev/.lxc/proc
    and /dev/.lxc/sys, as LXD adds for nested containers (lxd/instance/drivers/
    driver_lxc.go, "lxc.mount.entry = /proc dev/.lxc/proc proc create=dir,optional"). A
    user namespace made inside may mount proc or sysfs only where one is fully visible
    (the kernel's mount_too_revealing()); the container's own /proc has masks and /sys is
    read-only, both locked once copied into a nested mount namespace. Made after /dev."""
    if not plan.nesting:
        return []
    dev = f"{plan.rootfs}/dev/.lxc"
    return [Mount("proc", f"{dev}/proc", NOSUID_NODEV_NOEXEC, None, "proc"),
            Mount("sysfs", f"{dev}/sys", NOSUID_NODEV_NOEXEC, None, "sysfs")]


def build_cgroup_ops(plan: RuntimePlan) -> list[MountOp]:
    """The cgroup view systemd accepts (LXC cgroup:mixed): a rw tmpfs holding each hierarchy,
    mounted inside the cgroup namespace so its root is the container's own cgroup. systemd
    remounts the tmpfs read-only itself once it is done."""
    ops: list[MountOp] = []
    for rel, fstype, data in plan.cgroup_mounts:
        target = f"{plan.rootfs}/sys/fs/cgroup" + (f"/{rel}" if rel else "")
        flags = c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC
        ops.append(Mount(fstype, target, flags, data or None, fstype if fstype != "cgroup" else
                         "cgroup"))
    return ops


def pivot_into(rootfs: str, sc) -> None:  # type: ignore[no-untyped-def]
    """pivot_root(".", ".") then detach the old root stacked on top (as LXC and runc do)."""
    os.chdir(rootfs)
    sc.pivot_root(".", ".")
    sc.umount2(".", c.MNT_DETACH)
    os.chdir("/")


def check_pivoted(host_root: tuple[int, int]) -> None:
    """Last guard before exec: our / must not be the host's /."""
    st = os.stat("/")
    if (st.st_dev, st.st_ino) == host_root:
        raise UnsafeRootfs("Refusing to start: the container root is the host's root directory")
