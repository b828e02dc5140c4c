"""/1.0/instances/{name}/backups: LXD's instance backups (create, list, show, rename, delete,
export), and imports: POST /1.0/instances with a backup tarball as the body (X-LXD-name,
X-LXD-pool).

The routes parse, call the Manager's Backups (lxmgr.instances.backups: records, tarballs,
events) and render; `lxmgr export` creates a backup, downloads it and deletes it, as lxc
does.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.daemon.routes import image_transfer
from lxmgr.errors import Conflict, InvalidConfig
from lxmgr.instances import checkpoints
from lxmgr.instances.backups import public, validate_backup_name
from lxmgr.model.instance import validate_instance_name
from lxmgr.model.project import display, instance_url

routes = web.RouteTableDef()


def _url(name: str, backup: str) -> str:
    return instance_url(name, f"/backups/{backup}")


@routes.get("/1.0/instances/{name}/backups")
async def list_backups(request: web.Request) -> web.Response:
    manager, name = request.app[MANAGER], projects.instance_name(request)
    await asyncio.to_thread(manager.get, name)
    if responses.recursion(request) == 0:
        names = await asyncio.to_thread(manager.backups.names, name)
        return responses.sync([_url(name, b) for b in names])
    return responses.sync(await asyncio.to_thread(manager.backups.views, name))


@routes.post("/1.0/instances/{name}/backups")
async def create_backup(request: web.Request) -> web.Response:
    manager, name = request.app[MANAGER], projects.instance_name(request)
    body = await json_body(request, required=False)
    await asyncio.to_thread(manager.get, name)
    backup = field(body, "name", str, "") or f"backup{int(time.time())}"
    compression = field(body, "compression_algorithm", str, "gzip") or "gzip"
    instance_only = field(body, "instance_only", bool, False) or \
        field(body, "container_only", bool, False)
    expires_at = field(body, "expires_at", str, "") or None
    await asyncio.to_thread(manager.backups.check_create, name, backup, compression,
                            expires_at)

    async def work(op: Operation) -> dict[str, Any]:
        await checkpoints.in_thread(manager.backups.create, name, backup,
                                    compression=compression, instance_only=instance_only,
                                    expires_at=expires_at)
        return {}

    # resources.backups holds the bare name: lxc 5.0 uses it as is, newer clients take
    # path.Base() of it, which is the same; clients with operation_metadata_entity_url
    # read metadata.entity_url instead.
    op = request.app[OPERATIONS].create(f"Backing up instance {display(name)}", work, resources={
        "instances": [instance_url(name)], "backups": [backup]},
        metadata={"entity_url": _url(name, backup)}, may_cancel=True)
    return responses.async_op(op)


@routes.get("/1.0/instances/{name}/backups/{backup}")
async def get_backup(request: web.Request) -> web.Response:
    record = await asyncio.to_thread(request.app[MANAGER].backups.get,
                                     projects.instance_name(request),
                                     request.match_info["backup"])
    return responses.sync(public(record))


@routes.post("/1.0/instances/{name}/backups/{backup}")
async def rename_backup(request: web.Request) -> web.Response:
    """LXD's backup rename ({"name": NEW}): the record and its tarball."""
    backups = request.app[MANAGER].backups
    name, backup = projects.instance_name(request), request.match_info["backup"]
    body = await json_body(request)
    new = field(body, "name", str, "")
    validate_backup_name(new)
    await asyncio.to_thread(backups.get, name, backup)
    if new in await asyncio.to_thread(backups.names, name):
        raise Conflict(f"Backup '{display(name)}/{new}' already exists")

    async def work(op: Operation) -> dict[str, Any]:
        await asyncio.to_thread(backups.rename, name, backup, new)
        return {"entity_url": _url(name, new)}

    return responses.async_op(request.app[OPERATIONS].create(
        f"Renaming backup {display(name)}/{backup} to {new}", work,
        resources={"instances": [instance_url(name)], "backups": [backup]}))


@routes.delete("/1.0/instances/{name}/backups/{backup}")
async def delete_backup(request: web.Request) -> web.Response:
    backups = request.app[MANAGER].backups
    name, backup = projects.instance_name(request), request.match_info["backup"]
    await asyncio.to_thread(backups.get, name, backup)

    async def work(op: Operation) -> None:
        await asyncio.to_thread(backups.delete, name, backup)

    return responses.async_op(request.app[OPERATIONS].create(
        f"Deleting backup {display(name)}/{backup}", work))


@routes.get("/1.0/instances/{name}/backups/{backup}/export")
async def export_backup(request: web.Request) -> web.StreamResponse:
    name, backup = projects.instance_name(request), request.match_info["backup"]
    path = await asyncio.to_thread(request.app[MANAGER].backups.export_path, name, backup)
    return await image_transfer.stream_file(request, path, f"{name}-{path.name}")


async def import_instance(request: web.Request) -> web.Response:
    """POST /1.0/instances with a backup tarball as the body."""
    manager = request.app[MANAGER]
    name = request.headers.get("X-LXD-name") or None
    pool = request.headers.get("X-LXD-pool") or None
    project = projects.scope(request).name
    if name is not None:
        validate_instance_name(name)
    staging = image_transfer.staging_dir()
    try:
        archive = staging / "backup"
        await image_transfer.save(request.content.read, archive, "backup")
        _check_tarball(archive)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    async def work(op: Operation) -> dict[str, Any]:
        try:
            spec = await checkpoints.in_thread(manager.import_backup, archive, name=name,
                                           storage=pool, project=project)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        return {"entity_url": instance_url(spec.name)}

    return responses.async_op(request.app[OPERATIONS].create("Importing instance", work,
                                                             may_cancel=True))


def _check_tarball(path: Path) -> None:
    """Refuse at once (400) a body that is no tar archive, compressed or not."""
    from lxmgr.images.archive import detect_compression

    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise InvalidConfig("Missing request body: the backup tarball")
    if detect_compression(head) == "none" and head[257:262] != b"ustar":
        raise InvalidConfig("Invalid backup upload: not a tar archive")
