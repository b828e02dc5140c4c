"""The instance files helper: `python -S -m lxmgr.runtime.fileops FD` is a small fork server
that lxmgr.instances.files_api starts once; for each GET/HEAD/POST/DELETE of
/1.0/instances/{name}/files it receives a request on the socket FD with three descriptors
(a pidfd of the container's PID 1, the request's stdin and stdout pipes) and forks a child
that serves it (a fork costs ~2 ms where a fresh Python costs ~100).

The child joins the mount namespace (and, for unprivileged containers, the user namespace)
of the container's PID 1 through the pidfd, so the rootfs is seen exactly as the container
sees it and owners are container ids. Every path is then opened with openat2(fd of "/",
path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): symlinks and `..` are clamped to the
container's root, /proc magic links are refused, and the final component is handled on the
parent's descriptor without following it where that matters (symlinks, delete, stat). The
container may rename anything at any time; a descriptor we hold still names an inode inside
its root, so a race can at worst make us work on another file of the container, never on
the host.

Wire protocol on the child's stdout: one JSON line ({"ok": true, ...} or {"error",
"status"}), then the file's bytes for a GET of a file. A file upload answers {"ready": true}
once the target is open, reads stdin to EOF, then answers {"ok": true}.

A stopped instance has no PID 1 to join (LXD reads and writes its files all the same, from
the storage volume). The request then carries the rootfs mount plan and the instance's id
maps instead of a pidfd: the child unshares a private mount namespace (propagation private,
so nothing reaches the host's mount table), mounts the rootfs there as the runtime does
(overlay over the idmapped image, or a bind of the instance's tree, idmapped when the plan
says so), and forks a worker that joins a user namespace carrying the instance's map as its
root before serving the request with the same openat2 resolution. Owners are therefore what
the container will see: a file pushed with uid 1000 lands in an overlay upper or a shifted
tree as the host id the map gives for 1000, in an idmapped tree as 1000. Once the worker has
exited the child unmounts the rootfs and only then closes its copy of stdout, so the daemon's
EOF means nothing of the volume is mounted any more (the namespace dies with the child).

Imports only lxmgr.linux (no asyncio, no instances): the server is single-threaded, which
setns(CLONE_NEWNS) in its forked children requires. The server exits when the daemon closes
its end of the socket.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import sys
from typing import Any

from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.linux.idmapped import idmapped_clone, open_userns_fd

CHUNK = 1 << 20
MAX_REQUEST = 1 << 16
RESOLVE = c.RESOLVE_IN_ROOT | c.RESOLVE_NO_MAGICLINKS
RETRIES = 32  # openat2 answers EAGAIN under RESOLVE_IN_ROOT when `..` races a rename
TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}
# errno -> (HTTP status, message): the answers the API gives for each failure.
ERRNO_STATUS = {
    errno.ENOENT: (404, "Not found"), errno.ENOTDIR: (404, "Not found"),
    errno.EEXIST: (409, "Already exists"), errno.ENOTEMPTY: (409, "Directory not empty"),
    errno.EISDIR: (409, "Is a directory"), errno.ELOOP: (400, "Too many levels of symlinks"),
    errno.EXDEV: (400, "Path leaves the instance"), errno.EAGAIN: (409, "Path kept changing"),
    errno.EACCES: (403, "Permission denied"), errno.EPERM: (403, "Operation not permitted"),
    errno.EROFS: (409, "Read-only file system"), errno.ENOSPC: (507, "No space left on device"),
    errno.EINVAL: (400, "Invalid argument"), errno.ENAMETOOLONG: (400, "Name too long"),
}


class Refused(Exception):
    """A request the helper answers with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- entering the container -------------------------------------------------------------------

def enter(pidfd: int, userns: bool) -> int:
    """Join the container's mount (and user) namespace; the fd of its "/"."""
    # Non-dumpable first: nothing in the container may ptrace us or open our /proc files.
    libc.prctl(c.PR_SET_DUMPABLE, 0)
    libc.setns(pidfd, c.CLONE_NEWNS | (c.CLONE_NEWUSER if userns else 0))
    os.close(pidfd)
    if userns:  # become the container's root, so created files belong to it
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    os.umask(0)
    return os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def mount_stopped(rootfs: dict[str, Any], userns_fd: int | None) -> str:
    """Mount a stopped instance's rootfs on its target in a new private mount namespace (as
    lxmgr.runtime.rootfs.mount_rootfs does for a start); the target."""
    libc.unshare(c.CLONE_NEWNS)
    libc.mount(None, "/", None, c.MS_REC | c.MS_PRIVATE, None)
    target = rootfs["target"]
    st = os.lstat(target)
    if not stat.S_ISDIR(st.st_mode):
        raise Refused(500, "Instance rootfs mount point is not a directory")
    overlay = rootfs["kind"] == "overlay"
    source = rootfs["lower"] if overlay else rootfs["source"]
    fd = None
    if rootfs.get("idmap_lower") and userns_fd is not None:
        fd = idmapped_clone(source, userns_fd, readonly=overlay)
    try:
        if overlay:
            lower = f"/proc/self/fd/{fd}" if fd is not None else source
            for value in (lower, rootfs["upper"], rootfs["work"]):
                if not value or any(ch in value for ch in ",:\\\n"):
                    raise Refused(500, "Invalid overlay path in the instance rootfs")
            libc.mount("overlay", target, "overlay", 0,
                       f"lowerdir={lower},upperdir={rootfs['upper']},workdir={rootfs['work']},"
                       "index=off,metacopy=off,redirect_dir=off")
        elif fd is not None:
            libc.move_mount(fd, "", c.AT_FDCWD, target, c.MOVE_MOUNT_F_EMPTY_PATH)
        else:
            libc.mount(source, target, None, c.MS_BIND | c.MS_REC, None)
    finally:
        if fd is not None:
            os.close(fd)
    return target


def enter_userns(userns_fd: int | None) -> None:
    """Become root of the instance's user namespace (owners then read and write as the
    container's ids); host root stays for a privileged instance."""
    if userns_fd is not None:
        libc.setns(userns_fd, c.CLONE_NEWUSER)
        os.close(userns_fd)
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    os.umask(0)


def resolve(root: int, path: str, flags: int, mode: int = 0) -> int:
    """openat2 inside the container's root, retrying the EAGAIN a racing rename causes."""
    for _ in range(RETRIES):
        try:
            return libc.openat2(root, path, flags | os.O_CLOEXEC, mode, RESOLVE)
        except OSError as err:
            if err.errno != errno.EAGAIN:
                raise
    raise OSError(errno.EAGAIN, "openat2: path kept changing", path)


def split(path: str) -> tuple[str, str]:
    """(parent, last component); Refused for "/" and for a last component of "." or ".."."""
    parent, _, name = path.rstrip("/").rpartition("/")
    if name in ("", ".", ".."):
        raise Refused(400, f"Invalid path '{path}': it must name an entry")
    return parent or "/", name


def open_parent(root: int, path: str) -> tuple[int, str]:
    """(O_PATH fd of the parent directory, resolved in root; the last component)."""
    parent, name = split(path)
    return resolve(root, parent, os.O_PATH | os.O_DIRECTORY), name


# -- reading ------------------------------------------------------------------------------------

def describe(st: os.stat_result) -> dict[str, Any]:
    kind = TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        raise Refused(400, "Unsupported file type (only files, directories and symlinks)")
    return {"ok": True, "type": kind, "uid": st.st_uid, "gid": st.st_gid,
            "mode": stat.S_IMODE(st.st_mode), "size": st.st_size, "mtime": st.st_mtime}


def lstat(root: int, path: str) -> tuple[int, os.stat_result]:
    """An O_PATH fd of path's last component (not followed) and its stat."""
    fd = resolve(root, path, os.O_PATH | os.O_NOFOLLOW)
    return fd, os.fstat(fd)


def reopen(root: int, path: str, st: os.stat_result, flags: int) -> int:
    """Open path for reading and check it is still the inode that was stat'ed."""
    fd = resolve(root, path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise Refused(409, "Path changed while it was opened")
    return fd


def do_get(root: int, req: dict[str, Any], out: int) -> None:
    """stat (HEAD) or get: the description, then the entries, target or bytes."""
    fd, st = lstat(root, req["path"])
    info = describe(st)
    if info["type"] == "symlink":
        info["target"] = os.readlink("", dir_fd=fd)
    elif info["type"] == "directory" and req["op"] == "get":
        with os.scandir(reopen(root, req["path"], st, os.O_RDONLY | os.O_DIRECTORY)) as it:
            info["entries"] = sorted(e.name for e in it)
    os.close(fd)
    if info["type"] != "file" or req["op"] != "get":
        reply(out, info)
        return
    data = reopen(root, req["path"], st, os.O_RDONLY)
    reply(out, info)
    copy(data, out)


def copy(src: int, dst: int) -> int:
    """Copy src to dst in CHUNK pieces until EOF; bytes copied."""
    total = 0
    while chunk := os.read(src, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]
        total += len(chunk)
    return total


# -- writing ------------------------------------------------------------------------------------

def apply_owner(fd: int | None, parent: int, name: str, req: dict[str, Any],
                fresh: bool) -> None:
    """chown/chmod what the request gives: always when fresh, else only the `modify` keys."""
    wanted = {k for k in ("uid", "gid", "mode") if req.get(k) is not None}
    if not fresh:
        wanted &= set(req.get("modify") or ())
    uid = req["uid"] if "uid" in wanted else -1
    gid = req["gid"] if "gid" in wanted else -1
    if fd is None:  # a symlink: owner only, on the link itself
        if uid != -1 or gid != -1:
            os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        return
    if uid != -1 or gid != -1:
        os.fchown(fd, uid, gid)
    if "mode" in wanted:
        os.fchmod(fd, req["mode"])


def put_file(root: int, req: dict[str, Any], out: int) -> None:
    """Create or overwrite/append a regular file (the final symlink is followed, in root)."""
    path, append = req["path"], req.get("write") == "append"
    split(path)
    try:
        fd, st = lstat(root, path)
        os.close(fd)
        if stat.S_ISLNK(st.st_mode):
            fd = resolve(root, path, os.O_PATH)
            st = os.fstat(fd)
            os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(409, f"Path '{path}' exists and is not a regular file")
        fresh = False
    except FileNotFoundError:
        fresh = True
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY
    fd = resolve(root, path, flags | (os.O_APPEND if append else 0), req.get("mode") or 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise Refused(409, f"Path '{path}' is not a regular file")
    os.set_blocking(fd, True)
    if not append:
        os.ftruncate(fd, 0)
    apply_owner(fd, -1, "", req, fresh)
    reply(out, {"ready": True})
    copy(0, fd)
    os.close(fd)
    reply(out, {"ok": True})


def put_directory(root: int, req: dict[str, Any], out: int) -> None:
    """mkdir (an existing directory is fine: only `modify` keys change it)."""
    parent, name = open_parent(root, req["path"])
    fresh = True
    try:
        os.mkdir(name, req.get("mode") or 0o755, dir_fd=parent)
    except FileExistsError:
        fresh = False
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
    except OSError as err:
        if err.errno in (errno.ENOTDIR, errno.ELOOP):
            raise Refused(409, f"Path '{req['path']}' exists and is not a directory") from err
        raise
    apply_owner(fd, parent, name, req, fresh)
    reply(out, {"ok": True})


def put_symlink(root: int, req: dict[str, Any], out: int) -> None:
    """symlinkat(target, parent, name); an existing symlink is replaced."""
    parent, name = open_parent(root, req["path"])
    try:
        os.symlink(req["target"], name, dir_fd=parent)
    except FileExistsError:
        if not stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise Refused(409, f"Path '{req['path']}' exists and is not a symlink") from None
        os.unlink(name, dir_fd=parent)
        os.symlink(req["target"], name, dir_fd=parent)
    apply_owner(None, parent, name, req, True)
    reply(out, {"ok": True})


def do_delete(root: int, req: dict[str, Any], out: int) -> None:
    """unlinkat on the parent: a file or symlink (never followed), or an empty directory."""
    parent, name = open_parent(root, req["path"])
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        os.rmdir(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)
    reply(out, {"ok": True})


# -- main ---------------------------------------------------------------------------------------

def reply(out: int, msg: dict[str, Any]) -> None:
    os.write(out, json.dumps(msg).encode() + b"\n")


OPS = {"get": do_get, "stat": do_get, "delete": do_delete,
       "file": put_file, "directory": put_directory, "symlink": put_symlink}


def run(pidfd: int, userns: bool, req: dict[str, Any], out: int) -> int:
    """Serve one request; the exit status (0 when the reply was {"ok"})."""
    try:
        root = enter(pidfd, userns)
        OPS[req["op"]](root, req, out)
        return 0
    except (Refused, OSError) as err:
        return fail(req, out, err)


def fail(req: dict[str, Any], out: int, err: Exception) -> int:
    if isinstance(err, Refused):
        reply(out, {"error": str(err), "status": err.status})
    elif isinstance(err, OSError):
        status, text = ERRNO_STATUS.get(err.errno or 0, (500, os.strerror(err.errno or 0)))
        reply(out, {"error": f"{text}: {req.get('path')}", "status": status})
    return 1


def run_stopped(stopped: dict[str, Any], req: dict[str, Any], out: int) -> int:
    """Serve one request on a stopped instance's rootfs (see the module docstring)."""
    libc.prctl(c.PR_SET_DUMPABLE, 0)
    userns_fd = None
    try:
        if stopped.get("uid_map"):
            userns_fd = open_userns_fd(stopped["uid_map"], stopped["gid_map"])
        target = mount_stopped(stopped["rootfs"], userns_fd)
        root = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (Refused, OSError) as err:
        return fail(req, out, err)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            enter_userns(userns_fd)
            OPS[req["op"]](root, req, out)
            status = 0
        except (Refused, OSError) as err:
            status = fail(req, out, err)
        finally:
            os._exit(status)
    os.close(root)
    if userns_fd is not None:
        os.close(userns_fd)
    os.close(0)
    _, status = os.waitpid(pid, 0)
    libc.umount2(target, c.MNT_DETACH)
    return os.waitstatus_to_exitcode(status)


def child(msg: dict[str, Any], fds: list[int]) -> int:
    """In a forked child: take the pipes as stdin/stdout, serve the request."""
    if "stopped" in msg:
        stdin, stdout = fds
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.close(stdin)
        os.close(stdout)
        try:
            return run_stopped(msg["stopped"], msg["req"], 1)
        except BrokenPipeError:
            return 1
    pidfd, stdin, stdout = fds
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.close(stdin)
    os.close(stdout)
    try:
        return run(pidfd, bool(msg["userns"]), msg["req"], 1)
    except BrokenPipeError:  # the daemon gave up on the transfer
        return 1


def serve(sock: socket.socket) -> None:
    """Fork a child per request ({"userns", "req"} + fds [pidfd, stdin, stdout], or
    {"stopped", "req"} + fds [stdin, stdout]) until the daemon closes its end; children are
    reaped by the kernel (SIGCHLD ignored in the server, default again in each child, which
    waits for its own worker)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    libc.prctl(c.PR_SET_DUMPABLE, 0)
    while True:
        raw, fds, _flags, _addr = socket.recv_fds(sock, MAX_REQUEST, 3)
        if not raw:
            return
        try:
            msg = json.loads(raw)
        except ValueError:
            msg = {}
        if len(fds) != (2 if "stopped" in msg else 3) or "req" not in msg:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            status = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sock.close()
                status = child(msg, fds)
            finally:
                os._exit(status)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
