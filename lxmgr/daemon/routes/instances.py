"""/1.0/instances: list, create (async, builds the image from its recipe when missing),
show, update (PUT replaces, PATCH merges), delete, console log and log files."""

from __future__ import annotations

import asyncio
import functools
import os
import re
from typing import Any

from aiohttp import web

from lxmgr import paths
from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses, views
from lxmgr.daemon.keys import IMAGE_BUILDS, MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.daemon.routes import image_transfer
from lxmgr.errors import Conflict, InvalidConfig, InvalidState, NotFound, NotSupported
from lxmgr.instances import checkpoints, image_ops
from lxmgr.instances.image_builds import progress_metadata
from lxmgr.model.instance import generate_name, validate_instance_name
from lxmgr.model.project import display, instance_url, profile_parts, storage_name

routes = web.RouteTableDef()
LOG_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@routes.get("/1.0/instances")
async def list_instances(request: web.Request) -> web.Response:
    level = responses.recursion(request)
    expr = request.query.get("filter", "")
    scope = projects.scope(request)
    project = None if scope.all_projects else scope.name
    if level >= 2:
        return responses.sync(await asyncio.to_thread(
            views.instances, request.app[MANAGER], level, expr,
            responses.state_fields(request), project))
    # One worker-thread hop for the whole listing; the body comes encoded (and cached).
    body = await asyncio.to_thread(views.instances_json, request.app[MANAGER], level, expr,
                                   project)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


@routes.post("/1.0/instances")
async def create_instance(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    # The header as sent: aiohttp reports a missing Content-Type as octet-stream.
    if request.headers.get("Content-Type", "").startswith("application/octet-stream"):
        from lxmgr.daemon.routes.backups import import_instance

        return await import_instance(request)
    body = await json_body(request)
    if field(body, "type", str, "container") != "container":
        raise NotSupported("Only containers are supported")
    source = field(body, "source", dict, {})
    if field(source, "type", str, "image") == "copy":
        return await _copy_instance(request, body, source)
    if field(source, "type", str, "image") != "image":
        raise NotSupported(f"Unsupported source type '{source.get('type')}': use 'image' "
                           "or 'copy'")
    image = field(source, "alias", str) or field(source, "fingerprint", str)
    if not image:
        raise InvalidConfig("Missing source image: give source.alias or source.fingerprint")
    scope = projects.scope(request)
    name = field(body, "name", str) or await asyncio.to_thread(_free_name, manager, scope)
    validate_instance_name(name)
    name = scope.instance(name)
    args = {
        "profiles": scope.profiles(field(body, "profiles", list)),
        "config": field(body, "config", dict, {}),
        "devices": field(body, "devices", dict, {}),
        "ephemeral": field(body, "ephemeral", bool, False),
        "description": field(body, "description", str, ""),
    }
    start = field(body, "start", bool, False)
    remote = image_transfer.remote_source(source) if source.get("server") else None
    build = await asyncio.to_thread(manager.check_create, name, image, remote=bool(remote),
                                    **args)
    ops = request.app[OPERATIONS]

    async def work(op: Operation) -> dict[str, Any]:
        nonlocal image
        # Fetching or building the image may take minutes and can be cancelled (nothing of
        # it is kept), and so can making the instance: its steps are undone.
        if remote:
            def pulled(p: Any) -> None:
                ops.update(op, download_progress=p.text)
            image = (await image_ops.pull_image(manager, *remote, cached=True,
                                                progress=pulled)).fingerprint
        if build:
            def built(p: Any) -> None:
                ops.update(op, **progress_metadata(
                    p, "create_instance_from_image_unpack_progress"))
            await request.app[IMAGE_BUILDS].build(image, built)
        await checkpoints.in_thread(manager.create, name, image, **args)
        if start:
            await asyncio.to_thread(manager.start, name)
        return {"entity_url": instance_url(name)}

    op = ops.create(f"Creating instance {display(name)}", work,
                    resources={"instances": [instance_url(name)]},
                    metadata={"entity_url": instance_url(name)},
                    may_cancel=True)
    return responses.async_op(op)


async def _copy_instance(request: web.Request, body: dict[str, Any],
                         source: dict[str, Any]) -> web.Response:
    """POST /1.0/instances with source.type=copy: 'NAME' or 'NAME/SNAPSHOT' on this host."""
    manager = request.app[MANAGER]
    origin = field(source, "source", str, "")
    if not origin:
        raise InvalidConfig("Missing source.source: the instance (or instance/snapshot) to copy")
    if any(source.get(key) for key in ("operation", "secrets", "certificate", "server")):
        raise NotSupported("Only copies within this server are supported")
    # `live` (lxc sets it for running sources) needs nothing more: the copy freezes them.
    scope = projects.scope(request)
    name = field(body, "name", str) or await asyncio.to_thread(_free_name, manager, scope)
    validate_instance_name(name)
    name = scope.instance(name)
    # LXD's InstanceSource.project: the project the source is in (default: the request's).
    source_project = field(source, "project", str, "") or scope.name
    if source_project != scope.name:
        await asyncio.to_thread(manager.db.project_get, source_project)
    parent, sep, snap = origin.partition("/")
    origin = storage_name(source_project, parent) + sep + snap
    source_spec = await asyncio.to_thread(manager.get, storage_name(source_project, parent))
    profiles = field(body, "profiles", list)
    if profiles is None and source_project != scope.name:
        # The source's profiles by name, in the target project (LXD's copy between projects).
        profiles = [profile_parts(p)[1] for p in source_spec.profiles]
    args = {
        "instance_only": field(source, "instance_only", bool, False),
        "profiles": None if profiles is None else scope.profiles(profiles),
        "config": field(body, "config", dict),
        "ephemeral": field(body, "ephemeral", bool),
        "description": field(body, "description", str),
    }
    start = field(body, "start", bool, False)
    if await asyncio.to_thread(manager.store.exists, name):
        raise Conflict(f"Instance '{name}' already exists")
    # Refused at once, as LXD's instancesPost (AllowInstanceCreation) does: bad config,
    # a project's limits or restrictions.
    await asyncio.to_thread(functools.partial(
        manager.check_copy, origin, name,
        **{k: v for k, v in args.items() if k != "instance_only"}))

    async def work(op: Operation) -> dict[str, Any]:
        await checkpoints.in_thread(manager.copy, origin, name, **args)
        if start:
            await asyncio.to_thread(manager.start, name)
        return {"entity_url": instance_url(name)}

    op = request.app[OPERATIONS].create(f"Copying instance {display(origin)} to "
                                        f"{display(name)}", work,
                                        resources={"instances": [instance_url(name)]},
                                        metadata={"entity_url": instance_url(name)},
                                        may_cancel=True)
    return responses.async_op(op)


def _free_name(manager: Any, scope: projects.Scope) -> str:
    taken = set(manager.list())
    for _ in range(100):
        name = generate_name()
        if scope.instance(name) not in taken:
            return name
    raise Conflict("Could not generate a free instance name")


@routes.get("/1.0/instances/{name}")
async def get_instance(request: web.Request) -> web.Response:
    name = projects.instance_name(request)
    full = responses.recursion(request) >= 2
    fields = responses.state_fields(request)
    return responses.sync(await asyncio.to_thread(
        functools.partial(views.instance, request.app[MANAGER], name, full, fields=fields)))


async def _update(request: web.Request, merge: bool) -> web.Response:
    manager = request.app[MANAGER]
    name = projects.instance_name(request)
    body = await json_body(request)
    if "restore" in body:  # lxc sends "NAME/SNAP", the API documents "SNAP": take both
        snap = field(body, "restore", str, "")
        return await _restore(request, name, snap.removeprefix(f"{display(name)}/"))
    config = field(body, "config", dict)
    devices = field(body, "devices", dict)
    profiles = field(body, "profiles", list)
    if profiles is not None:
        profiles = projects.scope(request).profiles(profiles)
    description = field(body, "description", str)
    if merge:
        spec = await asyncio.to_thread(manager.get, name)
        if config is not None:
            config = {**spec.config, **config}
        if devices is not None:
            devices = {**spec.devices, **devices}
    await asyncio.to_thread(manager.update, name, config=config, devices=devices,
                            profiles=profiles, description=description)
    return responses.async_op(_done(request, f"Updating instance {display(name)}", name))


def _done(request: web.Request, description: str, name: str) -> Operation:
    """An already finished operation, for LXD calls whose work we did synchronously."""
    async def work(op: Operation) -> None:
        return None
    return request.app[OPERATIONS].create(description, work,
                                          resources={"instances": [instance_url(name)]})


@routes.put("/1.0/instances/{name}")
async def put_instance(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


@routes.patch("/1.0/instances/{name}")
async def patch_instance(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


async def _restore(request: web.Request, name: str, snap: str) -> web.Response:
    """PUT /1.0/instances/{name} {"restore": SNAP} (LXD's restore)."""
    manager = request.app[MANAGER]
    await asyncio.to_thread(manager.get_snapshot, name, snap)

    async def work(op: Operation) -> None:
        await asyncio.to_thread(manager.restore, name, snap)

    op = request.app[OPERATIONS].create(f"Restoring snapshot {display(name)}/{snap}", work,
                                        resources={"instances": [instance_url(name)]})
    return responses.async_op(op)


@routes.post("/1.0/instances/{name}")
async def rename_instance(request: web.Request) -> web.Response:
    """LXD's rename ({"name": NEW}); migration to another host is not supported."""
    manager = request.app[MANAGER]
    name = projects.instance_name(request)
    body = await json_body(request)
    if field(body, "migration", bool, False) or field(body, "live", bool, False):
        raise NotSupported("Migrating instances to another host is not supported")
    new = field(body, "name", str, "")
    validate_instance_name(new)
    new = projects.scope(request).instance(new)
    await asyncio.to_thread(manager.get, name)
    if await asyncio.to_thread(manager.store.exists, new):
        raise Conflict(f"Instance '{new}' already exists")
    if await asyncio.to_thread(manager.is_running, name):
        raise InvalidState(f"Instance '{name}' is running: stop it before renaming")

    async def work(op: Operation) -> dict[str, Any]:
        await asyncio.to_thread(manager.rename, name, new)
        return {"entity_url": instance_url(new)}

    op = request.app[OPERATIONS].create(
        f"Renaming instance {display(name)} to {display(new)}", work,
        resources={"instances": [instance_url(name)]})
    return responses.async_op(op)


@routes.delete("/1.0/instances/{name}")
async def delete_instance(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name = projects.instance_name(request)
    force = request.query.get("force", "") in ("1", "true")
    await asyncio.to_thread(manager.get, name)
    if not force and await asyncio.to_thread(manager.is_running, name):
        raise InvalidState(f"Instance '{name}' is running: stop it first or use --force")

    async def work(op: Operation) -> None:
        await asyncio.to_thread(manager.delete, name, force)  # its backups go with it

    op = request.app[OPERATIONS].create(f"Deleting instance {display(name)}", work,
                                        resources={"instances": [instance_url(name)]})
    return responses.async_op(op)


# -- console and logs --------------------------------------------------------------------------

@routes.get("/1.0/instances/{name}/console")
async def console_log(request: web.Request) -> web.Response:
    text = await asyncio.to_thread(request.app[MANAGER].console_log,
                                   projects.instance_name(request))
    return web.Response(body=text.encode(), content_type="application/octet-stream")


@routes.delete("/1.0/instances/{name}/console")
async def console_clear(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[MANAGER].console_clear, projects.instance_name(request))
    return responses.sync({})


def exec_output_dir(name: str) -> str:
    return str(paths.instance_dir(name) / "exec-output")


@routes.get("/1.0/instances/{name}/logs")
async def list_logs(request: web.Request) -> web.Response:
    name = projects.instance_name(request)
    await asyncio.to_thread(request.app[MANAGER].get, name)
    found = [instance_url(name, f"/logs/{f}") for f in ("console.log", "supervisor.log")
             if (paths.instance_dir(name) / f).exists()]
    return responses.sync(found + [instance_url(name, "/logs/exec-output")])


@routes.get("/1.0/instances/{name}/logs/exec-output")
async def list_exec_output(request: web.Request) -> web.Response:
    name = projects.instance_name(request)
    await asyncio.to_thread(request.app[MANAGER].get, name)
    directory = exec_output_dir(name)
    files = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    return responses.sync([instance_url(name, f"/logs/exec-output/{f}") for f in files])


def _log_path(request: web.Request, exec_output: bool) -> str:
    name, file = projects.instance_name(request), request.match_info["file"]
    if not LOG_NAME.match(file) or file.startswith("."):
        raise InvalidConfig(f"Invalid log file name '{file}'")
    if not exec_output and file not in ("console.log", "supervisor.log"):
        raise NotFound(f"Log file '{file}' not found")
    directory = exec_output_dir(name) if exec_output else str(paths.instance_dir(name))
    return os.path.join(directory, file)


async def _send_file(path: str) -> web.Response:
    def read() -> bytes:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"Log file '{os.path.basename(path)}' not found") from None
        with os.fdopen(fd, "rb") as f:
            return f.read()
    return web.Response(body=await asyncio.to_thread(read),
                        content_type="application/octet-stream")


@routes.get("/1.0/instances/{name}/logs/exec-output/{file}")
async def get_exec_output(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[MANAGER].get, projects.instance_name(request))
    return await _send_file(_log_path(request, exec_output=True))


@routes.delete("/1.0/instances/{name}/logs/exec-output/{file}")
async def delete_exec_output(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[MANAGER].get, projects.instance_name(request))
    path = _log_path(request, exec_output=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        raise NotFound(f"Log file '{os.path.basename(path)}' not found") from None
    return responses.sync({})


@routes.get("/1.0/instances/{name}/logs/{file}")
async def get_log(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[MANAGER].get, projects.instance_name(request))
    return await _send_file(_log_path(request, exec_output=False))


def check_name(name: str) -> None:
    validate_instance_name(name)
