"""/1.0/projects: list, create, show, replace (PUT), merge (PATCH), rename (POST), delete,
state, in LXD 5.0's shapes and with its rules (lxd/api_project.go).

A project holds instances and, with features.profiles, its own profiles (lxmgr.daemon.projects
maps names on every other route). A project with features.profiles gets its own empty
`default` profile, as LXD's projectCreateDefaultProfile. Only empty projects (their own
`default` profile aside) are renamed or deleted, or change features; `default` can be neither
renamed nor deleted and its features never change; config keys go through
lxmgr.model.project's registry."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.api.operation import Operation
from lxmgr.daemon import auth, responses
from lxmgr.daemon.keys import EVENTS, MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import Conflict, Forbidden, InvalidConfig
from lxmgr.instances import project_limits
from lxmgr.instances.manager import Manager
from lxmgr.instances.volumes import volume_url
from lxmgr.model import project as model
from lxmgr.model import project_limits as limit_rules
from lxmgr.model.profile import Profile
from lxmgr.model.project import instance_url, profile_parts, profile_url, storage_parts
from lxmgr.model.volume import volume_parts

routes = web.RouteTableDef()


def used_by(manager: Manager, name: str) -> list[str]:
    """The URLs of a project's objects: its instances and own profiles; for `default` also
    every image, network and storage pool of the server.

    LXD leaves `?project=default` out of these URLs and adds `?project=NAME` to others
    (lxd/api_project.go, projectUsedByListFromMap), so lxmgr does too."""
    urls = [instance_url(n) for n in sorted(manager.list()) if storage_parts(n)[0] == name]
    urls += [profile_url(k) for k in sorted(manager.profiles(), key=profile_parts)
             if profile_parts(k)[0] == name]
    urls += [f"/1.0/images/{fp}{model.url_suffix(name)}"
             for fp in sorted(i.fingerprint for i in manager.images.list(name))]
    if name != model.DEFAULT:
        return urls + [volume_url(r["pool"], r["name"]) for r in manager.volumes.list_all()
                       if "/" not in r["name"] and volume_parts(r["name"])[0] == name]
    urls += [f"/1.0/networks/{n}" for n in manager.networks.names()]
    urls += [f"/1.0/storage-pools/{pool['name']}" for pool in manager.pools.list()]
    return urls


def is_empty(manager: Manager, name: str) -> bool:
    """LXD's projectIsEmpty: nothing uses the project (its own `default` profile aside)."""
    return all(url.partition("?")[0].endswith("/profiles/default")
               for url in used_by(manager, name))


def render(manager: Manager, row: dict[str, Any]) -> dict[str, Any]:
    """A project object (LXD's api.Project)."""
    return {"name": row["name"], "description": row["description"],
            "config": dict(row["config"]), "used_by": used_by(manager, row["name"])}


def render_state(manager: Manager, name: str) -> dict[str, Any]:
    """LXD's api.ProjectState: usage and limit (-1: none) per resource; an aggregate's
    usage counts the instances that set it (LXD's getTotalsAcrossProjectEntities with
    skipUnset, as its state endpoint).

    LXD's ProjectStateResource has no json tags, hence the capitalized `Limit`/`Usage`."""
    config = manager.db.project_get(name)["config"]
    held = project_limits.holdings(manager, name, config)
    instances = len(held.instances)
    networks = len(manager.networks.names()) if name == model.DEFAULT else 0
    usage = {"instances": instances, "containers": instances, "virtual-machines": 0,
             "networks": networks}
    for key in limit_rules.AGGREGATE_KEYS:
        usage[key.removeprefix("limits.")] = limit_rules.usage(key, held)
    return {"resources": {key: {"Limit": limit_rules.limit(config, f"limits.{key}"),
                                "Usage": used} for key, used in usage.items()}}


def _default_profile(project: str) -> Profile:
    """A project's own `default` profile: empty, as LXD's projectCreateDefaultProfile."""
    return Profile(model.profile_key(project, "default"),
                   f"Default LXD profile for project {project}", {}, {})


def _create(manager: Manager, name: str, description: str, config: dict[str, str]) -> None:
    manager.db.project_add(name, description, config)
    if model.has_feature(config, "features.profiles"):
        try:
            manager.db.profile_add(_default_profile(name))
        except BaseException:
            manager.db.project_remove(name)
            raise


def _own_profiles(manager: Manager, project: str) -> list[str]:
    return [k for k in manager.profiles() if profile_parts(k)[0] == project]


def _save(manager: Manager, name: str, description: str, old: dict[str, str],
          new: dict[str, str]) -> None:
    """Save a project; turning features.profiles on gives it its `default` profile, off
    drops its own profiles (it is empty then: check_update made sure), as LXD's
    projectChange."""
    had = model.has_feature(old, "features.profiles") and name != model.DEFAULT
    has = model.has_feature(new, "features.profiles") and name != model.DEFAULT
    manager.db.project_save(name, description, new)
    if has and not had:
        manager.db.profile_add(_default_profile(name))
    elif had and not has:
        for key in _own_profiles(manager, name):
            manager.db.profile_remove(key)


def _rename(manager: Manager, name: str, new: str) -> None:
    """Rename an empty project and the profiles it owns."""
    manager.db.project_rename(name, new)
    manager.db.certificates_project_renamed(name, new)
    for key in _own_profiles(manager, name):
        manager.db.profile_rename(key, model.profile_key(new, profile_parts(key)[1]), [])


def _remove(manager: Manager, name: str) -> None:
    manager.db.certificates_project_renamed(name, None)
    for key in _own_profiles(manager, name):
        manager.db.profile_remove(key)
    manager.db.project_remove(name)


def _changed(request: web.Request, action: str, name: str, **context: Any) -> None:
    request.app[EVENTS].changed("projects", action, name, **context)


@routes.get("/1.0/projects")
async def list_projects(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]

    allowed = auth.restricted_projects(request)

    def listing() -> list[Any]:
        rows = {n: r for n, r in manager.db.projects().items()
                if allowed is None or n in allowed}
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
    await asyncio.to_thread(_create, request.app[MANAGER], name, description, config)
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
    await asyncio.to_thread(project_limits.check_project, manager, name, old["config"], config)
    await asyncio.to_thread(_save, manager, name, description or "", old["config"], config)
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
        await asyncio.to_thread(_rename, manager, name, new)
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
    await asyncio.to_thread(_remove, manager, name)
    _changed(request, "project-deleted", name)
    return responses.sync({})


@routes.get("/1.0/projects/{name}/state")
async def get_project_state(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name = request.match_info["name"]
    await asyncio.to_thread(manager.db.project_get, name)
    return responses.sync(await asyncio.to_thread(render_state, manager, name))
