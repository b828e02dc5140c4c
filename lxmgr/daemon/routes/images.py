"""/1.0/images and /1.0/images/aliases: the local image store. POST /1.0/images takes an
upload or a pull from an image server (routes.image_transfer), or {"source": {"type":
"recipe", "name": "debian"}} to build an image from a recipe (lxmgr's own source type), each
as an operation with progress."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.api.operation import Operation
from lxmgr.daemon import auth, projects, responses
from lxmgr.daemon.https import HTTPS
from lxmgr.daemon.keys import IMAGE_BUILDS, MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body, parse_json_object
from lxmgr.daemon.routes import image_transfer
from lxmgr.daemon.views import matches
from lxmgr.errors import Forbidden, InvalidConfig, NotSupported
from lxmgr.images.store import PROJECT as IMAGE_PROJECT
from lxmgr.images.store import ImageInfo
from lxmgr.instances import checkpoints, image_ops
from lxmgr.instances.events import PROJECT as REQUEST_PROJECT
from lxmgr.instances.image_builds import progress_metadata
from lxmgr.instances.images import alias_segment, view
from lxmgr.instances.manager import Manager
from lxmgr.instances.manager_publish import check_compression
from lxmgr.model.project import owner, url_suffix

routes = web.RouteTableDef()


@routes.get("/1.0/images")
async def list_images(request: web.Request) -> web.Response:
    """The images, filtered by `filter=` (LXD's api_filtering: `field eq|ne value` on the
    top-level fields, which is what lxc sends the server)."""
    level = responses.recursion(request)
    expr = request.query.get("filter", "")
    manager = request.app[MANAGER]
    if projects.scope(request).all_projects:
        rendered = await asyncio.to_thread(_every_project, manager)
    else:
        rendered = await asyncio.to_thread(lambda: [view(i) for i in manager.images.list()])
    return responses.sync([r if level else f"/1.0/images/{r['fingerprint']}"
                           + url_suffix(r["project"]) for r in rendered if matches(r, expr)])


def _every_project(manager: Manager) -> list[dict[str, Any]]:
    """The images of every project owning images (all-projects=true), each as it sees it."""
    out = []
    for project, row in sorted(manager.db.projects().items()):
        if owner(project, row["config"], "features.images") != project:
            continue
        token = IMAGE_PROJECT.set(project)
        try:
            out += [view(i) for i in manager.images.list()]
        finally:
            IMAGE_PROJECT.reset(token)
    return out


@routes.post("/1.0/images")
async def create_image(request: web.Request) -> web.StreamResponse:
    # LXD's imagesPost decodes the body as JSON whatever the Content-Type and takes a body
    # that does not decode as an image upload, unless it was sent as application/json.
    # pylxd's images.create(data) sends the tarball with no Content-Type at all.
    sent = request.headers.get("Content-Type", "")
    if sent.startswith("application/json"):
        body = await json_body(request)
    elif sent:
        return await image_transfer.upload(request)
    else:
        head = await request.content.readany()
        if not head.lstrip().startswith(b"{"):  # no tarball, squashfs or gzip starts so
            return await image_transfer.upload(request, head=head)
        body = parse_json_object(head + await request.read())
    source = field(body, "source", dict, {})
    kind = field(source, "type", str, "")
    if kind == "image" and field(source, "project", str, ""):
        return await _copy_from_project(request, body, source)
    if kind == "image":
        return await image_transfer.pull(request, body, source)
    if kind in ("instance", "snapshot", "container"):
        return await _publish(request, body, source)
    if kind != "recipe":
        raise NotSupported(f"Unsupported image source type '{kind}': upload the image, or "
                           "use 'image' (a simplestreams server) or 'recipe'")
    return await _build(request, source)


async def _copy_from_project(request: web.Request, body: dict[str, Any],
                             source: dict[str, Any]) -> web.Response:
    """POST /1.0/images {"source": {"type": "image", "fingerprint": FP, "project": P, ...}}
    (LXD's image_source_project, what `lxc image copy --target-project` sends): the image of
    project P on this server joins the request's project, with the given aliases; no bytes
    move (one tree serves every project that has it). A client restricted to other projects
    may not read P's images."""
    manager, ops = request.app[MANAGER], request.app[OPERATIONS]
    project = field(source, "project", str, "")
    reference = field(source, "fingerprint", str, "") or field(source, "alias", str, "")
    if not reference:
        raise InvalidConfig("Missing source.fingerprint: the image to copy")
    allowed = auth.restricted_projects(request)
    if allowed is not None and project not in allowed:
        raise Forbidden("not authorized")
    server = field(source, "server", str, "").rstrip("/")
    listener = request.app.get(HTTPS)
    ours = await asyncio.to_thread(listener.addresses) if listener is not None else []
    if server and server not in {f"https://{address}" for address in ours}:
        raise NotSupported(f"Copying images from another server ('{server}') is not "
                           "supported: only between projects of this one")
    row = await asyncio.to_thread(manager.db.project_get, project)
    aliases = image_transfer.aliases_of(body.get("aliases"))

    def find() -> ImageInfo:
        return manager.images.get(reference, owner(project, row["config"], "features.images"))
    image = await asyncio.to_thread(find)

    async def work(op: Operation) -> dict[str, Any]:
        joined = await asyncio.to_thread(manager.images.copy_from, image, aliases)
        return {"fingerprint": joined.fingerprint, "size": joined.size}

    return responses.async_op(ops.create(f"Copying image {image.fingerprint[:12]} from "
                                         f"project {project}", work))


async def _publish(request: web.Request, body: dict[str, Any], source: dict[str, Any]
                   ) -> web.Response:
    """POST /1.0/images {"source": {"type": "instance"|"snapshot", "name": ...}}."""
    manager, ops = request.app[MANAGER], request.app[OPERATIONS]
    name = field(source, "name", str, "")
    if not name:
        raise InvalidConfig("Missing source.name: the instance (or instance/snapshot) to "
                            "publish")
    aliases = image_transfer.aliases_of(body.get("aliases"))
    properties = {str(k): str(v) for k, v in field(body, "properties", dict, {}).items()}
    compression = field(body, "compression_algorithm", str, "") or None
    if compression is not None:
        check_compression(compression)
    instance, _, snap = name.partition("/")
    await asyncio.to_thread(manager.get_snapshot if snap else manager.get,
                            *((instance, snap) if snap else (instance,)))

    async def work(op: Operation) -> dict[str, Any]:
        image = await checkpoints.in_thread(manager.publish, name, aliases=aliases,
                                        properties=properties, compression=compression)
        return {"fingerprint": image.fingerprint, "size": image.size}

    return responses.async_op(ops.create(f"Publishing {name}", work, may_cancel=True))


async def _build(request: web.Request, source: dict[str, Any]) -> web.Response:
    manager = request.app[MANAGER]
    recipe = field(source, "name", str, "")
    if not recipe:
        raise InvalidConfig("Missing source.name: the image recipe to build")
    await asyncio.to_thread(manager.check_recipe, recipe)
    ops = request.app[OPERATIONS]

    async def work(op: Operation) -> dict[str, Any]:
        def progress(p: Any) -> None:
            ops.update(op, **progress_metadata(p))
        image = await request.app[IMAGE_BUILDS].build(recipe, progress)
        return {"fingerprint": image.fingerprint, "size": image.size}

    return responses.async_op(ops.create(f"Building image {recipe}", work, may_cancel=True))


@routes.get("/1.0/images/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    level = responses.recursion(request)
    images = await asyncio.to_thread(request.app[MANAGER].images.list)
    aliases = sorted((a, i.fingerprint) for i in images for a in i.aliases)
    return responses.sync([{"name": a, "target": fp, "description": "", "type": "container"}
                           if level else f"/1.0/images/aliases/{a}" for a, fp in aliases])


@routes.post("/1.0/images/aliases")
async def create_alias(request: web.Request) -> web.Response:
    body = await json_body(request)
    name, target = field(body, "name", str, ""), field(body, "target", str, "")
    if not name or not target:
        raise InvalidConfig("An alias needs a name and a target fingerprint")
    if field(body, "description", str, ""):  # not kept: refused rather than dropped
        raise NotSupported("Image alias descriptions are not supported")
    await asyncio.to_thread(request.app[MANAGER].images.create_alias, name, target)
    return _alias_created(name)


def _alias_created(name: str) -> web.Response:
    """LXD's SyncResponseLocation: 201 with the alias's URL."""
    return responses.sync({}, status=201, headers={
        "Location": f"/1.0/images/aliases/{alias_segment(name)}"
                    + url_suffix(REQUEST_PROJECT.get())})


@routes.get("/1.0/images/aliases/{name:.+}")
async def get_alias(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    image = await asyncio.to_thread(request.app[MANAGER].images.alias_target, name)
    return responses.sync({"name": name, "target": image.fingerprint, "description": "",
                           "type": "container"})


async def _update_alias(request: web.Request, merge: bool) -> web.Response:
    """ImageAliasesEntryPut: the target (an alias has no description here: refused)."""
    manager, name = request.app[MANAGER], request.match_info["name"]
    body = await json_body(request)
    if field(body, "description", str, ""):
        raise NotSupported("Image alias descriptions are not supported")
    target = field(body, "target", str, "")
    if not target and merge:
        target = (await asyncio.to_thread(manager.images.alias_target, name)).fingerprint
    if not target:
        raise InvalidConfig("Missing 'target': the image the alias points to")
    await asyncio.to_thread(manager.images.update_alias, name, target)
    return responses.sync({})


@routes.put("/1.0/images/aliases/{name:.+}")
async def put_alias(request: web.Request) -> web.Response:
    return await _update_alias(request, merge=False)


@routes.patch("/1.0/images/aliases/{name:.+}")
async def patch_alias(request: web.Request) -> web.Response:
    return await _update_alias(request, merge=True)


@routes.post("/1.0/images/aliases/{name:.+}")
async def rename_alias(request: web.Request) -> web.Response:
    body = await json_body(request)
    new = field(body, "name", str, "")
    await asyncio.to_thread(request.app[MANAGER].images.rename_alias,
                            request.match_info["name"], new)
    return _alias_created(new)


@routes.delete("/1.0/images/aliases/{name:.+}")
async def delete_alias(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[MANAGER].images.delete_alias, request.match_info["name"])
    return responses.sync({})


@routes.get("/1.0/images/{fingerprint}")
async def get_image(request: web.Request) -> web.Response:
    image = await asyncio.to_thread(request.app[MANAGER].images.get,
                                    request.match_info["fingerprint"])
    return responses.sync(await asyncio.to_thread(view, image))


async def _update(request: web.Request, merge: bool) -> web.Response:
    """ImagePut: properties, public, auto_update (what `lxc image edit` changes)."""
    manager = request.app[MANAGER]
    image = await asyncio.to_thread(manager.images.get, request.match_info["fingerprint"])
    body = await json_body(request)
    properties = field(body, "properties", dict)
    if properties is not None and not all(isinstance(v, str | int | float | bool)
                                          for v in properties.values()):
        raise InvalidConfig("Invalid 'properties': expected a map of strings")
    changes = {"properties": {str(k): str(v) for k, v in properties.items()}
               if properties is not None else None,
               "public": field(body, "public", bool),
               "auto_update": field(body, "auto_update", bool)}
    await asyncio.to_thread(manager.images.update, image, changes, merge)
    return responses.sync({})


@routes.put("/1.0/images/{fingerprint}")
async def put_image(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


@routes.patch("/1.0/images/{fingerprint}")
async def patch_image(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


@routes.get("/1.0/images/{fingerprint}/export")
async def export_image(request: web.Request) -> web.StreamResponse:
    image = await asyncio.to_thread(request.app[MANAGER].images.get,
                                    request.match_info["fingerprint"])
    return await image_transfer.export(request, image)


@routes.post("/1.0/images/{fingerprint}/secret")
async def image_secret(request: web.Request) -> web.Response:
    """LXD's image secret (an operation whose metadata holds it): what LXD's client asks the
    source server for before copying a private image. lxmgr copies images only between
    projects of this server (image_source_project), where the request's own access to the
    source project decides; the secret is given for the client's sake and checks nothing."""
    images = request.app[MANAGER].images
    image = await asyncio.to_thread(images.get, request.match_info["fingerprint"])
    secret = await asyncio.to_thread(images.create_secret, image)

    async def work(op: Operation) -> None:
        return None
    return responses.async_op(request.app[OPERATIONS].create(
        f"Image secret of {image.fingerprint[:12]}", work, class_="token",
        metadata={"secret": secret, "fingerprint": image.fingerprint},
        resources={"images": [f"/1.0/images/{image.fingerprint}"]}))


@routes.post("/1.0/images/{fingerprint}/refresh")
async def refresh_image(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    image = await asyncio.to_thread(manager.images.get, request.match_info["fingerprint"])

    async def work(op: Operation) -> dict[str, Any]:
        newer = await image_ops.refresh_image(manager, image.fingerprint)
        return {"refreshed": newer is not None,
                "fingerprint": newer.fingerprint if newer else image.fingerprint}
    return responses.async_op(request.app[OPERATIONS].create(
        f"Refreshing image {image.fingerprint[:12]}", work))


@routes.delete("/1.0/images/{fingerprint}")
async def delete_image(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    image = await asyncio.to_thread(manager.images.get, request.match_info["fingerprint"])
    await asyncio.to_thread(manager.delete_image, image.fingerprint)

    async def work(op: Operation) -> None:
        return None
    return responses.async_op(request.app[OPERATIONS].create(
        f"Deleting image {image.fingerprint[:12]}", work,
        resources={"images": [f"/1.0/images/{image.fingerprint}"]}))
