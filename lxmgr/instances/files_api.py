"""LXD's instance files API (GET/HEAD/POST/DELETE /1.0/instances/{name}/files?path=): header
validation and the async side of each transfer.

Each request is served by a child of one `python -S -m lxmgr.runtime.fileops` fork server
(started on first use): the child joins the running container's mount (and user) namespace
through a pidfd of its PID 1 and resolves every path with openat2(RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS) there (see that module for why this is safe against symlink and
rename races). Data flows through the child's stdin/stdout pipes in CHUNK pieces, never
whole in memory. A stopped instance's files are served as LXD serves them (people push
configuration before the first start): the child mounts the instance's rootfs in a private
mount namespace of its own, as the runtime would, and works there as the container's root
(the helper's module docstring says how); every answer is read to the child's EOF, so the
volume is unmounted again before the request completes.

Imports the runtime helper only by module name (it runs in its own process), supervisor's
control client, linux.libc (pidfd_open), errors and paths; never daemon or client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, KernelError, LxmgrError, NotFound
from lxmgr.linux import libc
from lxmgr.supervisor import control, protocol

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DEFAULT_MAX_UPLOAD = 4 << 30
MAX_PATH = 4096
MAX_LINE = 64 << 20  # the helper's JSON line: a directory listing can be long
PREFIXES = ("X-LXD-", "X-Incus-")  # Incus renamed the headers; accept both
TYPES = ("file", "directory", "symlink")
WRITES = ("overwrite", "append")
PERMS = ("uid", "gid", "mode")
_ID_RE = re.compile(r"[0-9]{1,10}")
_MODE_RE = re.compile(r"(?:0o)?([0-7]{1,5})")


class TooLarge(LxmgrError):
    """An upload above LXMGR_MAX_FILE_UPLOAD."""

    status = 413


def max_upload() -> int:
    """The upload cap in bytes: $LXMGR_MAX_FILE_UPLOAD, else 4 GiB."""
    raw = os.environ.get("LXMGR_MAX_FILE_UPLOAD", "")
    return int(raw) if raw.isdigit() else DEFAULT_MAX_UPLOAD


# -- parsing (pure) -----------------------------------------------------------------------------

def parse_path(raw: str | None) -> str:
    """The `path` query parameter, made absolute; InvalidConfig when missing or malformed."""
    if not raw:
        raise InvalidConfig("Missing 'path' parameter")
    if "\0" in raw or len(raw) > MAX_PATH:
        raise InvalidConfig("Invalid 'path' parameter")
    return raw if raw.startswith("/") else "/" + raw


def header(headers: Mapping[str, str], key: str) -> str | None:
    """X-LXD-<key> (or X-Incus-<key>), None when absent."""
    for prefix in PREFIXES:
        value = headers.get(prefix + key)
        if value is not None:
            return value
    return None


def _id(headers: Mapping[str, str], key: str) -> int | None:
    raw = header(headers, key)
    if raw is None:
        return None
    if not _ID_RE.fullmatch(raw) or int(raw) >= 2**32 - 1:
        raise InvalidConfig(f"Invalid X-LXD-{key} header: expected an id >= 0")
    return int(raw)


def _mode(headers: Mapping[str, str]) -> int | None:
    raw = header(headers, "mode")
    if raw is None:
        return None
    match = _MODE_RE.fullmatch(raw)
    if match is None or int(match[1], 8) > 0o7777:
        raise InvalidConfig("Invalid X-LXD-mode header: expected octal <= 07777")
    return int(match[1], 8)


def _choice(headers: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str:
    raw = header(headers, key)
    if raw is None:
        return allowed[0]
    if raw not in allowed:
        raise InvalidConfig(f"Invalid X-LXD-{key} header: expected one of "
                            f"{', '.join(allowed)}")
    return raw


def _modify(headers: Mapping[str, str]) -> list[str]:
    raw = header(headers, "modify-perm")
    if not raw:
        return []
    keys = [k.strip() for k in raw.split(",")]
    if any(k not in PERMS for k in keys):
        raise InvalidConfig("Invalid X-LXD-modify-perm header: expected uid, gid, mode")
    return keys


@dataclass
class PushRequest:
    """A validated POST: what to create at path, and its owner and mode (container ids)."""

    path: str
    type: str = "file"
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    write: str = "overwrite"
    modify: list[str] = field(default_factory=list)

    def helper_request(self) -> dict[str, Any]:
        return {"op": self.type, "path": self.path, "uid": self.uid, "gid": self.gid,
                "mode": self.mode, "write": self.write, "modify": self.modify}


def parse_push(path: str | None, headers: Mapping[str, str]) -> PushRequest:
    """A PushRequest from the query path and the X-LXD-* headers; InvalidConfig names the
    first bad header."""
    return PushRequest(path=parse_path(path), type=_choice(headers, "type", TYPES),
                       uid=_id(headers, "uid"), gid=_id(headers, "gid"), mode=_mode(headers),
                       write=_choice(headers, "write", WRITES), modify=_modify(headers))


def response_headers(info: dict[str, Any]) -> dict[str, str]:
    """X-LXD-uid/gid/mode/type (and modified) for a helper's description of a path."""
    from email.utils import formatdate

    return {"X-LXD-uid": str(info["uid"]), "X-LXD-gid": str(info["gid"]),
            "X-LXD-mode": f"{info['mode']:04o}", "X-LXD-type": info["type"],
            "X-LXD-modified": formatdate(info["mtime"], usegmt=True)}


# -- the helper -------------------------------------------------------------------------------

class _Server:
    """The fork server (lxmgr.runtime.fileops), started on first use, restarted if it died.
    It exits by itself when its socket closes (daemon exit) or on shutdown()."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-S", "-m", "lxmgr.runtime.fileops", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                env={"PYTHONPATH": paths.child_pythonpath(), "PATH": "/usr/sbin:/usr/bin"})
        ours.settimeout(10)
        self.sock = ours

    def send(self, msg: dict[str, Any], fds: list[int]) -> None:
        """Hand one request and its descriptors to the server."""
        raw = json.dumps(msg).encode()
        with self.lock:
            for attempt in (1, 2):
                if self.sock is None or self.proc is None or self.proc.poll() is not None:
                    self.shutdown_locked()
                    self._start()
                assert self.sock is not None
                try:
                    socket.send_fds(self.sock, [raw], fds)
                    return
                except (BrokenPipeError, ConnectionResetError):
                    if attempt == 2:
                        raise

    def shutdown(self) -> None:
        with self.lock:
            self.shutdown_locked()

    def shutdown_locked(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


_SERVER = _Server()


def shutdown() -> None:
    """Stop the fork server (tests; the daemon's exit closes it anyway)."""
    _SERVER.shutdown()


def _stopped(manager: Any, spec: Any) -> dict[str, Any]:
    """What the helper needs to mount a stopped instance's rootfs: the storage driver's
    mount plan and the instance's id maps (empty when privileged)."""
    from lxmgr.instances.files import spec_dict

    driver = manager.pools.driver_for(spec)
    if not driver.volume_exists(spec.name):
        raise NotFound(f"Storage volume of instance '{spec.name}' is missing")
    idmap = manager._idmap(spec)
    rootfs = driver.rootfs_spec(spec.name, manager._image(spec).rootfs, idmap)
    return {"rootfs": spec_dict(rootfs),
            "uid_map": idmap.uid_map_text() if idmap else "",
            "gid_map": idmap.gid_map_text() if idmap else ""}


def _target(manager: Any, name: str) -> tuple[int, bool] | dict[str, Any]:
    """(pidfd of the container's PID 1, whether it has a user namespace), or, when the
    instance is stopped, its rootfs plan (_stopped). The pid is asked twice around
    pidfd_open, so a pid recycled by a stop in between is never used."""
    spec = manager.store.get(name)
    sock = manager.socket_path(name)
    if not manager.is_running(name):
        return _stopped(manager, spec)
    try:
        pid = int(control.call(sock, protocol.GET_STATE, wait=5)["pid"])
        pidfd = libc.pidfd_open(pid)
        try:
            if int(control.call(sock, protocol.GET_STATE, wait=5)["pid"]) != pid:
                raise control.NotRunning("Instance restarted")
        except BaseException:
            os.close(pidfd)
            raise
    except (control.NotRunning, ProcessLookupError):
        raise Conflict(f"Instance '{name}' is not running") from None
    return pidfd, manager._idmap(spec) is not None


def _launch(manager: Any, name: str, req: dict[str, Any]) -> tuple[int, int]:
    """Start serving req in the container: (write end of its stdin, read end of its stdout)."""
    target = _target(manager, name)
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    fds = [in_r, out_w]
    if isinstance(target, dict):
        msg: dict[str, Any] = {"stopped": target, "req": req}
    else:
        fds.insert(0, target[0])
        msg = {"userns": target[1], "req": req}
    try:
        _SERVER.send(msg, fds)
    except BaseException:
        os.close(in_w)
        os.close(out_r)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    return in_w, out_r


class _Helper:
    """One request's pipes as asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, transports: list[asyncio.BaseTransport],
                 writer: asyncio.StreamWriter | None) -> None:
        self.reader = reader
        self.writer = writer
        self.transports = transports

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


async def _start(manager: Any, name: str, req: dict[str, Any], stdin: bool = False) -> _Helper:
    in_w, out_r = await asyncio.to_thread(_launch, manager, name, req)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    try:
        rtrans, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(out_r, "rb", buffering=0))
    except BaseException:
        os.close(in_w)
        raise
    if not stdin:
        os.close(in_w)
        return _Helper(reader, [rtrans], None)
    wtrans, wproto = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(in_w, "wb", buffering=0))
    writer = asyncio.StreamWriter(wtrans, wproto, None, loop)
    return _Helper(reader, [rtrans, wtrans], writer)


def _error(message: str, status: int) -> LxmgrError:
    kinds: dict[int, type[LxmgrError]] = {400: InvalidConfig, 404: NotFound, 409: Conflict}
    err = kinds.get(status, LxmgrError)(message)
    err.status = status
    return err


async def _line(helper: _Helper) -> dict[str, Any]:
    """The helper's next JSON line; its error as the matching LxmgrError."""
    raw = await helper.reader.readline()
    if not raw:
        raise KernelError("Files helper failed (see the daemon log)")
    msg = json.loads(raw)
    if "error" in msg:
        raise _error(str(msg["error"]), int(msg.get("status", 500)))
    return dict(msg)


@contextlib.asynccontextmanager
async def _helper(manager: Any, name: str, req: dict[str, Any],
                  stdin: bool = False) -> AsyncIterator[_Helper]:
    helper = await _start(manager, name, req, stdin)
    try:
        yield helper
        # The child's EOF: for a stopped instance, its rootfs is unmounted by then.
        while await helper.reader.read(CHUNK):
            pass
    finally:
        helper.close()


# -- the operations ------------------------------------------------------------------------------

async def stat(manager: Any, name: str, path: str) -> dict[str, Any]:
    """HEAD: the description of path (type, uid, gid, mode, size, mtime; symlink target)."""
    async with _helper(manager, name, {"op": "stat", "path": parse_path(path)}) as helper:
        return await _line(helper)


@contextlib.asynccontextmanager
async def pull(manager: Any, name: str, path: str) \
        -> AsyncIterator[tuple[dict[str, Any], AsyncIterator[bytes]]]:
    """GET: (description with `entries` or `target`, the file's bytes in chunks)."""
    async with _helper(manager, name, {"op": "get", "path": parse_path(path)}) as helper:
        info = await _line(helper)

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await helper.reader.read(CHUNK):
                yield chunk
        yield info, chunks()


async def push(manager: Any, name: str, req: PushRequest,
               read: Callable[[int], Awaitable[bytes]]) -> None:
    """POST: create or write path; read(n) gives the body (content, or a symlink's target)."""
    if req.type != "file":
        await _push_small(manager, name, req, read)
        return
    async with _helper(manager, name, req.helper_request(), stdin=True) as helper:
        await _line(helper)  # ready: the file is open
        await _stream_in(helper, read)
        await _line(helper)


async def _stream_in(helper: _Helper, read: Callable[[int], Awaitable[bytes]]) -> None:
    """Body -> helper stdin, refusing more than max_upload() bytes."""
    assert helper.writer is not None
    cap, total = max_upload(), 0
    try:
        while chunk := await read(CHUNK):
            total += len(chunk)
            if total > cap:
                raise TooLarge(f"File upload is larger than {cap} bytes "
                               "(LXMGR_MAX_FILE_UPLOAD); the file is incomplete")
            helper.writer.write(chunk)
            await helper.writer.drain()
        helper.writer.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the helper stopped reading: its error line says why


async def _push_small(manager: Any, name: str, req: PushRequest,
                      read: Callable[[int], Awaitable[bytes]]) -> None:
    """A directory, or a symlink whose target is the body."""
    body = b""
    while chunk := await read(CHUNK):
        body += chunk
        if len(body) > MAX_PATH:
            raise InvalidConfig("Symlink target is longer than 4096 bytes")
    message = req.helper_request()
    if req.type == "symlink":
        if not body or b"\0" in body:
            raise InvalidConfig("Invalid symlink target: expected a non-empty path")
        message["target"] = os.fsdecode(body)
    async with _helper(manager, name, message) as helper:
        await _line(helper)


async def delete(manager: Any, name: str, path: str) -> None:
    """DELETE: a file or symlink (never followed), or an empty directory."""
    async with _helper(manager, name, {"op": "delete", "path": parse_path(path)}) as helper:
        await _line(helper)
