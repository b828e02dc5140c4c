"""Apply a RootfsSpec: the only storage code that mounts; plus the idmapped-overlay probe.

Imports lxmgr.linux, lxmgr.model, lxmgr.paths, lxmgr.errors. mount_rootfs() runs as host root
in the runtime child AFTER it unshared its own mount namespace (and made / private), so
nothing it mounts appears in the host's mount table; the mounts die with that namespace.
Recipe A2 of kernel-facts.md: the idmapped lower is a detached open_tree() clone passed to
overlayfs as lowerdir=/proc/self/fd/N; it is never attached anywhere.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile

from lxmgr import paths
from lxmgr.errors import KernelError, RuntimeSetupError
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.model.idmap import IdMap
from lxmgr.storage.base import RootfsSpec
from lxmgr.storage.userns import open_userns_fd

PROBE_IDMAP = IdMap(uid_base=1000000, gid_base=1000000)


def in_private_mount_ns() -> bool:
    """True when our mount namespace differs from our parent's (the runtime child's case)."""
    try:
        return os.readlink("/proc/self/ns/mnt") != os.readlink(f"/proc/{os.getppid()}/ns/mnt")
    except OSError:
        return False


def idmapped_clone(path: str, userns_fd: int, *, readonly: bool) -> int:
    """A detached, idmapped (and optionally read-only) mount fd of path."""
    fd = libc.open_tree(c.AT_FDCWD, path, c.OPEN_TREE_CLONE | c.OPEN_TREE_CLOEXEC)
    try:
        attrs = c.MOUNT_ATTR_IDMAP | (c.MOUNT_ATTR_RDONLY if readonly else 0)
        libc.mount_setattr(fd, "", c.AT_EMPTY_PATH, attrs, userns_fd=userns_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def mount_rootfs(spec: RootfsSpec, userns_fd: int | None, *,
                 require_private_ns: bool = True) -> None:
    """Mount spec.target as described; userns_fd is needed when spec.idmap_lower."""
    if require_private_ns and not in_private_mount_ns():
        raise RuntimeSetupError("Refusing to mount a rootfs in a shared mount namespace")
    if spec.idmap_lower and userns_fd is None:
        raise RuntimeSetupError(f"Failed to mount rootfs on {spec.target}: no userns fd")
    nsfd = -1 if userns_fd is None else userns_fd
    try:
        if spec.kind == "overlay":
            _mount_overlay(spec, nsfd)
        else:
            _mount_bind(spec, nsfd)
    except OSError as err:
        raise RuntimeSetupError(f"Failed to mount rootfs ({spec.describe()}): "
                                f"{err.strerror}") from err


def _mount_overlay(spec: RootfsSpec, userns_fd: int) -> None:
    if not spec.idmap_lower:
        libc.mount("overlay", spec.target, "overlay", 0, spec.overlay_options(spec.lower))
        return
    fd = idmapped_clone(spec.lower, userns_fd, readonly=True)
    try:
        data = spec.overlay_options(f"/proc/self/fd/{fd}")
        libc.mount("overlay", spec.target, "overlay", 0, data)
    finally:
        os.close(fd)  # the overlay holds its own reference to the lower


def _mount_bind(spec: RootfsSpec, userns_fd: int) -> None:
    if not spec.idmap_lower:
        libc.mount(spec.source, spec.target, None, c.MS_BIND | c.MS_REC)
        return
    fd = idmapped_clone(spec.source, userns_fd, readonly=False)
    try:
        libc.move_mount(fd, "", c.AT_FDCWD, spec.target, c.MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(fd)


@functools.cache
def supports_idmapped_overlay() -> bool:
    """Probe (once per process) recipe A2 on a tiny tree, in a forked child's private mntns."""
    base = paths.storage_dir()
    base.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".probe-", dir=base)
    try:
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(tmp, sub))
        with open(os.path.join(tmp, "lower", "f"), "w"):
            pass
        for sub in ("upper", "work"):
            os.chown(os.path.join(tmp, sub), PROBE_IDMAP.uid_base, PROBE_IDMAP.gid_base)
        return _run_probe(tmp) == 0
    finally:
        shutil.rmtree(tmp)


def _run_probe(tmp: str) -> int:
    spec = RootfsSpec("overlay", f"{tmp}/merged", lower=f"{tmp}/lower", upper=f"{tmp}/upper",
                      work=f"{tmp}/work", idmap_lower=True)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            libc.unshare(c.CLONE_NEWNS)
            libc.mount(None, "/", None, c.MS_REC | c.MS_PRIVATE)
            userns_fd = open_userns_fd(PROBE_IDMAP)
            mount_rootfs(spec, userns_fd)
            if os.stat(f"{tmp}/merged/f").st_uid == PROBE_IDMAP.uid_base:
                status = 0
        finally:
            os._exit(status)
    _, wstatus = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wstatus)


def require_idmapped_overlay() -> None:
    """KernelError naming the missing feature, for callers that cannot fall back."""
    if not supports_idmapped_overlay():
        raise KernelError("This kernel cannot mount overlayfs over an idmapped lower layer")
