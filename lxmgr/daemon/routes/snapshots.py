"""/1.0/instances/{name}/snapshots: list, create (async), show, rename (POST), expiry
(PUT/PATCH), delete (async), as LXD's API has them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses, views
from lxmgr.daemon.keys import MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import NotSupported
from lxmgr.model.project import display, instance_url
from lxmgr.model.snapshot import parse_time, validate_snapshot_name

routes = web.RouteTableDef()


def snapshot_url(name: str, snap: str) -> str:
    return instance_url(name, f"/snapshots/{snap}")


def _resources(name: str, snap: str | None = None) -> dict[str, list[str]]:
    out = {"instances": [instance_url(name)]}
    if snap:
        out["instances_snapshots"] = [snapshot_url(name, snap)]
    return out


@routes.get("/1.0/instances/{name}/snapshots")
async def list_snapshots(request: web.Request) -> web.Response:
    manager, name = request.app[MANAGER], projects.instance_name(request)
    snaps = await asyncio.to_thread(manager.snapshots, name)
    if responses.recursion(request) == 0:
        return responses.sync([snapshot_url(name, s.name) for s in snaps])
    return responses.sync(await asyncio.to_thread(
        lambda: [views.snapshot(manager, name, s) for s in snaps]))


@routes.post("/1.0/instances/{name}/snapshots")
async def create_snapshot(request: web.Request) -> web.Response:
    manager, name = request.app[MANAGER], projects.instance_name(request)
    body = await json_body(request, required=False)
    if field(body, "stateful", bool, False):
        raise NotSupported("Stateful snapshots are not supported")
    snap = field(body, "name", str) or None
    if snap is not None:
        validate_snapshot_name(snap)
    expires_at = parse_time(field(body, "expires_at", str))
    await asyncio.to_thread(manager.get, name)

    async def work(op: Operation) -> dict[str, Any]:
        record = await asyncio.to_thread(manager.snapshot, name, snap, expires_at=expires_at,
                                         no_expiry="expires_at" in body)
        return {"name": record.name}

    op = request.app[OPERATIONS].create(f"Snapshotting instance {display(name)}", work,
                                        resources=_resources(name, snap))
    return responses.async_op(op)


@routes.get("/1.0/instances/{name}/snapshots/{snap}")
async def get_snapshot(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name, snap = projects.instance_name(request), request.match_info["snap"]
    record = await asyncio.to_thread(manager.get_snapshot, name, snap)
    return responses.sync(await asyncio.to_thread(views.snapshot, manager, name, record))


@routes.post("/1.0/instances/{name}/snapshots/{snap}")
async def rename_snapshot(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name, snap = projects.instance_name(request), request.match_info["snap"]
    body = await json_body(request)
    if field(body, "migration", bool, False):
        raise NotSupported("Migrating snapshots is not supported")
    new = field(body, "name", str, "")
    validate_snapshot_name(new)
    await asyncio.to_thread(manager.get_snapshot, name, snap)

    async def work(op: Operation) -> None:
        await asyncio.to_thread(manager.rename_snapshot, name, snap, new)

    op = request.app[OPERATIONS].create(f"Renaming snapshot {display(name)}/{snap}", work,
                                        resources=_resources(name, snap))
    return responses.async_op(op)


async def _update(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name, snap = projects.instance_name(request), request.match_info["snap"]
    body = await json_body(request)
    expires_at = parse_time(field(body, "expires_at", str))
    await asyncio.to_thread(manager.update_snapshot, name, snap, expires_at)

    async def work(op: Operation) -> None:
        return None

    op = request.app[OPERATIONS].create(f"Updating snapshot {display(name)}/{snap}", work,
                                        resources=_resources(name, snap))
    return responses.async_op(op)


@routes.put("/1.0/instances/{name}/snapshots/{snap}")
async def put_snapshot(request: web.Request) -> web.Response:
    return await _update(request)


@routes.patch("/1.0/instances/{name}/snapshots/{snap}")
async def patch_snapshot(request: web.Request) -> web.Response:
    return await _update(request)


@routes.delete("/1.0/instances/{name}/snapshots/{snap}")
async def delete_snapshot(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name, snap = projects.instance_name(request), request.match_info["snap"]
    await asyncio.to_thread(manager.get_snapshot, name, snap)

    async def work(op: Operation) -> None:
        await asyncio.to_thread(manager.delete_snapshot, name, snap)

    op = request.app[OPERATIONS].create(f"Deleting snapshot {display(name)}/{snap}", work,
                                        resources=_resources(name, snap))
    return responses.async_op(op)
