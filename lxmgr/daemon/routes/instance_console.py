"""POST /1.0/instances/{name}/console: LXD's console websocket (type "console").

The operation (class websocket) hands out secrets for "0" (the console, both directions)
and "control" (window-resize). Once "0" connects, the daemon gives the container's
supervisor one end of a socketpair (protocol.CONSOLE_ATTACH) and pumps bytes between the
other end and the websocket; the session ends when the client closes either socket or the
container stops. GET (the log) and DELETE (clear it) stay in routes.instances.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

from aiohttp import WSMsgType, web

from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.daemon.routes.instance_exec import (
    CONNECT_TIMEOUT,
    SESSIONS,
    WebsocketSession,
    _fd_to_ws,
    _ws_to_fd,
)
from lxmgr.errors import Conflict, InvalidConfig, InvalidState, NotSupported
from lxmgr.instances.manager import Manager
from lxmgr.model.project import display, instance_url
from lxmgr.supervisor import control, protocol

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


class ConsoleSession(WebsocketSession):
    """One console attach; the websocket route drives it like an exec session."""

    def __init__(self, manager: Manager, name: str, width: int, height: int) -> None:
        super().__init__(manager, name, ["0"])
        self.size = (height, width)

    async def run(self, op: Operation) -> dict[str, Any]:
        try:
            try:
                await asyncio.wait_for(self.attached.wait(), CONNECT_TIMEOUT)
            except TimeoutError:
                raise Conflict("Timed out waiting for the console websocket") from None
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                await asyncio.to_thread(self._supervisor, protocol.CONSOLE_ATTACH,
                                        fds=[theirs.fileno()])
                await asyncio.to_thread(self._resize, *self.size)
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            reader = ours.detach()
            writer = os.dup(reader)
            pumps = [asyncio.create_task(_ws_to_fd(self.sockets["0"], writer, close=True)),
                     asyncio.create_task(_fd_to_ws(reader, self.sockets["0"]))]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            return {}
        finally:
            self.finished.set()
            await asyncio.gather(*(ws.close() for ws in self.sockets.values()),
                                 return_exceptions=True)
            SESSIONS.pop(self.op_id, None)

    def _supervisor(self, cmd: str, **args: Any) -> dict[str, Any]:
        try:
            return control.call(self.manager.socket_path(self.name), cmd, **args)
        except control.NotRunning:
            raise InvalidState(f"Instance '{self.name}' is not running") from None

    def _resize(self, rows: int, cols: int) -> None:
        self._supervisor(protocol.CONSOLE_RESIZE, rows=rows, cols=cols)

    async def _control(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                message = json.loads(msg.data)
                if message.get("command") == "window-resize":
                    args = message.get("args") or {}
                    await asyncio.to_thread(self._resize, int(args["height"]),
                                            int(args["width"]))
            except (ValueError, TypeError, KeyError, OSError) as err:
                log.debug("Ignored console control message %r: %s", msg.data, err)


@routes.post("/1.0/instances/{name}/console")
async def console_attach(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name = projects.instance_name(request)
    body = await json_body(request, required=False)
    if field(body, "type", str, "console") != "console":
        raise NotSupported("Only the text console is supported (type 'console')")
    width, height = field(body, "width", int, 80) or 80, field(body, "height", int, 24) or 24
    if not (0 < width <= 10000 and 0 < height <= 10000):
        raise InvalidConfig("Invalid console size")
    if await asyncio.to_thread(manager.status, name) != "Running":
        raise InvalidState(f"Instance '{name}' is not running")
    session = ConsoleSession(manager, name, width, height)
    op = request.app[OPERATIONS].create(
        f"Showing console of {display(name)}", session.run, class_="websocket",
        resources={"instances": [instance_url(name)]},
        metadata={"fds": dict(session.secrets)})
    SESSIONS[op.id] = session
    session.op_id = op.id
    return responses.async_op(op)
