"""Device nodes made on the host for a container (unix-char, unix-block and gpu devices).

A container cannot mknod a usable node (no CAP_MKNOD in the initial user namespace, and
filesystems mounted in its user namespace are nodev), so, as LXD does for every container
(lxd/device/device_utils_unix.go UnixDeviceCreate, then the static ownership shift of
driver_lxc.go deviceStaticShiftMounts), the node is created in the instance's devices
directory on the host, owned by the container's ids as mapped to the host and with the
device's mode, and that node is bind-mounted into the container (lxmgr.runtime.disks with
is_node). The host directory is 0711: nobody lists it, and the container reaches the node
only through its mount.

SYNCHRONOUS, host side (the manager creates nodes when a device starts). Imports
lxmgr.errors only.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass

from lxmgr.errors import InvalidConfig, RuntimeSetupError

DEVICES_DIR_MODE = 0o711


@dataclass(frozen=True)
class DeviceNode:
    """One node to create: kind 'c' or 'b', its numbers, mode and owner as the host sees
    them (already shifted through the container's id map)."""

    kind: str
    major: int
    minor: int
    mode: int
    uid: int
    gid: int

    @property
    def rule(self) -> str:
        """Its device cgroup rule (read, write, mknod, as LXD's unixDeviceSetup)."""
        return f"{self.kind} {self.major}:{self.minor} rwm"


def encode_path(path: str) -> str:
    """A container path as one file name (LXD's filesystem.PathNameEncode): '-' doubled,
    then '/' as '-' ("/dev/dri/card0" -> "dev-dri-card0")."""
    return path.strip("/").replace("-", "--").replace("/", "-")


def create_node(directory: str, name: str, node: DeviceNode) -> str:
    """mknod `name` in `directory` (made 0711 when missing), replacing what is there;
    returns its path. InvalidConfig when the directory's mount is nodev (a node there
    could never be opened, not even through a bind mount)."""
    os.makedirs(directory, DEVICES_DIR_MODE, exist_ok=True)
    if os.statvfs(directory).f_flag & os.ST_NODEV:
        raise InvalidConfig(f"Cannot create device nodes in {directory}: it is on a nodev "
                            "mount")
    path = os.path.join(directory, name)
    kind = stat.S_IFCHR if node.kind == "c" else stat.S_IFBLK
    try:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.mknod(path, kind | 0o600, os.makedev(node.major, node.minor))
        os.chown(path, node.uid, node.gid)
        os.chmod(path, node.mode)  # after chown (which clears setuid) and not umask'ed
    except OSError as err:
        raise RuntimeSetupError(f"Failed to create device node {path}: "
                                f"{err.strerror or err}") from None
    return path


def remove_nodes(directory: str) -> None:
    """Remove a device's node directory and everything in it; missing is fine."""
    shutil.rmtree(directory, ignore_errors=True)
