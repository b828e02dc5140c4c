"""/1.0/storage-pools: named pools (create, show, update the description, delete) and their
resources (space), as LXD's API has them; and the volumes a pool holds (its instances' and
its custom volumes, routes.storage_volumes)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import EVENTS, MANAGER
from lxmgr.daemon.responses import field, json_body
from lxmgr.daemon.routes import storage_volumes
from lxmgr.errors import InvalidConfig
from lxmgr.instances.manager import Manager
from lxmgr.instances.volumes import volume_url
from lxmgr.model.project import instance_url, storage_parts, url_suffix

routes = web.RouteTableDef()


def pool_instances(manager: Manager, pool: str) -> list[str]:
    """Stored names of the instances whose volume is on pool (those made before pools count
    for `default` when their driver is the default pool's)."""
    default = manager.pools.get("default")["driver"]
    out = []
    for name in manager.list():
        spec = manager.get(name)
        mine = spec.storage_pool or ("default" if spec.storage_driver == default else "")
        if mine == pool:
            out.append(name)
    return out


def used_by(manager: Manager, pool: str) -> list[str]:
    return [instance_url(name) for name in pool_instances(manager, pool)]


def render(manager: Manager, name: str) -> dict[str, Any]:
    pool = manager.pools.get(name)
    volumes = [volume_url(name, r["name"]) for r in manager.volumes.list(name)
               if "/" not in r["name"]]  # LXD's used_by lists the pool's custom volumes too
    return {"name": name, "driver": pool["driver"], "description": pool["description"],
            "config": dict(pool["config"]), "status": "Created", "locations": ["none"],
            "used_by": used_by(manager, name) + volumes}


@routes.get("/1.0/storage-pools")
async def list_pools(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    level = responses.recursion(request)

    def listing() -> list[Any]:
        return [render(manager, p["name"]) if level else f"/1.0/storage-pools/{p['name']}"
                for p in manager.pools.list()]
    return responses.sync(await asyncio.to_thread(listing))


@routes.post("/1.0/storage-pools")
async def create_pool(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = field(body, "name", str, "")
    driver = field(body, "driver", str, "")
    if not name or not driver:
        raise InvalidConfig("Missing storage pool name or driver")
    await asyncio.to_thread(request.app[MANAGER].pools.create, name, driver,
                            field(body, "config", dict, {}), field(body, "description", str, ""))
    request.app[EVENTS].changed("storage-pools", "storage-pool-created", name)
    return responses.sync({}, status=201, headers={"Location": f"/1.0/storage-pools/{name}"})


@routes.get("/1.0/storage-pools/{name}")
async def get_pool(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(render, request.app[MANAGER],
                                                  request.match_info["name"]))


async def _update(request: web.Request) -> web.Response:
    manager, name = request.app[MANAGER], request.match_info["name"]
    body = await json_body(request)
    pool = await asyncio.to_thread(manager.pools.get, name)
    config = field(body, "config", dict)
    if config is not None and {k: str(v) for k, v in config.items()} != pool["config"]:
        raise InvalidConfig("Changing a storage pool's config is not supported: only its "
                            "description")
    await asyncio.to_thread(manager.pools.update, name, field(body, "description", str))
    request.app[EVENTS].changed("storage-pools", "storage-pool-updated", name)
    return responses.sync({})


@routes.put("/1.0/storage-pools/{name}")
async def put_pool(request: web.Request) -> web.Response:
    return await _update(request)


@routes.patch("/1.0/storage-pools/{name}")
async def patch_pool(request: web.Request) -> web.Response:
    return await _update(request)


@routes.delete("/1.0/storage-pools/{name}")
async def delete_pool(request: web.Request) -> web.Response:
    manager, name = request.app[MANAGER], request.match_info["name"]

    def delete() -> None:
        manager.pools.delete(name, [u.rsplit("/", 1)[-1] for u in used_by(manager, name)])
    await asyncio.to_thread(delete)
    request.app[EVENTS].changed("storage-pools", "storage-pool-deleted", name)
    return responses.sync({})


@routes.get("/1.0/storage-pools/{name}/resources")
async def pool_resources(request: web.Request) -> web.Response:
    usage = await asyncio.to_thread(request.app[MANAGER].pools.usage, request.match_info["name"])
    return responses.sync({"space": {"used": usage["used"], "total": usage["total"]},
                           "inodes": {"used": 0, "total": 0}})


@routes.get("/1.0/storage-pools/{name}/volumes")
async def list_volumes(request: web.Request) -> web.Response:
    manager, name = request.app[MANAGER], request.match_info["name"]
    level = responses.recursion(request)
    scope = projects.scope(request)
    project = None if scope.all_projects else scope.name
    owner = None if scope.all_projects else scope.owner("features.storage.volumes")

    def listing() -> list[Any]:
        out: list[Any] = []
        for stored in pool_instances(manager, name):
            inst_project, inst = storage_parts(stored)
            if project is not None and inst_project != project:
                continue
            path = f"/1.0/storage-pools/{name}/volumes/container/{inst}" + \
                url_suffix(inst_project)
            out.append({"name": inst, "type": "container", "content_type": "filesystem",
                        "config": {}, "description": "", "used_by": [instance_url(stored)],
                        "location": "none", "project": inst_project} if level else path)
        # LXD: by type, then name
        return out + storage_volumes.listing(manager, name, level, owner)
    return responses.sync(await asyncio.to_thread(listing))
