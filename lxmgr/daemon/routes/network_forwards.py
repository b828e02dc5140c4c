"""/1.0/networks/{name}/forwards: LXD's network forwards of a managed bridge (list, create,
show, replace, merge, delete), applied as DNAT in the network's nft table."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.daemon import responses
from lxmgr.daemon.keys import EVENTS, MANAGER
from lxmgr.daemon.responses import json_body
from lxmgr.instances.network_forwards import NetworkForwards

routes = web.RouteTableDef()


def _forwards(request: web.Request) -> NetworkForwards:
    return NetworkForwards(request.app[MANAGER].db)


@routes.get("/1.0/networks/{name}/forwards")
async def list_forwards(request: web.Request) -> web.Response:
    forwards = _forwards(request)
    name = request.match_info["name"]
    level = responses.recursion(request)

    def listing() -> list[Any]:
        if level:
            return forwards.list(name)
        return [f"/1.0/networks/{name}/forwards/{a}" for a in forwards.names(name)]
    return responses.sync(await asyncio.to_thread(listing))


@routes.post("/1.0/networks/{name}/forwards")
async def create_forward(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await json_body(request)
    listen = await asyncio.to_thread(_forwards(request).create, name, body)
    request.app[EVENTS].changed("networks", "network-forward-created",
                                f"{name}/forwards/{listen}")
    return responses.sync({}, status=201,
                          headers={"Location": f"/1.0/networks/{name}/forwards/{listen}"})


@routes.get("/1.0/networks/{name}/forwards/{address}")
async def get_forward(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(
        _forwards(request).get, request.match_info["name"], request.match_info["address"]))


async def _update(request: web.Request, merge: bool) -> web.Response:
    name = request.match_info["name"]
    body = await json_body(request)
    await asyncio.to_thread(_forwards(request).update, name, request.match_info["address"],
                            body, merge)
    request.app[EVENTS].changed("networks", "network-forward-updated",
                                f"{name}/forwards/{request.match_info['address']}")
    return responses.sync({})


@routes.put("/1.0/networks/{name}/forwards/{address}")
async def put_forward(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


@routes.patch("/1.0/networks/{name}/forwards/{address}")
async def patch_forward(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


@routes.delete("/1.0/networks/{name}/forwards/{address}")
async def delete_forward(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await asyncio.to_thread(_forwards(request).delete, name, request.match_info["address"])
    request.app[EVENTS].changed("networks", "network-forward-deleted",
                                f"{name}/forwards/{request.match_info['address']}")
    return responses.sync({})
