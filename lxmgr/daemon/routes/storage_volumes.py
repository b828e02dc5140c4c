"""/1.0/storage-pools/{name}/volumes/custom: custom storage volumes and their snapshots, in
LXD 5.0's shapes (shared/api/storage_pool_volume.go, storage_pool_volume_snapshot.go) and
answers (lxd/storage_volumes.go, storage_volumes_snapshot.go): create, update, restore and
delete answer at once; copies, moves to another pool and snapshot changes are operations; a
rename answers 201 with the new URL. Each change publishes LXD's storage-volume-* lifecycle
event."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import EVENTS, MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import Conflict, InvalidConfig, NotSupported
from lxmgr.instances.manager import Manager
from lxmgr.instances.volumes import volume_url
from lxmgr.model.snapshot import validate_snapshot_name
from lxmgr.model.volume import (
    CONTENT_TYPE,
    VOLUME_TYPE,
    validate_volume_name,
    volume_key,
    volume_parts,
)

routes = web.RouteTableDef()
BASE = "/1.0/storage-pools/{name}/volumes/custom"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time: "no expiry"


def render(record: dict[str, Any], used_by: list[str]) -> dict[str, Any]:
    """A StorageVolume; a snapshot row ("vol/snap") as LXD's pool listing shows it."""
    project, name = volume_parts(record["name"])
    return {"name": name, "type": VOLUME_TYPE, "description": record["description"],
            "config": dict(record["config"]), "used_by": used_by, "location": "none",
            "content_type": CONTENT_TYPE, "project": project,
            "created_at": record["created_at"]}


def _owner(request: web.Request, project: str | None = None) -> str:
    """The project whose volumes a request (or `project`) uses (features.storage.volumes)."""
    scope = projects.scope(request)
    if project is None or project == scope.name:
        return scope.owner("features.storage.volumes")
    return request.app[MANAGER].volume_owner(project)


def _key(request: web.Request, name: str | None = None) -> str:
    """The key of the volume the URL (or `name`, a volume name a client gave) names."""
    if name is None:
        name = request.match_info["volume"]
    else:
        validate_volume_name(name)
    return volume_key(_owner(request), name)


def render_snapshot(record: dict[str, Any], expires_at: str | None) -> dict[str, Any]:
    """A StorageVolumeSnapshot (LXD's GET names it by its short name, its listing by
    "vol/snap" and with a null expires_at)."""
    return {"name": record["name"], "description": record["description"],
            "config": dict(record["config"]), "content_type": CONTENT_TYPE,
            "created_at": record["created_at"], "expires_at": expires_at}


def listing(manager: Manager, pool: str, level: int, owner: str | None) -> list[Any]:
    """The pool's custom volumes and snapshots of project `owner` (None: of every project)
    (URLs, or objects with level > 0)."""
    out: list[Any] = []
    for record in manager.volumes.list(pool):
        if owner is not None and volume_parts(record["name"])[0] != owner:
            continue
        if not level:
            out.append(volume_url(pool, record["name"]))
            continue
        snapshot = "/" in record["name"]
        out.append(render(record, [] if snapshot else
                          manager.volumes.used_by(pool, record["name"])))
    return out


def _changed(request: web.Request, action: str, pool: str, name: str, **context: Any) -> None:
    """LXD's lifecycle event: source /1.0/storage-pools/POOL/volumes/custom/NAME[/snapshots/S]."""
    request.app[EVENTS].changed("storage-pools", action, volume_url(
        pool, volume_parts(name)[1]).removeprefix("/1.0/storage-pools/"), **context)


def _resources(pool: str, name: str, snapshot: str | None = None) -> dict[str, list[str]]:
    out = {"storage_volumes": [volume_url(pool, name)]}
    if snapshot:
        out["storage_volume_snapshots"] = [volume_url(pool, f"{name}/{snapshot}")]
    return out


def _no_expiry(body: dict[str, Any]) -> None:
    if field(body, "expires_at", str):
        raise NotSupported("Expiry of storage volume snapshots is not supported")


# -- volumes -------------------------------------------------------------------------------------


@routes.get(BASE)
async def list_volumes(request: web.Request) -> web.Response:
    manager, pool = request.app[MANAGER], request.match_info["name"]
    level = responses.recursion(request)
    owner = None if projects.scope(request).all_projects else _owner(request)
    return responses.sync(await asyncio.to_thread(listing, manager, pool, level, owner))


@routes.post("/1.0/storage-pools/{name}/volumes")
async def create_untyped(request: web.Request) -> web.Response:
    return await _create(request, None)


@routes.post(BASE)
async def create_volume(request: web.Request) -> web.Response:
    return await _create(request, VOLUME_TYPE)


async def _create(request: web.Request, url_type: str | None) -> web.Response:
    manager, pool = request.app[MANAGER], request.match_info["name"]
    body = await json_body(request)
    kind = url_type or field(body, "type", str, "")
    if kind != VOLUME_TYPE:
        raise InvalidConfig(f"Currently not allowed to create storage volumes of type "
                            f"\"{kind}\"")  # LXD 5.0's words
    content = field(body, "content_type", str, "") or CONTENT_TYPE
    if content != CONTENT_TYPE:
        raise NotSupported(f"Storage volumes of content type '{content}' are not supported "
                           f"(only '{CONTENT_TYPE}')")
    name = _key(request, field(body, "name", str, ""))
    config = field(body, "config", dict)
    description = field(body, "description", str, "")
    source = field(body, "source", dict, {})
    source_type = field(source, "type", str, "")
    if source_type == "":
        await asyncio.to_thread(manager.volumes.create, pool, name, config, description)
        _changed(request, "storage-volume-created", pool, name, type=VOLUME_TYPE)
        return responses.sync({})
    if source_type == "migration":
        raise NotSupported("Migrating storage volumes is not supported")
    if source_type != "copy":
        raise InvalidConfig(f"Unknown source type \"{source_type}\"")  # LXD's words
    if field(source, "refresh", bool, False):
        raise NotSupported("Refreshing a storage volume from a copy is not supported")
    return await _copy(request, pool, name, config, description, source)


async def _copy(request: web.Request, pool: str, name: str, config: dict[str, Any] | None,
                description: str, source: dict[str, Any]) -> web.Response:
    manager = request.app[MANAGER]
    src_pool = field(source, "pool", str, "") or pool
    src_name = field(source, "name", str, "")
    if not src_name:
        raise InvalidConfig("No source volume name supplied")  # LXD's words
    shown = f"{src_pool}/{src_name}"
    # LXD's StorageVolumeSource.project: the project the source is in (default: the
    # request's).
    src_project = field(source, "project", str, "") or None
    if src_project is not None:
        await asyncio.to_thread(manager.db.project_get, src_project)
    validate_volume_name(src_name.partition("/")[0])
    src_name = volume_key(await asyncio.to_thread(_owner, request, src_project), src_name)
    volume_only = field(source, "volume_only", bool, False)

    def check() -> None:
        manager.volumes.get(src_pool, src_name.partition("/")[0])
        if any(r["name"] == name for r in manager.volumes.list(pool)):
            raise Conflict(f"Storage volume '{name}' already exists in pool '{pool}'")
    await asyncio.to_thread(check)

    async def work(op: Operation) -> None:
        await asyncio.to_thread(manager.volumes.copy, pool, name, src_pool, src_name,
                                config=config, description=description,
                                volume_only=volume_only)
        _changed(request, "storage-volume-created", pool, name, type=VOLUME_TYPE)

    op = request.app[OPERATIONS].create(f"Copying storage volume {shown}", work,
                                        resources=_resources(pool, name))
    return responses.async_op(op)


@routes.get(f"{BASE}/{{volume}}")
async def get_volume(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    pool, name = request.match_info["name"], _key(request)

    def show() -> dict[str, Any]:
        return render(manager.volumes.get(pool, name), manager.volumes.used_by(pool, name))
    return responses.sync(await asyncio.to_thread(show))


@routes.put(f"{BASE}/{{volume}}")
async def put_volume(request: web.Request) -> web.Response:
    """StorageVolumePut: `restore` first; then config and description replaced (unless the
    request only restores), as LXD's storagePoolVolumePut."""
    manager = request.app[MANAGER]
    pool, name = request.match_info["name"], _key(request)
    body = await json_body(request)
    restore = field(body, "restore", str, "")
    config = field(body, "config", dict)
    description = field(body, "description", str, "")
    if restore:
        await asyncio.to_thread(manager.volumes.restore, pool, name, restore)
        _changed(request, "storage-volume-restored", pool, name, snapshot=restore)
    if config is not None or not restore:
        await asyncio.to_thread(manager.volumes.update, pool, name, config or {}, description)
        _changed(request, "storage-volume-updated", pool, name)
    return responses.sync({})


@routes.patch(f"{BASE}/{{volume}}")
async def patch_volume(request: web.Request) -> web.Response:
    """Merge config keys into the volume's (description replaced when given)."""
    manager = request.app[MANAGER]
    pool, name = request.match_info["name"], _key(request)
    body = await json_body(request)
    changes = field(body, "config", dict, {})
    description = field(body, "description", str)

    def patch() -> None:
        current = manager.volumes.get(pool, name)["config"]
        manager.volumes.update(pool, name, {**current, **changes}, description)
    await asyncio.to_thread(patch)
    _changed(request, "storage-volume-updated", pool, name)
    return responses.sync({})


@routes.post(f"{BASE}/{{volume}}")
async def rename_volume(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    pool, name = request.match_info["name"], _key(request)
    body = await json_body(request)
    if field(body, "migration", bool, False):
        raise NotSupported("Migrating storage volumes is not supported")
    target = field(body, "pool", str, "") or pool
    new = _key(request, field(body, "name", str, ""))
    if target == pool:
        await asyncio.to_thread(manager.volumes.rename, pool, name, new)
        _changed(request, "storage-volume-renamed", pool, new, old_name=volume_parts(name)[1])
        return responses.sync({}, status=201, headers={"Location": volume_url(pool, new)})

    def check() -> None:
        manager.volumes.get(pool, name)
        if any(r["name"] == new for r in manager.volumes.list(target)):
            raise Conflict(f"Storage volume '{new}' already exists in pool '{target}'")
    await asyncio.to_thread(check)

    async def work(op: Operation) -> None:  # a move to another pool: copy, then delete
        await asyncio.to_thread(manager.volumes.move, pool, name, target, new)
        _changed(request, "storage-volume-created", target, new, type=VOLUME_TYPE)
        _changed(request, "storage-volume-deleted", pool, name)

    op = request.app[OPERATIONS].create(
        f"Moving storage volume {pool}/{volume_parts(name)[1]} to {target}", work,
        resources=_resources(pool, name))
    return responses.async_op(op)


@routes.delete(f"{BASE}/{{volume}}")
async def delete_volume(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    pool, name = request.match_info["name"], _key(request)
    await asyncio.to_thread(manager.volumes.delete, pool, name)
    _changed(request, "storage-volume-deleted", pool, name)
    return responses.sync({})


# -- snapshots -----------------------------------------------------------------------------------


@routes.get(f"{BASE}/{{volume}}/snapshots")
async def list_snapshots(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    pool, name = request.match_info["name"], _key(request)
    snaps = await asyncio.to_thread(manager.volumes.snapshots, pool, name)
    if not responses.recursion(request):
        return responses.sync([volume_url(pool, s["name"]) for s in snaps])
    return responses.sync([render_snapshot(s, None) for s in snaps])


@routes.post(f"{BASE}/{{volume}}/snapshots")
async def create_snapshot(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    pool, name = request.match_info["name"], _key(request)
    body = await json_body(request, required=False)
    _no_expiry(body)
    snap = field(body, "name", str) or None
    if snap is not None:
        validate_snapshot_name(snap)
    await asyncio.to_thread(manager.volumes.get, pool, name)

    async def work(op: Operation) -> dict[str, Any]:
        taken = await asyncio.to_thread(manager.volumes.snapshot, pool, name, snap)
        _changed(request, "storage-volume-snapshot-created", pool, f"{name}/{taken}")
        return {"name": taken}

    op = request.app[OPERATIONS].create(
        f"Snapshotting storage volume {pool}/{volume_parts(name)[1]}", work,
        resources=_resources(pool, name, snap))
    return responses.async_op(op)


def _snap(request: web.Request) -> tuple[Manager, str, str, str]:
    info = request.match_info
    return request.app[MANAGER], info["name"], _key(request), info["snapshot"]


@routes.get(f"{BASE}/{{volume}}/snapshots/{{snapshot}}")
async def get_snapshot(request: web.Request) -> web.Response:
    manager, pool, name, snap = _snap(request)
    record = await asyncio.to_thread(manager.volumes.get_snapshot, pool, name, snap)
    return responses.sync(render_snapshot({**record, "name": snap}, ZERO_TIME))


async def _update_snapshot(request: web.Request) -> web.Response:
    manager, pool, name, snap = _snap(request)
    body = await json_body(request)
    _no_expiry(body)
    description = field(body, "description", str)

    def update() -> None:
        record = manager.volumes.get_snapshot(pool, name, snap)
        manager.volumes.update_snapshot(pool, name, snap, record["description"]
                                        if description is None else description)
    await asyncio.to_thread(update)
    _changed(request, "storage-volume-snapshot-updated", pool, f"{name}/{snap}")
    return responses.sync({})


@routes.put(f"{BASE}/{{volume}}/snapshots/{{snapshot}}")
async def put_snapshot(request: web.Request) -> web.Response:
    return await _update_snapshot(request)


@routes.patch(f"{BASE}/{{volume}}/snapshots/{{snapshot}}")
async def patch_snapshot(request: web.Request) -> web.Response:
    return await _update_snapshot(request)


@routes.post(f"{BASE}/{{volume}}/snapshots/{{snapshot}}")
async def rename_snapshot(request: web.Request) -> web.Response:
    manager, pool, name, snap = _snap(request)
    body = await json_body(request)
    if field(body, "migration", bool, False):
        raise NotSupported("Migrating storage volume snapshots is not supported")
    new = field(body, "name", str, "")
    validate_snapshot_name(new)
    await asyncio.to_thread(manager.volumes.get_snapshot, pool, name, snap)

    async def work(op: Operation) -> None:
        await asyncio.to_thread(manager.volumes.rename_snapshot, pool, name, snap, new)
        _changed(request, "storage-volume-snapshot-renamed", pool, f"{name}/{new}",
                 old_name=snap)

    op = request.app[OPERATIONS].create(
        f"Renaming snapshot {pool}/{volume_parts(name)[1]}/{snap}", work,
        resources=_resources(pool, name, snap))
    return responses.async_op(op)


@routes.delete(f"{BASE}/{{volume}}/snapshots/{{snapshot}}")
async def delete_snapshot(request: web.Request) -> web.Response:
    manager, pool, name, snap = _snap(request)
    await asyncio.to_thread(manager.volumes.get_snapshot, pool, name, snap)

    async def work(op: Operation) -> None:
        await asyncio.to_thread(manager.volumes.delete_snapshot, pool, name, snap)
        _changed(request, "storage-volume-snapshot-deleted", pool, f"{name}/{snap}")

    op = request.app[OPERATIONS].create(
        f"Deleting snapshot {pool}/{volume_parts(name)[1]}/{snap}", work,
        resources=_resources(pool, name, snap))
    return responses.async_op(op)
