"""btrfs pools: a loop-mounted sparse file (LXD's default when `source` is empty) or an
existing block device, mounted where a BtrfsDriver is pointed at.

Imports lxmgr.linux (libc, loop, commands, btrfs), lxmgr.errors; never lxmgr.instances.
Mounts happen in the caller's mount namespace: the daemon calls this in the host's, so the
runtime's private namespaces inherit the pool. Loop devices are bound with
LO_FLAGS_AUTOCLEAR, so unmounting the pool (or the death of the last mount namespace that
holds it) detaches the device; nothing here ever detaches a device it did not just attach.
Every multi-step call is a revert stack (C7): a failure leaves no file, device or mount.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from lxmgr.errors import Conflict, InvalidConfig, KernelError, NotFound
from lxmgr.linux import btrfs, commands, libc, loop

log = logging.getLogger(__name__)

MOUNT_OPTIONS = "user_subvol_rm_allowed"  # as LXD: root in a container may delete subvolumes
MIN_SIZE = 128 * 1024 * 1024  # mkfs.btrfs refuses below ~114 MiB with the default profiles
DETACH_TIMEOUT = 5.0  # seconds for autoclear to release a device after the last unmount


@dataclass(frozen=True)
class PoolSource:
    """Where a pool's filesystem lives and where it is mounted.

    kind "loop": source is the image file; "block": source is a block device.
    device: the loop device while mounted (informational; never used to detach).
    """

    kind: Literal["loop", "block"]
    source: Path
    mount_dir: Path
    device: str = ""


def build_mkfs_argv(target: Path, label: str = "", force: bool = False) -> list[str]:
    """PURE: mkfs.btrfs argv (-f only when the caller explicitly asked to overwrite)."""
    argv = ["mkfs.btrfs", "-q"]
    if label:
        argv += ["-L", label[:255]]
    if force:
        argv.append("-f")
    return [*argv, str(target)]


def create_loop_pool(image_file: Path, size_bytes: int, mount_dir: Path,
                     label: str = "") -> PoolSource:
    """A new sparse image_file of size_bytes, formatted btrfs and mounted on mount_dir.

    Conflict if image_file exists; InvalidConfig below MIN_SIZE. On failure the file, the
    loop device and the mount are gone again.
    """
    if size_bytes < MIN_SIZE:
        raise InvalidConfig(f"Pool size {size_bytes} for '{image_file}' is below the "
                            f"btrfs minimum of {MIN_SIZE} bytes")
    image_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.ExitStack() as revert:
        _create_sparse(image_file, size_bytes)
        revert.callback(image_file.unlink, missing_ok=True)
        commands.run(build_mkfs_argv(image_file, label or image_file.stem))
        pool = mount_pool(PoolSource("loop", image_file, mount_dir))
        revert.pop_all()
    return pool


def create_block_pool(device: Path, mount_dir: Path, *, format: bool = False,
                      force: bool = False, label: str = "") -> PoolSource:
    """Mount an existing block device as a pool; mkfs.btrfs it first only with format=True
    (and over an existing filesystem only with force=True)."""
    if not device.is_block_device():
        raise InvalidConfig(f"Pool source '{device}' is not a block device")
    if format:
        commands.run(build_mkfs_argv(device, label, force))
    return mount_pool(PoolSource("block", device, mount_dir))


def mount_pool(pool: PoolSource) -> PoolSource:
    """Mount pool on its mount_dir (daemon start, host reboot); a no-op when mounted there.
    A loop pool gets a fresh autoclear loop device on its image file."""
    if is_mounted(pool.mount_dir):
        if not is_btrfs(pool.mount_dir):
            raise Conflict(f"Pool mount point '{pool.mount_dir}' holds another filesystem")
        return pool
    if pool.kind == "loop" and not pool.source.is_file():
        raise NotFound(f"Pool image file '{pool.source}' does not exist")
    created = not pool.mount_dir.exists()
    pool.mount_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    try:
        device = _mount_loop(pool) if pool.kind == "loop" else _mount_device(pool)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                pool.mount_dir.rmdir()
        raise
    return replace(pool, device=device)


def _mount_loop(pool: PoolSource) -> str:
    try:
        device, fd = loop.attach(pool.source)
    except OSError as err:
        raise KernelError(f"Failed to attach a loop device to '{pool.source}': "
                          f"{os.strerror(err.errno)}") from err
    try:
        _mount(device, pool)
    except BaseException:
        with contextlib.suppress(OSError):
            loop.clr_fd(fd)  # ours, unmounted: detach now rather than at close
        raise
    finally:
        os.close(fd)  # the mount holds the device; autoclear detaches at its unmount
    return device


def _mount_device(pool: PoolSource) -> str:
    _mount(str(pool.source), pool)
    return str(pool.source)


def _mount(device: str, pool: PoolSource) -> None:
    log.debug("mount -t btrfs -o %s %s %s", MOUNT_OPTIONS, device, pool.mount_dir)
    try:
        libc.mount(device, str(pool.mount_dir), "btrfs", 0, MOUNT_OPTIONS)
    except OSError as err:
        raise KernelError(f"Failed to mount pool '{pool.source}' on '{pool.mount_dir}': "
                          f"{os.strerror(err.errno)}") from err


def unmount_pool(pool: PoolSource) -> None:
    """Unmount pool (Conflict while busy). A loop device goes with the last mount of it;
    we wait up to DETACH_TIMEOUT for that and only log when another namespace holds it."""
    if is_mounted(pool.mount_dir):
        try:
            libc.umount2(str(pool.mount_dir))
        except OSError as err:
            if err.errno == errno.EBUSY:
                raise Conflict(f"Pool '{pool.mount_dir}' is busy") from err
            raise KernelError(f"Failed to unmount pool '{pool.mount_dir}': "
                              f"{os.strerror(err.errno)}") from err
    if pool.kind == "loop":
        left = wait_detached(pool.source)
        if left:
            log.warning("Pool image '%s' is still attached to %s (mounted elsewhere)",
                        pool.source, ", ".join(left))


def delete_pool(pool: PoolSource) -> None:
    """Unmount pool and, for a loop pool, remove its image file; Conflict while any loop
    device still uses the file. A block device is never wiped."""
    unmount_pool(pool)
    if pool.kind == "loop":
        left = loop.devices_backed_by(pool.source)
        if left:
            raise Conflict(f"Pool image '{pool.source}' is still in use by {', '.join(left)}")
        pool.source.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        pool.mount_dir.rmdir()


def wait_detached(image_file: Path, timeout: float = DETACH_TIMEOUT) -> list[str]:
    """Wait for the loop devices backed by image_file to go; those left at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = loop.devices_backed_by(image_file)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)


def is_mounted(mount_dir: Path) -> bool:
    """True when mount_dir is a mount point in our namespace (/proc/self/mountinfo)."""
    target = os.path.realpath(mount_dir)
    with open("/proc/self/mountinfo") as f:
        return any(_unescape(line.split()[4]) == target for line in f)


def is_btrfs(path: Path) -> bool:
    """True when path is on a btrfs filesystem (BTRFS_IOC_FS_INFO answers)."""
    try:
        btrfs.fs_uuid(path)
    except OSError:
        return False
    return True


def _unescape(field: str) -> str:
    """mountinfo octal escapes (\\040 for a space) back to characters."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode()


def _create_sparse(path: Path, size_bytes: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise Conflict(f"Pool image file '{path}' already exists") from None
    try:
        os.ftruncate(fd, size_bytes)
    except OSError:
        os.close(fd)
        path.unlink()
        raise
    os.close(fd)
