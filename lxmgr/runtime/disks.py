"""Disk devices inside a container: a host directory or file mounted at a path of its root
(and, for unix-char, unix-block and gpu devices, a device node lxmgr made on the host).

At boot and for hot-plug alike the mount is a detached clone of the source (open_tree(2) with
OPEN_TREE_CLONE), given its read-only flag, idmapping and propagation on the detached tree
(mount_setattr(2)), then attached with move_mount(2) to a target opened beneath the
container's root with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): no component of the
target may be a symlink, so a container that planted /code -> /etc cannot divert a mount
onto the host side of the link (CVE-2015-1335, fixed in LXC by resolving mount targets
inside the rootfs). Missing mount points are created one component at a time, owned by the
container's root.

SYNCHRONOUS: runs in the container's intermediate process at boot and in a helper forked by
the supervisor for hot-plug (setns into a mount namespace refuses multi-threaded callers).
Imports linux and errors only.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import asdict, dataclass
from typing import Any

from lxmgr.errors import InvalidConfig, LxmgrError, RuntimeSetupError
from lxmgr.linux import consts as c
from lxmgr.linux import libc

# LXD's `propagation` values (doc/reference/devices_disk.md) -> (mount propagation, recursive).
PROPAGATION: dict[str, tuple[int, bool]] = {
    "private": (c.MS_PRIVATE, False), "rprivate": (c.MS_PRIVATE, True),
    "shared": (c.MS_SHARED, False), "rshared": (c.MS_SHARED, True),
    "slave": (c.MS_SLAVE, False), "rslave": (c.MS_SLAVE, True),
    "unbindable": (c.MS_UNBINDABLE, False), "runbindable": (c.MS_UNBINDABLE, True),
}
RESOLVE = c.RESOLVE_BENEATH | c.RESOLVE_NO_SYMLINKS | c.RESOLVE_NO_MAGICLINKS


@dataclass(frozen=True)
class DiskMount:
    """One disk device as the runtime mounts it (from lxmgr.devices.disk)."""

    device: str
    source: str  # absolute host path
    path: str  # absolute path inside the container
    readonly: bool = False
    recursive: bool = False
    propagation: str = "private"
    shift: bool = False  # idmapped through the container's user namespace
    required: bool = True
    # The source is a device node made for the container (lxmgr.runtime.nodes), bound onto
    # a file: unix-char, unix-block and gpu devices. A disk's source never is one.
    is_node: bool = False

    def describe(self) -> str:
        if self.is_node:
            return f"device '{self.device}' node {self.path}"
        flags = [f for f, on in (("ro", self.readonly), ("rec", self.recursive),
                                 ("shift", self.shift)) if on]
        return f"disk '{self.device}' {self.source} -> {self.path}" + \
            (f" ({','.join(flags)})" if flags else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiskMount:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def detached(disk: DiskMount, userns_fd: int | None) -> int | None:
    """A detached mount fd of the source, flags set; None when an optional source is gone."""
    try:
        st = os.stat(disk.source)
    except FileNotFoundError:
        if not disk.required:
            return None
        raise InvalidConfig(f"Failed to mount {disk.describe()}: the source does not "
                           "exist") from None
    if disk.is_node:
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidConfig(f"Failed to mount {disk.describe()}: {disk.source} is not "
                                "a device node")
    # A unix socket (a desktop's Wayland or PulseAudio socket) binds like a file: connect()
    # from inside reaches the host's listener.
    elif not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
              or stat.S_ISSOCK(st.st_mode)):
        raise InvalidConfig(f"Failed to mount {disk.describe()}: the source is neither "
                           "a directory, a file nor a unix socket")
    rec = c.AT_RECURSIVE if disk.recursive else 0
    fd = libc.open_tree(c.AT_FDCWD, disk.source, c.OPEN_TREE_CLONE | c.OPEN_TREE_CLOEXEC | rec)
    try:
        attrs = c.MOUNT_ATTR_RDONLY if disk.readonly else 0
        if disk.shift and userns_fd is not None:
            attrs |= c.MOUNT_ATTR_IDMAP
        if attrs:
            libc.mount_setattr(fd, "", c.AT_EMPTY_PATH | rec, attrs,
                               userns_fd=userns_fd if disk.shift and userns_fd else 0)
        kind, prec = PROPAGATION[disk.propagation]
        libc.mount_setattr(fd, "", c.AT_EMPTY_PATH | (c.AT_RECURSIVE if prec else 0), 0,
                           propagation=kind)
    except OSError as err:
        os.close(fd)
        raise RuntimeSetupError(f"Failed to prepare {disk.describe()}: "
                                f"{err.strerror or err}") from None
    return fd


def open_target(root_fd: int, disk: DiskMount, is_dir: bool, owner: tuple[int, int]) -> int:
    """An O_PATH fd of disk.path beneath root_fd, creating missing components (owned by
    `owner`, the container's root); RuntimeSetupError if a component is a symlink or the
    target's type does not match the source's."""
    parts = [p for p in disk.path.split("/") if p]
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            shown = "/" + "/".join(parts[: i + 1])
            try:
                nxt = libc.openat2(fd, part, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW, 0,
                                   RESOLVE)
            except FileNotFoundError:
                _create(fd, part, is_dir or not last, owner)
                nxt = libc.openat2(fd, part, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW, 0,
                                   RESOLVE)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise InvalidConfig(f"Refusing to mount {disk.describe()}: {shown} is "
                                       "a symlink in the container") from None
                raise
            os.close(fd)
            fd = nxt
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                raise InvalidConfig(f"Refusing to mount {disk.describe()}: {shown} is a "
                                   "symlink in the container")
            want_dir = is_dir or not last
            if want_dir != stat.S_ISDIR(mode):
                what = "a directory" if want_dir else "a file"
                raise InvalidConfig(f"Failed to mount {disk.describe()}: {shown} in the "
                                   f"container is not {what}")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _create(dir_fd: int, name: str, is_dir: bool, owner: tuple[int, int]) -> None:
    try:
        try:
            _make(dir_fd, name, is_dir)
        except OSError as err:
            if err.errno != errno.EOVERFLOW:
                raise
            # A filesystem mounted in the container's user namespace (its /dev tmpfs)
            # refuses files from an id it cannot map, such as the hot-plug helper's host
            # root (fs/namei.c may_o_create): create them as the container's root.
            previous = libc.setfsids(*owner)
            try:
                _make(dir_fd, name, is_dir)
            finally:
                libc.setfsids(*previous)
    except FileExistsError:
        return  # made meanwhile: the caller opens (and checks) it
    os.chown(name, owner[0], owner[1], dir_fd=dir_fd, follow_symlinks=False)


def _make(dir_fd: int, name: str, is_dir: bool) -> None:
    if is_dir:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    else:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
                         | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd))


def _move(src: int, disk: DiskMount, root_fd: int, owner: tuple[int, int]) -> None:
    """Attach the detached mount src at disk.path beneath root_fd."""
    is_dir = stat.S_ISDIR(os.fstat(src).st_mode)
    target = open_target(root_fd, disk, is_dir, owner)
    try:
        libc.move_mount(src, "", target, "", c.MOVE_MOUNT_F_EMPTY_PATH | c.MOVE_MOUNT_T_EMPTY_PATH)
    except OSError as err:
        raise RuntimeSetupError(f"Failed to mount {disk.describe()}: "
                                f"{err.strerror or err}") from None
    finally:
        os.close(target)


def prepare(disks: list[DiskMount], userns_fd: int | None) -> list[tuple[DiskMount, int]]:
    """Boot, host side (before the namespaces are unshared): detached mounts of every disk
    whose source exists; the container's init attaches them (attach_prepared)."""
    prepared: list[tuple[DiskMount, int]] = []
    try:
        for disk in disks:
            fd = detached(disk, userns_fd)
            if fd is not None:
                prepared.append((disk, fd))
    except BaseException:
        for _, fd in prepared:
            os.close(fd)
        raise
    return prepared


def attach_prepared(prepared: list[tuple[DiskMount, int]], rootfs: str) -> None:
    """Boot, in the container's init before pivot_root: attach the prepared mounts beneath
    the rootfs. Mounted from inside the container's namespaces they are not locked, so a
    hot-unplug can remove them later (as LXC mounts lxc.mount.entry after unsharing)."""
    if not prepared:
        return
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for disk, fd in prepared:
            _move(fd, disk, root_fd, (0, 0))
            os.close(fd)
    finally:
        os.close(root_fd)


def detach(path: str, root_fd: int, remove_file: bool = False) -> bool:
    """Unmount the disk at path beneath root_fd, lazily (open files inside keep working);
    False when nothing is mounted there. The target is resolved with the same rules as for
    mounting and unmounted as the cwd ("."), so neither a symlink swapped in meanwhile nor
    the container's own /proc (where a host helper has no /proc/self) is involved.
    remove_file: then remove the empty file mounted on (a device node's mount point in
    /dev, as LXD's deviceHandleMounts removes it)."""
    rel = path.strip("/")
    try:
        fd = libc.openat2(root_fd, rel, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                          | os.O_NOFOLLOW, 0, RESOLVE)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        fd = libc.openat2(root_fd, rel, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW, 0, RESOLVE)
    except OSError as err:
        raise RuntimeSetupError(f"Failed to unmount {path}: {err.strerror or err}") from None
    try:
        if not libc.statx_attributes(fd)[0] & c.STATX_ATTR_MOUNT_ROOT:
            return False  # nothing mounted there (e.g. an optional source that was missing)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.fchdir(fd)
            libc.umount2(".", c.MNT_DETACH)
            os.chdir("/")
        else:  # a file: its parent is a directory we can stand in
            parent = libc.openat2(root_fd, os.path.dirname(rel) or ".", os.O_RDONLY
                                  | os.O_DIRECTORY | os.O_CLOEXEC, 0, RESOLVE)
            try:
                os.fchdir(parent)
                name = os.path.basename(rel)
                libc.umount2(name, c.MNT_DETACH | c.UMOUNT_NOFOLLOW)
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if remove_file and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(name, dir_fd=parent)
            finally:
                os.close(parent)
                os.chdir("/")
        return True
    except OSError as err:
        raise RuntimeSetupError(f"Failed to unmount {path}: {err.strerror or err}") from None
    finally:
        os.close(fd)


def in_container(init_pid: int, action: str, disk: DiskMount, shift: bool,
                 owner: tuple[int, int]) -> bool:
    """Hot-plug ("attach") or unplug ("detach") one disk of a running container, from a
    forked helper: it clones the source in the host's mount namespace, then joins the
    container's (setns needs a single-threaded caller with its own fs_struct) and mounts
    beneath its root. Returns what attach/detach returned; RuntimeSetupError on failure."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # helper
        status = 1
        try:
            os.close(read_end)
            userns_fd = os.open(f"/proc/{init_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC) \
                if shift else None
            mnt_fd = os.open(f"/proc/{init_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            src = detached(disk, userns_fd) if action == "attach" else None
            libc.setns(mnt_fd, c.CLONE_NEWNS)  # our root and cwd become the container's
            root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            if action == "detach":
                done = detach(disk.path, root_fd,
                              remove_file=disk.is_node and disk.path.startswith("/dev/"))
            elif src is None:
                done = False
            else:
                _move(src, disk, root_fd, owner)
                done = True
            os.write(write_end, b"1" if done else b"0")
            status = 0
        except BaseException as err:  # noqa: BLE001 - report anything, then exit
            code = err.status if isinstance(err, LxmgrError) else 500
            try:
                os.write(write_end, f"E{code} {err}".encode()[:4000])
            except OSError:
                pass
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        reply = b""
        while chunk := os.read(read_end, 4096):
            reply += chunk
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if reply.startswith(b"E"):
        code, _, message = reply[1:].decode(errors="replace").partition(" ")
        error = LxmgrError(message)
        error.status = int(code) if code.isdigit() else 500
        raise error
    if not reply:
        raise RuntimeSetupError(f"Failed to {action} {disk.describe()}: the helper died")
    return reply == b"1"
