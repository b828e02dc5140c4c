"""/1.0/projects: list, create, show, replace (PUT), merge (PATCH), rename (POST), delete,
state, in LXD 5.0's shapes and with its rules (lxd/api_project.go).

Only `default` holds objects so far (see lxmgr.daemon.projects, whose middleware checks the
`project=` parameter of every other route): another project's used_by is empty, so it can
always be renamed, reconfigured or deleted. `default` can be neither renamed nor deleted and
its features never change; config keys go through lxmgr.model.project's registry."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import EVENTS, MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import Conflict, Forbidden, InvalidConfig
from lxmgr.instances.manager import Manager
from lxmgr.model import project as model

routes = web.RouteTableDef()
# create_app installs it inside the error middleware (app.py imports this module already).
middleware = projects.project_middleware


def used_by(manager: Manager, name: str) -> list[str]:
    """The URLs of a project's objects: for `default`, every instance, profile, image,
    network and storage pool of the server; for another project nothing yet.

    LXD leaves `?project=default` out of these URLs (lxd/api_project.go,
    projectUsedByListFromMap), so lxmgr does too."""
    if name != model.DEFAULT:
        return []
    urls = [f"/1.0/instances/{n}" for n in sorted(manager.list())]
    urls += [f"/1.0/profiles/{n}" for n in sorted(manager.profiles())]
    urls += [f"/1.0/images/{fp}" for fp in sorted(i.fingerprint for i in manager.images.list())]
    urls += [f"/1.0/networks/{n}" for n in manager.networks.names()]
    urls += [f"/1.0/storage-pools/{pool['name']}" for pool in manager.pools.list()]
    return urls


def is_empty(manager: Manager, name: str) -> bool:
    """LXD's projectIsEmpty: nothing uses the project (its own `default` profile aside)."""
    return all(url.endswith("/profiles/default") for url in used_by(manager, name))


def render(manager: Manager, row: dict[str, Any]) -> dict[str, Any]:
    """A project object (LXD's api.Project)."""
    return {"name": row["name"], "description": row["description"],
            "config": dict(row["config"]), "used_by": used_by(manager, row["name"])}


def render_state(manager: Manager, name: str) -> dict[str, Any]:
    """LXD's api.ProjectState: usage per resource, no limits (-1) since none can be set.

    LXD's ProjectStateResource has no json tags, hence the capitalized `Limit`/`Usage`."""
    instances = len(manager.list()) if name == model.DEFAULT else 0
    networks = len(manager.networks.names()) if name == model.DEFAULT else 0
    counts = {"instances": instances, "containers": instances, "virtual-machines": 0,
              "networks": networks}
    return {"resources": {key: {"Limit": -1, "Usage": usage} for key, usage in counts.items()}}


def _changed(request: web.Request, action: str, name: str, **context: Any) -> None:
    request.app[EVENTS].changed("projects", action, name, **context)


@routes.get("/1.0/projects")
async def list_projects(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]

    def listing() -> list[Any]:
        rows = manager.db.projects()
        if not responses.recursion(request):
            return [f"/1.0/projects/{n}" for n in sorted(rows)]
        return [render(manager, rows[n]) for n in sorted(rows)]
    return responses.sync(await asyncio.to_thread(listing))


@routes.post("/1.0/projects")
async def create_project(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = field(body, "name", str, "")
    model.validate_name(name)
    config = model.create_config(field(body, "config", dict, {}))
    description = field(body, "description", str, "")
    await asyncio.to_thread(request.app[MANAGER].db.project_add, name, description, config)
    _changed(request, "project-created", name)
    return responses.sync({}, status=201, headers={"Location": f"/1.0/projects/{name}"})


@routes.get("/1.0/projects/{name}")
async def get_project(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    row = await asyncio.to_thread(manager.db.project_get, request.match_info["name"])
    return responses.sync(await asyncio.to_thread(render, manager, row))


async def _update(request: web.Request, merge: bool) -> web.Response:
    """LXD's projectPut/projectPatch + projectChange: PATCH keeps what the body leaves out."""
    manager = request.app[MANAGER]
    body = await json_body(request)
    name = request.match_info["name"]
    old = await asyncio.to_thread(manager.db.project_get, name)
    config = field(body, "config", dict, None)
    description = field(body, "description", str, None)
    if merge:
        config = {**old["config"], **(config or {})}
        description = old["description"] if description is None else description
    config = {} if config is None else config
    empty = await asyncio.to_thread(is_empty, manager, name)
    model.check_update(name, old["config"], config, empty)
    await asyncio.to_thread(manager.db.project_save, name, description or "", config)
    _changed(request, "project-updated", name)
    return responses.sync({})


@routes.put("/1.0/projects/{name}")
async def put_project(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


@routes.patch("/1.0/projects/{name}")
async def patch_project(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


@routes.post("/1.0/projects/{name}")
async def rename_project(request: web.Request) -> web.Response:
    """LXD answers a rename with an operation; a taken name or a non-empty project is
    refused before it (409, 400) instead of by a failing operation, and the operation has
    finished when the answer is sent."""
    manager = request.app[MANAGER]
    name = request.match_info["name"]
    body = await json_body(request)
    new = field(body, "name", str, "")
    if name == model.DEFAULT:
        raise Forbidden("The 'default' project cannot be renamed")
    model.validate_name(new)
    await asyncio.to_thread(manager.db.project_get, name)
    if new in await asyncio.to_thread(manager.db.projects):
        raise Conflict(f"A project named '{new}' already exists")
    if not await asyncio.to_thread(is_empty, manager, name):
        raise InvalidConfig("Only empty projects can be renamed")

    async def work(op: Operation) -> None:
        await asyncio.to_thread(manager.db.project_rename, name, new)
        _changed(request, "project-renamed", new, old_name=name)

    ops = request.app[OPERATIONS]
    op = ops.create(f"Renaming project {name}", work,
                    resources={"projects": [f"/1.0/projects/{name}"]})
    # Answer once the rename is done: pylxd's Project.rename GETs the new name right after
    # the POST without waiting for the operation.
    await ops.wait(op.id, None)
    return responses.async_op(op)


@routes.delete("/1.0/projects/{name}")
async def delete_project(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name = request.match_info["name"]
    if name == model.DEFAULT:
        raise Forbidden("The 'default' project cannot be deleted")
    await asyncio.to_thread(manager.db.project_get, name)
    if not await asyncio.to_thread(is_empty, manager, name):
        raise InvalidConfig("Only empty projects can be removed")
    await asyncio.to_thread(manager.db.project_remove, name)
    _changed(request, "project-deleted", name)
    return responses.sync({})


@routes.get("/1.0/projects/{name}/state")
async def get_project_state(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name = request.match_info["name"]
    await asyncio.to_thread(manager.db.project_get, name)
    return responses.sync(await asyncio.to_thread(render_state, manager, name))
