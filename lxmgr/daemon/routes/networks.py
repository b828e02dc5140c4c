"""/1.0/networks: managed bridge networks (create, show, replace, merge, delete), their
leases and state; and GET /1.0/doctor (lxmgr's own): host and network diagnosis."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp import web

from lxmgr.daemon import responses
from lxmgr.daemon.keys import MANAGER
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import InvalidConfig
from lxmgr.instances.doctor import diagnose
from lxmgr.instances.host import check_host
from lxmgr.instances.network_service import NetworkService

routes = web.RouteTableDef()


def render(service: NetworkService, name: str) -> dict[str, Any]:
    record = service.get(name)
    return {"name": name, "description": record["description"], "type": record["type"],
            "managed": True, "status": "Created", "config": dict(record["config"]),
            "used_by": service.used_by(name), "locations": ["none"],
            "project": "default"}


def _service(request: web.Request) -> NetworkService:
    return request.app[MANAGER].network_service


@routes.get("/1.0/networks")
async def list_networks(request: web.Request) -> web.Response:
    service = _service(request)
    level = responses.recursion(request)

    def listing() -> list[Any]:
        names = service.names()
        return [render(service, n) if level else f"/1.0/networks/{n}" for n in names]
    return responses.sync(await asyncio.to_thread(listing))


@routes.post("/1.0/networks")
async def create_network(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = field(body, "name", str, "")
    if not name:
        raise InvalidConfig("Missing network name")
    await asyncio.to_thread(_service(request).create, name,
                            field(body, "config", dict, {}), field(body, "description", str, ""),
                            field(body, "type", str, "bridge"))
    return responses.sync({}, status=201, headers={"Location": f"/1.0/networks/{name}"})


@routes.get("/1.0/networks/{name}")
async def get_network(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(render, _service(request),
                                                  request.match_info["name"]))


async def _update(request: web.Request, merge: bool) -> web.Response:
    body = await json_body(request)
    await asyncio.to_thread(_service(request).update, request.match_info["name"],
                            field(body, "config", dict, {}), field(body, "description", str),
                            merge=merge)
    return responses.sync({})


@routes.put("/1.0/networks/{name}")
async def put_network(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


@routes.patch("/1.0/networks/{name}")
async def patch_network(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


@routes.post("/1.0/networks/{name}")
async def rename_network(request: web.Request) -> web.Response:
    """LXD's networkPost: {"name": NEW}; 201 with the new Location (in use: 400, taken:
    409)."""
    body = await json_body(request)
    new = field(body, "name", str, "")
    if not new:
        raise InvalidConfig("New network name not provided")
    await asyncio.to_thread(_service(request).rename, request.match_info["name"], new)
    return responses.sync({}, status=201, headers={"Location": f"/1.0/networks/{new}"})


@routes.delete("/1.0/networks/{name}")
async def delete_network(request: web.Request) -> web.Response:
    await asyncio.to_thread(_service(request).delete, request.match_info["name"])
    return responses.sync({})


@routes.get("/1.0/networks/{name}/leases")
async def network_leases(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(_service(request).leases,
                                                  request.match_info["name"]))


@routes.get("/1.0/networks/{name}/state")
async def network_state(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(_service(request).state,
                                                  request.match_info["name"]))


@routes.get("/1.0/doctor")
async def doctor(request: web.Request) -> web.Response:
    """lxmgr's own: host readiness, then every network's bridge, dnsmasq, ports, firewall
    and routes, each as {name, ok, detail, fix, fatal}."""
    service = _service(request)

    def run() -> list[dict[str, Any]]:
        checks = check_host(fix=False) + diagnose(service.drivers())
        return [dataclasses.asdict(c) for c in checks]
    return responses.sync(await asyncio.to_thread(run))
