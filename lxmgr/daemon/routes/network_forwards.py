"""/1.0/networks/{name}/forwards: LXD's network forwards of a managed bridge (list, create,
show, replace, merge, delete), applied as DNAT in the network's nft table."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.daemon import responses
from lxmgr.daemon.keys import MANAGER
from lxmgr.daemon.responses import json_body
from lxmgr.instances.network_service import NetworkService

routes = web.RouteTableDef()


def _service(request: web.Request) -> NetworkService:
    return request.app[MANAGER].network_service


@routes.get("/1.0/networks/{name}/forwards")
async def list_forwards(request: web.Request) -> web.Response:
    service = _service(request)
    name = request.match_info["name"]
    level = responses.recursion(request)

    def listing() -> list[Any]:
        if level:
            return service.list_forwards(name)
        return [f"/1.0/networks/{name}/forwards/{a}" for a in service.forward_names(name)]
    return responses.sync(await asyncio.to_thread(listing))


@routes.post("/1.0/networks/{name}/forwards")
async def create_forward(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await json_body(request)
    listen = await asyncio.to_thread(_service(request).create_forward, name, body)
    return responses.sync({}, status=201,
                          headers={"Location": f"/1.0/networks/{name}/forwards/{listen}"})


@routes.get("/1.0/networks/{name}/forwards/{address}")
async def get_forward(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(
        _service(request).get_forward, request.match_info["name"],
        request.match_info["address"]))


async def _update(request: web.Request, merge: bool) -> web.Response:
    body = await json_body(request)
    await asyncio.to_thread(_service(request).update_forward, request.match_info["name"],
                            request.match_info["address"], body, merge=merge)
    return responses.sync({})


@routes.put("/1.0/networks/{name}/forwards/{address}")
async def put_forward(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


@routes.patch("/1.0/networks/{name}/forwards/{address}")
async def patch_forward(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


@routes.delete("/1.0/networks/{name}/forwards/{address}")
async def delete_forward(request: web.Request) -> web.Response:
    await asyncio.to_thread(_service(request).delete_forward, request.match_info["name"],
                            request.match_info["address"])
    return responses.sync({})
