"""GET /1.0/events: a websocket of JSON text frames, filtered by ?type= and by project
(`project=`, or every project with `all-projects=true`)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType, web

from lxmgr.daemon import projects, websocket
from lxmgr.daemon.keys import EVENTS, WEBSOCKETS
from lxmgr.errors import InvalidConfig

routes = web.RouteTableDef()
TYPES = frozenset({"lifecycle", "operation", "logging"})


@routes.get("/1.0/events")
async def events(request: web.Request) -> web.WebSocketResponse:
    wanted = frozenset(t for t in request.query.get("type", "").split(",") if t)
    if wanted - TYPES:
        raise InvalidConfig(f"Invalid event type '{sorted(wanted - TYPES)[0]}'")
    ws = web.WebSocketResponse(heartbeat=30)
    await websocket.prepare(ws, request)
    bus = request.app[EVENTS]
    scope = projects.scope(request)
    sub = bus.subscribe(wanted, None if scope.all_projects else scope.name)
    request.app[WEBSOCKETS].add(ws)
    reader = asyncio.create_task(_drain(ws), name="events-reader")
    getter: asyncio.Task[Any] | None = None
    try:
        while not ws.closed:
            getter = asyncio.create_task(sub.queue.get(), name="events-get")
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                break  # the client closed, or broke the protocol (aiohttp sent the close)
            await ws.send_json(getter.result())
    finally:
        bus.unsubscribe(sub)
        request.app[WEBSOCKETS].discard(ws)
        for task in (reader, getter):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (reader, getter) if t), return_exceptions=True)
        await ws.close()
    return ws


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) client frames until it closes."""
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
