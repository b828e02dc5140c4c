"""Images beyond local recipes: pull from a simplestreams server, import and export LXD's
format, and apply an image's templates (metadata.yaml `templates:`) to an instance.

Pulls are async (aiohttp downloads); everything else blocks and runs in a worker thread.
The download and format modules are imported on first use: a Manager that never pulls
(the supervisor's helpers, benchmarks) does not load aiohttp.
A pulled image keeps where it came from (`source:` in its metadata.yaml) so `image
refresh` can look for a newer build; cached downloads are removed once imported. A name
found nowhere is NotFound listing what exists (missing_image); a server that cannot be
reached is lxmgr.images.download.ServerUnreachable, saying what works without it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxmgr import paths
from lxmgr.errors import LxmgrError, NotFound
from lxmgr.images.store import ImageInfo, image_names, read_metadata, write_metadata
from lxmgr.model.image import TemplateContext, parse_templates, rules_for
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.project import display
from lxmgr.model.remote import missing_image_message, server_label
from lxmgr.model.server_config import server_value
from lxmgr.model.units import parse_bool

if TYPE_CHECKING:
    from lxmgr.images.simplestreams import StreamImage
    from lxmgr.instances.manager import Manager

log = logging.getLogger(__name__)
_PULL_LOCKS: dict[str, asyncio.Lock] = {}


def cache_dir() -> Path:
    return paths.root() / "cache" / "images"


def missing_image(manager: Manager, ref: str) -> NotFound:
    """The error for a local name that is neither an image nor a recipe: it lists the local
    images' aliases (or short fingerprints) and the recipe names."""
    from lxmgr.images.remotes import recipe_names

    names = image_names(manager.images.list()) + recipe_names()
    return NotFound(missing_image_message(ref, names))


async def find_remote_image(server: str, alias: str) -> StreamImage:
    """The image alias (or fingerprint) names on server, for this architecture; NotFound
    names the server."""
    from lxmgr.images import download, simplestreams
    from lxmgr.images.remotes import host_architecture

    products = await download.fetch_products(server)
    try:
        return simplestreams.find_image(products, alias, host_architecture())
    except NotFound as err:
        raise NotFound(f"{err} on image server {server_label(server)}") from None


async def pull_image(manager: Manager, server: str, alias: str, *,
                     aliases: tuple[str, ...] = (), cached: bool = False,
                     auto_update: bool = False,
                     progress: Callable[[Any], None] | None = None) -> ImageInfo:
    """The image from a simplestreams server, downloaded and imported unless already
    stored (by fingerprint); aliases are added to it. cached: pulled for a launch (kept
    up to date per images.auto_update_cached, dropped when unused for
    images.remote_cache_expiry days); auto_update: keep it up to date regardless."""
    from lxmgr.images import download, lxdformat

    wanted = await find_remote_image(server, alias)
    lock = _PULL_LOCKS.setdefault(wanted.fingerprint, asyncio.Lock())
    async with lock:
        known = await asyncio.to_thread(manager.images.fingerprints)
        try:
            image = await asyncio.to_thread(manager.images.get, wanted.fingerprint)
        except NotFound:
            image = None
        if image is None and (manager.images.root / wanted.fingerprint).is_dir():
            # Another project has it: the same tree serves this one.
            image = await asyncio.to_thread(manager.images.store.join, wanted.fingerprint)
        if image is None:
            files = await download.fetch_image(server, wanted, cache_dir(), progress=progress)
            try:
                image = await asyncio.to_thread(
                    lxdformat.import_image, files, manager.images.store,
                    expected_fingerprint=wanted.fingerprint)
                await asyncio.to_thread(_record_source, image, server, alias, cached,
                                        auto_update)
            finally:
                shutil.rmtree(download.image_cache_dir(cache_dir(), wanted.fingerprint),
                              ignore_errors=True)
        for name in aliases:
            await asyncio.to_thread(manager.images.store.add_alias, image.fingerprint, name,
                                    take_over=True)
        log.info("Image %s from %s (%s) is stored", image.fingerprint[:12], server, alias)
        manager.images.announce_new(image.fingerprint, known)
        return await asyncio.to_thread(manager.images.get, image.fingerprint)


def _record_source(image: ImageInfo, server: str, alias: str, cached: bool,
                   auto_update: bool) -> None:
    data = read_metadata(image.path)
    data["source"] = {"server": server, "protocol": "simplestreams", "alias": alias}
    data["cached"], data["auto_update"] = cached, auto_update
    data["last_update_check"] = data["last_used_at"] = int(time.time())  # not the build date
    write_metadata(image.path, data)


def mark_used(image: ImageInfo) -> None:
    """Record that an instance was made from image (cached images expire when unused)."""
    data = read_metadata(image.path)
    if data.get("cached"):
        data["last_used_at"] = int(time.time())
        write_metadata(image.path, data)


def image_source(image: ImageInfo) -> dict[str, str]:
    """Where a pulled image came from ({} for local builds and imports)."""
    source = read_metadata(image.path).get("source")
    return {str(k): str(v) for k, v in source.items()} if isinstance(source, dict) else {}


async def refresh_image(manager: Manager, fingerprint: str) -> ImageInfo | None:
    """A newer build of a pulled image, moved under its aliases; None when up to date (or
    not pulled from a server). As LXD's autoUpdateImage: the new build is announced
    (image-created) by the pull, then the refresh (image-refreshed, source the old
    fingerprint), whoever asked (POST .../refresh or the hourly auto-update)."""
    image = await asyncio.to_thread(manager.images.get, fingerprint)
    source = await asyncio.to_thread(image_source, image)
    if not source:
        return None
    latest = await find_remote_image(source["server"], source["alias"])
    data = await asyncio.to_thread(read_metadata, image.path)
    if latest.fingerprint == image.fingerprint:
        data["last_update_check"] = int(time.time())
        await asyncio.to_thread(write_metadata, image.path, data)
        return None
    newer = await pull_image(manager, source["server"], source["alias"], aliases=image.aliases,
                             cached=bool(data.get("cached")),
                             auto_update=bool(data.get("auto_update")))
    await asyncio.to_thread(_retire, manager, image, newer)
    manager.images.announce("image-refreshed", image.fingerprint)
    return newer


def _retire(manager: Manager, old: ImageInfo, newer: ImageInfo) -> None:
    """The build a refresh replaced: deleted when unused, else never refreshed again (and,
    if cached, deleted once unused for images.remote_cache_expiry days). Silently: the
    refresh's image-refreshed says it (LXD's autoUpdateImage deletes it so)."""
    try:
        manager.images.delete(old.fingerprint, announce=False)
        return
    except LxmgrError:
        pass
    data = read_metadata(old.path)
    data["superseded_by"], data["auto_update"] = newer.fingerprint, False
    write_metadata(old.path, data)


async def image_duties(manager: Manager, now: float | None = None) -> list[str]:
    """Per the server config: refresh pulled images due for a check, then delete cached
    images no instance used for images.remote_cache_expiry days. What happened, a line
    each."""
    config = await asyncio.to_thread(manager.db.server_config)
    interval = int(server_value(config, "images.auto_update_interval")) * 3600
    update_cached = parse_bool(server_value(config, "images.auto_update_cached") or "false")
    expiry = int(server_value(config, "images.remote_cache_expiry")) * 86400
    now = now or time.time()
    done = []
    for image in await asyncio.to_thread(manager.images.list):
        data = await asyncio.to_thread(read_metadata, image.path)
        if not data.get("source"):
            continue
        wanted = not data.get("superseded_by") and (
            data.get("auto_update") or (data.get("cached") and update_cached))
        if interval and wanted and now - int(data.get("last_update_check", 0)) >= interval:
            try:
                newer = await refresh_image(manager, image.fingerprint)
                if newer is not None:
                    done.append(f"refreshed {image.fingerprint[:12]} -> "
                                f"{newer.fingerprint[:12]}")
            except LxmgrError as err:
                log.warning("Auto-update of image %s: %s", image.fingerprint[:12], err)
        last_used = int(data.get("last_used_at") or data.get("last_update_check") or now)
        if expiry and data.get("cached") and now - last_used >= expiry:
            try:
                await asyncio.to_thread(manager.delete_image, image.fingerprint)
                done.append(f"expired cached image {image.fingerprint[:12]}")
            except LxmgrError:
                continue  # still used by an instance
    return done


def image_flags(image: ImageInfo) -> dict[str, Any]:
    """What LXD's image object says beyond the store's fields: public, cached, auto_update,
    extra properties, update_source."""
    try:
        data = read_metadata(image.path)
    except (OSError, LxmgrError):
        data = {}
    props = data.get("properties") if isinstance(data.get("properties"), dict) else {}
    source = data.get("source") if isinstance(data.get("source"), dict) else None
    return {"public": bool(data.get("public")), "cached": bool(data.get("cached")),
            "auto_update": bool(data.get("auto_update")),
            "properties": {str(k): str(v) for k, v in (props or {}).items()
                           if k not in ("os", "release", "description")},
            "update_source": {"alias": source.get("alias", ""), "protocol": "simplestreams",
                              "server": source.get("server", ""), "certificate": "",
                              "image_type": "container"} if source else None}


def update_image(image: ImageInfo, changes: dict[str, Any], merge: bool) -> None:
    """`image edit`: properties (replaced, or merged for PATCH), public, auto_update."""
    data = read_metadata(image.path)
    if changes.get("properties") is not None:
        base = dict(data.get("properties") or {}) if merge else {}
        data["properties"] = {**base, **changes["properties"]}
        for key in ("os", "release"):
            if key in changes["properties"]:
                data[key] = changes["properties"][key]
    for key in ("public", "auto_update"):
        if changes.get(key) is not None:
            data[key] = changes[key]
        elif not merge:
            data[key] = False
    write_metadata(image.path, data)


# -- templates -------------------------------------------------------------------------------

def apply_image_templates(manager: Manager, spec: InstanceSpec, trigger: str) -> list[str]:
    """Render the image's templates for trigger (create, copy, start, rename) into the
    instance's volume, as its root owns files. Overlay volumes get them in their upper
    layer (the image is the lower one), so a create_only rule sees only that layer."""
    image = manager._image(spec)
    try:
        rules = rules_for(parse_templates(read_metadata(image.path).get("templates")), trigger)
    except FileNotFoundError:
        return []
    if not rules:
        return []
    idmap = manager._idmap(spec)
    rootfs = manager.pools.driver_for(spec).rootfs_spec(spec.name, image.rootfs, idmap)
    top = rootfs.upper if rootfs.kind == "overlay" else rootfs.source
    shifted = idmap is not None and not (rootfs.kind == "bind" and rootfs.idmap_lower)
    uid, gid = (idmap.host_uid(0), idmap.host_gid(0)) if shifted and idmap else (0, 0)
    expanded, devices = manager.expanded(spec)
    context = TemplateContext(
        name=display(spec.name), architecture=image.architecture,
        privileged=parse_bool(expanded.get("security.privileged") or "false"),
        ephemeral=spec.ephemeral, config=expanded, devices=devices)
    from lxmgr.images.templates import apply_templates

    written = apply_templates(image.path, rules, trigger, Path(top), context, uid=uid,
                              gid=gid)
    log.info("Templates (%s) of image %s written into %s: %s", trigger,
             image.fingerprint[:12], spec.name, ", ".join(written) or "none")
    return written


def image_config(image: ImageInfo) -> dict[str, str]:
    """The image.* keys of a new instance: a copy of its image's properties (architecture,
    os, release, description and any other), as LXD copies them at create time."""
    props = read_metadata(image.path).get("properties")
    merged: dict[str, str] = {"architecture": image.architecture, "os": image.os,
                              "release": image.release, "description": image.description}
    if isinstance(props, dict):
        merged.update({str(k): str(v) for k, v in props.items() if v is not None})
    return {f"image.{k}": v for k, v in sorted(merged.items())
            if v and k and "\0" not in v}
