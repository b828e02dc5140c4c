"""POST /1.0/instances/{name}/exec and the exec websockets (LXD's protocol).

With wait-for-websocket the operation (class websocket) hands out one secret per stream:
"0" (the pty, interactive) or "0", "1", "2" (pipes), plus "control". Clients attach with
GET /1.0/operations/{id}/websocket?secret=...; process bytes travel as binary frames, an
empty text frame (or a close) ends a stream. Control messages: window-resize (width and
height are strings) and signal. Without websockets the command runs with /dev/null as stdin
and its output is recorded to files when record-output is set. A command that cannot be
executed ends the operation as LXD's does (metadata `return` 127 not found, 126 not
executable, nothing on its streams); metadata `error` adds why, for our CLI to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import json
import logging
import os
import secrets
import signal
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses, websocket
from lxmgr.daemon.keys import MANAGER, OPERATIONS, WEBSOCKETS
from lxmgr.daemon.responses import field, json_body
from lxmgr.daemon.routes.instances import exec_output_dir
from lxmgr.errors import CommandFailed, Conflict, InvalidConfig, InvalidState, LxmgrError, NotFound
from lxmgr.instances.manager import Manager
from lxmgr.linux import libc
from lxmgr.model.project import display, instance_url

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0  # how long a close waits for the client's answer
# One frame's bound (pylxd sends stdin_payload as one message): a length header past it is
# refused (1009) instead of buffered.
MAX_MESSAGE = 64 << 20
SESSIONS: dict[str, WebsocketSession] = {}


class ExecRequest:
    """The validated body of an exec request."""

    def __init__(self, body: dict[str, Any]) -> None:
        command = field(body, "command", list, [])
        if not command or not all(isinstance(a, str) for a in command):
            raise InvalidConfig("Invalid 'command': expected a non-empty list of strings")
        self.command: list[str] = command
        env = field(body, "environment", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise InvalidConfig("Invalid 'environment': expected string values")
        self.env: dict[str, str] = env
        self.wait = field(body, "wait-for-websocket", bool, False)
        self.interactive = field(body, "interactive", bool, False)
        self.record = field(body, "record-output", bool, False)
        self.width = field(body, "width", int, 80) or 80
        self.height = field(body, "height", int, 24) or 24
        self.uid = field(body, "user", int, 0)
        self.gid = field(body, "group", int, 0)
        self.cwd = field(body, "cwd", str, "")


def _environment(manager: Manager, name: str, req: ExecRequest) -> dict[str, str]:
    """Instance `environment.*` keys fill what the request leaves out (LXD's rule)."""
    spec = manager.get(name)
    config, _ = manager.expanded(spec)
    state = manager.status(name)
    if state == "Stopped":
        raise InvalidState(f"Instance '{name}' is not running")
    if state == "Frozen":
        raise InvalidState(f"Instance '{name}' is frozen")
    base = {k.removeprefix("environment."): v for k, v in config.items()
            if k.startswith("environment.")}
    return {**base, **req.env}


@routes.post("/1.0/instances/{name}/exec")
async def exec_command(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name = projects.instance_name(request)
    req = ExecRequest(await json_body(request))
    req.env = await asyncio.to_thread(_environment, manager, name, req)
    ops = request.app[OPERATIONS]
    resources = {"instances": [instance_url(name)]}
    if not req.wait:
        async def work(op: Operation) -> dict[str, Any]:
            return await asyncio.to_thread(_run_detached, manager, name, req, op.id)
        return responses.async_op(ops.create(f"Executing command in {display(name)}", work,
                                             resources=resources))
    session = ExecSession(manager, name, req, request.app[WEBSOCKETS])
    op = ops.create(f"Executing command in {display(name)}", session.run, class_="websocket",
                    resources=resources, metadata={
                        "fds": dict(session.secrets), "command": req.command,
                        "environment": req.env, "interactive": req.interactive})
    SESSIONS[op.id] = session
    session.op_id = op.id
    return responses.async_op(op)


def _run_detached(manager: Manager, name: str, req: ExecRequest, op_id: str) -> dict[str, Any]:
    """No websockets: stdin is /dev/null; output goes to record files or /dev/null."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    outputs: dict[str, str] = {}
    failure = ""
    fds = [null, null, null]
    try:
        if req.record:
            directory = exec_output_dir(name)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            for index, suffix in ((1, "stdout"), (2, "stderr")):
                file = f"exec_{op_id}.{suffix}"
                fds[index] = os.open(os.path.join(directory, file), os.O_WRONLY | os.O_CREAT |
                                     os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                outputs[str(index)] = instance_url(name, f"/logs/exec-output/{file}")
        code = manager.exec(name, req.command, stdin=fds[0], stdout=fds[1], stderr=fds[2],
                            env=req.env, cwd=req.cwd, uid=req.uid, gid=req.gid)
    except CommandFailed as err:
        code, failure = err.exit_status, str(err)
    finally:
        for fd in set(fds):
            os.close(fd)
    result: dict[str, Any] = {"return": code}
    if failure:
        result["error"] = failure
    if outputs:
        result["output"] = outputs
    return result


class WebsocketSession:
    """An operation's websockets: one secret per stream (plus "control"); attach() is called
    by the websocket route and returns when the session is over. Exec and console sessions."""

    def __init__(self, manager: Manager, name: str, streams: list[str]) -> None:
        self.manager, self.name = manager, name
        self.required = set(streams)
        self.secrets = {s: secrets.token_hex(32) for s in [*streams, "control"]}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.attached = asyncio.Event()
        self.finished = asyncio.Event()
        self.op_id = ""

    def stream_for(self, secret: str) -> str | None:
        for stream, expected in self.secrets.items():
            if hmac.compare_digest(expected, secret):
                return stream
        return None

    async def attach(self, stream: str, ws: web.WebSocketResponse) -> None:
        if stream in self.sockets:
            raise Conflict(f"Stream '{stream}' is already connected")
        self.sockets[stream] = ws
        if self.required <= set(self.sockets):
            self.attached.set()
        if stream == "control":
            await self._control(ws)
        await self.finished.wait()

    async def _control(self, ws: web.WebSocketResponse) -> None:
        raise NotImplementedError


class ExecSession(WebsocketSession):
    """One websocket exec: waits for its streams, runs the command, pumps the bytes."""

    def __init__(self, manager: Manager, name: str, req: ExecRequest,
                 registry: set[web.WebSocketResponse]) -> None:
        super().__init__(manager, name, ["0"] if req.interactive else ["0", "1", "2"])
        self.req = req
        self.registry = registry
        self.pid = 0
        self.master: int | None = None
        self.abandoned = False  # the control socket closed: the command must not run on

    async def run(self, op: Operation) -> dict[str, Any]:
        try:
            try:
                await asyncio.wait_for(self.attached.wait(), CONNECT_TIMEOUT)
            except TimeoutError:
                raise Conflict("Timed out waiting for websockets to connect") from None
            try:
                if self.req.interactive:
                    code = await self._run_pty()
                else:
                    code = await self._run_pipes()
            except CommandFailed as err:
                return {"return": err.exit_status, "error": str(err)}
            return {"return": code}
        finally:
            self.finished.set()
            await asyncio.gather(*(ws.close() for ws in self.sockets.values()),
                                 return_exceptions=True)
            SESSIONS.pop(self.op_id, None)

    async def _run_pipes(self) -> int:
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            handle, self.pid, _ = await asyncio.to_thread(
                self.manager.exec_start, self.name, self.req.command, [stdin_r, out_w, err_w],
                env=self.req.env, cwd=self.req.cwd, uid=self.req.uid, gid=self.req.gid)
        except BaseException:
            for fd in (stdin_w, out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, out_w, err_w):
                os.close(fd)
        pumps = [asyncio.create_task(self._stdin(stdin_w)),
                 asyncio.create_task(_fd_to_ws(out_r, self.sockets["1"])),
                 asyncio.create_task(_fd_to_ws(err_r, self.sockets["2"]))]
        return await self._wait(handle, pumps, outputs=pumps[1:])

    async def _run_pty(self) -> int:
        handle, self.pid, master = await asyncio.to_thread(
            self.manager.exec_start, self.name, self.req.command, None, pty=True,
            env=self.req.env, cwd=self.req.cwd, uid=self.req.uid, gid=self.req.gid,
            rows=self.req.height, cols=self.req.width)
        if master is None:
            return int(await asyncio.to_thread(self.manager.exec_wait, handle))
        self.master = master
        writer_fd = os.dup(master)
        pumps = [asyncio.create_task(self._stdin(writer_fd)),
                 asyncio.create_task(_fd_to_ws(master, self.sockets["0"], close_ws=False))]
        try:
            return await self._wait(handle, pumps, outputs=pumps[1:])
        finally:
            self.master = None

    async def _stdin(self, fd: int) -> None:
        """Stream "0" into the command; a client that breaks it (malformed frames, lost
        connection) is gone: the command is killed, as when it drops the control socket."""
        if await _ws_to_fd(self.sockets["0"], fd, close=True) and self.pid:
            log.info("Exec in %s: stdin websocket broken, killing the command", self.name)
            _kill(self.pid, signal.SIGKILL)

    async def _wait(self, handle: Any, pumps: list[asyncio.Task[None]],
                    outputs: list[asyncio.Task[None]]) -> int:
        if self.abandoned:  # control went away while the command was starting
            _kill(self.pid, signal.SIGKILL)
        try:
            code = int(await asyncio.to_thread(self.manager.exec_wait, handle))
            # Let the output drain (the pipes hit EOF once every writer is gone).
            await asyncio.wait(outputs, timeout=5)
            return code
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _control(self, ws: web.WebSocketResponse) -> None:
        """window-resize and signal messages until the control socket closes; closing it
        before the command exits kills the command (LXD's rule)."""
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                control = json.loads(msg.data)
                self._apply_control(control)
            except (ValueError, TypeError, KeyError, OSError) as err:
                log.debug("Ignored exec control message %r: %s", msg.data, err)
        if not self.finished.is_set():
            self.abandoned = True
            if self.pid:
                _kill(self.pid, signal.SIGKILL)

    def _apply_control(self, control: dict[str, Any]) -> None:
        command = control.get("command")
        if command == "window-resize" and self.master is not None:
            args = control.get("args") or {}
            libc.set_winsize(self.master, int(args["height"]), int(args["width"]))
        elif command == "signal" and self.pid:
            _kill(self.pid, int(control["signal"]))


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


async def _ws_to_fd(ws: web.WebSocketResponse, fd: int, close: bool) -> bool:
    """Client bytes into the command's stdin (or pty); an empty text frame or a close ends
    the stream. True when it ended abnormally: a malformed frame (aiohttp answered with
    1002/1007/1009) or a connection lost without a close frame."""
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await _write_all(fd, msg.data)
            elif msg.type == WSMsgType.TEXT:
                if not msg.data:
                    break
                await _write_all(fd, msg.data.encode())
            elif msg.type == WSMsgType.ERROR:
                log.info("Websocket stream broken by the client: %s", msg.data)
                return True
            else:
                break
        return ws.close_code == WSCloseCode.ABNORMAL_CLOSURE
    finally:
        if close:
            os.close(fd)


async def _write_all(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
            view = view[written:]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
        except OSError as err:
            if err.errno in (errno.EPIPE, errno.EIO):
                return  # the command stopped reading
            raise


async def _fd_to_ws(fd: int, ws: web.WebSocketResponse, close_ws: bool = True) -> None:
    """The command's output as binary frames until EOF (EIO on a pty whose last user left)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_reader(fd, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
                continue
            except OSError as err:
                if err.errno == errno.EIO:
                    break
                raise
            if not data:
                break
            await ws.send_bytes(data)
        if close_ws:
            await ws.send_str("")  # end of stream; the session closes the socket
    except ConnectionResetError:
        pass
    finally:
        os.close(fd)


@routes.get("/1.0/operations/{id}/websocket")
async def operation_websocket(request: web.Request) -> web.StreamResponse:
    op_id = request.match_info["id"]
    session = SESSIONS.get(op_id)
    if session is None:
        request.app[OPERATIONS].get(op_id)  # 404 when it never existed
        raise Conflict("This operation has no websocket to attach to")
    stream = session.stream_for(request.query.get("secret", ""))
    if stream is None:
        return responses.error("Invalid websocket secret", 403)
    ws = web.WebSocketResponse(heartbeat=10, max_msg_size=MAX_MESSAGE, timeout=CLOSE_TIMEOUT)
    await websocket.prepare(ws, request)
    request.app[WEBSOCKETS].add(ws)
    try:
        await session.attach(stream, ws)
    except (LxmgrError, NotFound) as err:
        await ws.close(message=str(err).encode())
    finally:
        request.app[WEBSOCKETS].discard(ws)
    return ws
