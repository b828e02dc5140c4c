"""/1.0/networks: managed bridge networks (create, show, replace, merge, delete), their
leases and state; and GET /1.0/doctor (lxmgr's own): host and network diagnosis."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp import web

from lxmgr.daemon import responses
from lxmgr.daemon.keys import EVENTS, MANAGER
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import InvalidConfig
from lxmgr.instances.doctor import diagnose
from lxmgr.instances.host import check_host
from lxmgr.instances.manager import Manager

routes = web.RouteTableDef()


def render(manager: Manager, name: str) -> dict[str, Any]:
    record = manager.networks.get(name)
    return {"name": name, "description": record["description"], "type": record["type"],
            "managed": True, "status": "Created", "config": dict(record["config"]),
            "used_by": manager.network_used_by(name), "locations": ["none"],
            "project": "default"}


@routes.get("/1.0/networks")
async def list_networks(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    level = responses.recursion(request)

    def listing() -> list[Any]:
        names = manager.networks.names()
        return [render(manager, n) if level else f"/1.0/networks/{n}" for n in names]
    return responses.sync(await asyncio.to_thread(listing))


@routes.post("/1.0/networks")
async def create_network(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = field(body, "name", str, "")
    if not name:
        raise InvalidConfig("Missing network name")
    await asyncio.to_thread(request.app[MANAGER].networks.create, name,
                            field(body, "config", dict, {}), field(body, "description", str, ""),
                            field(body, "type", str, "bridge"))
    request.app[EVENTS].changed("networks", "network-created", name)
    return responses.sync({}, status=201, headers={"Location": f"/1.0/networks/{name}"})


@routes.get("/1.0/networks/{name}")
async def get_network(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(render, request.app[MANAGER],
                                                  request.match_info["name"]))


async def _update(request: web.Request, merge: bool) -> web.Response:
    manager = request.app[MANAGER]
    name = request.match_info["name"]
    body = await json_body(request)
    record = await asyncio.to_thread(manager.networks.get, name)
    config = field(body, "config", dict, {})
    if merge:
        config = {**record["config"], **config}
    await asyncio.to_thread(manager.networks.update, name, config,
                            field(body, "description", str))
    request.app[EVENTS].changed("networks", "network-updated", name)
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
    name = request.match_info["name"]
    body = await json_body(request)
    new = field(body, "name", str, "")
    if not new:
        raise InvalidConfig("New network name not provided")
    await asyncio.to_thread(request.app[MANAGER].network_rename, name, new)
    request.app[EVENTS].changed("networks", "network-renamed", new, old_name=name)
    return responses.sync({}, status=201, headers={"Location": f"/1.0/networks/{new}"})


@routes.delete("/1.0/networks/{name}")
async def delete_network(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[MANAGER].network_delete, request.match_info["name"])
    request.app[EVENTS].changed("networks", "network-deleted", request.match_info["name"])
    return responses.sync({})


@routes.get("/1.0/networks/{name}/leases")
async def network_leases(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(request.app[MANAGER].networks.leases,
                                                  request.match_info["name"]))


@routes.get("/1.0/networks/{name}/state")
async def network_state(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(request.app[MANAGER].networks.state,
                                                  request.match_info["name"]))


@routes.get("/1.0/doctor")
async def doctor(request: web.Request) -> web.Response:
    """lxmgr's own: host readiness, then every network's bridge, dnsmasq, ports, firewall
    and routes, each as {name, ok, detail, fix, fatal}."""
    manager = request.app[MANAGER]

    def run() -> list[dict[str, Any]]:
        checks = check_host(fix=False) + diagnose(manager.networks.drivers())
        return [dataclasses.asdict(c) for c in checks]
    return responses.sync(await asyncio.to_thread(run))
