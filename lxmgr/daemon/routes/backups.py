"""/1.0/instances/{name}/backups: LXD's instance backups (create, list, show, rename, delete,
export), and imports: POST /1.0/instances with a backup tarball as the body (X-LXD-name,
X-LXD-pool).

Backups are files in $LXMGR_DIR/backups/instances/<name>/<backup>.tar[.gz|.xz] with a small
JSON record beside each; `lxmgr export` creates one, downloads it and deletes it, as lxc does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from lxmgr import paths
from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.daemon.routes import image_transfer
from lxmgr.errors import Conflict, InvalidConfig, NotFound
from lxmgr.model.instance import validate_instance_name
from lxmgr.model.project import display, instance_url
from lxmgr.model.snapshot import validate_snapshot_name

routes = web.RouteTableDef()
COMPRESSION = {"gzip": ".tar.gz", "xz": ".tar.xz", "none": ".tar"}


def backups_dir(name: str) -> Path:
    return paths.root() / "backups" / "instances" / name


def _record(name: str, backup: str) -> dict[str, Any]:
    validate_snapshot_name(backup)  # the same rules: a file name, no '/'
    path = backups_dir(name) / f"{backup}.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotFound(f"Backup '{name}/{backup}' not found") from None


def _url(name: str, backup: str) -> str:
    return instance_url(name, f"/backups/{backup}")


def _names(name: str) -> list[str]:
    directory = backups_dir(name)
    return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []


def backup_views(name: str) -> list[dict[str, Any]]:
    """LXD's InstanceBackup objects of an instance (also InstanceFull's `backups`)."""
    out = []
    for backup in _names(name):
        try:
            out.append(_public(_record(name, backup)))
        except NotFound:
            continue  # deleted while we listed
    return out


@routes.get("/1.0/instances/{name}/backups")
async def list_backups(request: web.Request) -> web.Response:
    name = projects.instance_name(request)
    await asyncio.to_thread(request.app[MANAGER].get, name)
    if responses.recursion(request) == 0:
        return responses.sync([_url(name, b) for b in await asyncio.to_thread(_names, name)])
    return responses.sync(await asyncio.to_thread(backup_views, name))


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "file"}


@routes.post("/1.0/instances/{name}/backups")
async def create_backup(request: web.Request) -> web.Response:
    manager, name = request.app[MANAGER], projects.instance_name(request)
    body = await json_body(request, required=False)
    await asyncio.to_thread(manager.get, name)
    backup = field(body, "name", str, "") or f"backup{int(time.time())}"
    validate_snapshot_name(backup)
    compression = field(body, "compression_algorithm", str, "gzip") or "gzip"
    if compression not in COMPRESSION:
        raise InvalidConfig(f"Unsupported compression '{compression}' (use gzip, xz or none)")
    instance_only = field(body, "instance_only", bool, False) or \
        field(body, "container_only", bool, False)
    directory = backups_dir(name)
    if (directory / f"{backup}.json").exists():
        raise Conflict(f"Backup '{name}/{backup}' already exists")

    async def work(op: Operation) -> dict[str, Any]:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = directory / f"{backup}{COMPRESSION[compression]}"
        await asyncio.to_thread(manager.export_backup, name, target,
                                instance_only=instance_only, compression=compression)
        record = {"name": backup, "created_at": _now(), "expires_at": field(
            body, "expires_at", str, "0001-01-01T00:00:00Z"), "instance_only": instance_only,
                  "container_only": instance_only, "optimized_storage": False,
                  "file": target.name}
        (directory / f"{backup}.json").write_text(json.dumps(record))
        return {}

    # resources.backups holds the bare name: lxc 5.0 uses it as is, newer clients take
    # path.Base() of it, which is the same; clients with operation_metadata_entity_url
    # read metadata.entity_url instead.
    op = request.app[OPERATIONS].create(f"Backing up instance {display(name)}", work, resources={
        "instances": [instance_url(name)], "backups": [backup]},
        metadata={"entity_url": _url(name, backup)})
    return responses.async_op(op)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@routes.get("/1.0/instances/{name}/backups/{backup}")
async def get_backup(request: web.Request) -> web.Response:
    record = await asyncio.to_thread(_record, projects.instance_name(request),
                                     request.match_info["backup"])
    return responses.sync(_public(record))


@routes.post("/1.0/instances/{name}/backups/{backup}")
async def rename_backup(request: web.Request) -> web.Response:
    """LXD's backup rename ({"name": NEW}): the record and its tarball."""
    name, backup = projects.instance_name(request), request.match_info["backup"]
    body = await json_body(request)
    new = field(body, "name", str, "")
    validate_snapshot_name(new)
    record = await asyncio.to_thread(_record, name, backup)
    directory = backups_dir(name)
    if (directory / f"{new}.json").exists():
        raise Conflict(f"Backup '{name}/{new}' already exists")

    async def work(op: Operation) -> dict[str, Any]:
        def rename() -> None:
            suffix = str(record["file"]).removeprefix(backup)
            os.rename(directory / str(record["file"]), directory / f"{new}{suffix}")
            renamed = {**record, "name": new, "file": f"{new}{suffix}"}
            (directory / f"{new}.json").write_text(json.dumps(renamed))
            (directory / f"{backup}.json").unlink()
        await asyncio.to_thread(rename)
        return {"entity_url": _url(name, new)}

    return responses.async_op(request.app[OPERATIONS].create(
        f"Renaming backup {display(name)}/{backup} to {new}", work,
        resources={"instances": [instance_url(name)], "backups": [backup]}))


@routes.delete("/1.0/instances/{name}/backups/{backup}")
async def delete_backup(request: web.Request) -> web.Response:
    name, backup = projects.instance_name(request), request.match_info["backup"]
    record = await asyncio.to_thread(_record, name, backup)

    async def work(op: Operation) -> None:
        for file in (record["file"], f"{backup}.json"):
            (backups_dir(name) / file).unlink(missing_ok=True)

    return responses.async_op(request.app[OPERATIONS].create(
        f"Deleting backup {display(name)}/{backup}", work))


@routes.get("/1.0/instances/{name}/backups/{backup}/export")
async def export_backup(request: web.Request) -> web.StreamResponse:
    name, backup = projects.instance_name(request), request.match_info["backup"]
    record = await asyncio.to_thread(_record, name, backup)
    path = backups_dir(name) / str(record["file"])
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
            spec = await asyncio.to_thread(manager.import_backup, archive, name=name,
                                           storage=pool, project=project)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        return {"entity_url": instance_url(spec.name)}

    return responses.async_op(request.app[OPERATIONS].create("Importing instance", work))


def _check_tarball(path: Path) -> None:
    """Refuse at once (400) a body that is no tar archive, compressed or not."""
    from lxmgr.images.archive import detect_compression

    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise InvalidConfig("Missing request body: the backup tarball")
    if detect_compression(head) == "none" and head[257:262] != b"ustar":
        raise InvalidConfig("Invalid backup upload: not a tar archive")


def remove_backups(name: str) -> None:
    """An instance's backups go with it."""
    directory = backups_dir(name)
    if directory.is_dir():
        shutil.rmtree(directory)
