"""Moving images in and out: uploads to POST /1.0/images (a unified tarball as the body, or
multipart metadata + rootfs for split images), pulls from a simplestreams server
({"source": {"type": "image", "server": ..., "alias": ...}}), and GET
/1.0/images/{fingerprint}/export (the unified tarball LXD's `image export` saves).

Uploads are untrusted: streamed to a private temp directory with a size cap, then imported
by lxmgr.images.lxdformat (which refuses hostile archives); nothing stays behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from lxmgr.api.operation import Operation
from lxmgr.daemon import responses
from lxmgr.daemon.keys import MANAGER, OPERATIONS
from lxmgr.daemon.responses import field
from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.images.store import ImageInfo
from lxmgr.instances import image_ops

MAX_UPLOAD = int(os.environ.get("LXMGR_MAX_IMAGE_UPLOAD", str(64 << 30)))
CHUNK = 1 << 20


def aliases_of(values: Any) -> tuple[str, ...]:
    """LXD's `aliases` field: [{"name": ...}] or plain names."""
    out = []
    for item in values or []:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name:
            raise InvalidConfig("Invalid 'aliases': expected names")
        out.append(name)
    return tuple(out)


def staging_dir() -> Path:
    root = image_ops.cache_dir().parent / "uploads"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="upload-", dir=root))


async def save(read: Callable[[int], Awaitable[bytes]], path: Path, what: str) -> None:
    """Copy a stream (its read(n) coroutine) to path, refusing more than MAX_UPLOAD bytes."""
    total = 0
    with open(path, "wb") as out:
        while chunk := await read(CHUNK):
            total += len(chunk)
            if total > MAX_UPLOAD:
                raise InvalidConfig(f"Image upload '{what}' is larger than {MAX_UPLOAD} bytes")
            await asyncio.to_thread(out.write, chunk)


async def upload(request: web.Request) -> web.Response:
    """POST /1.0/images with the image itself as the body (unified) or as multipart parts
    `metadata` and `rootfs` (split)."""
    manager, ops = request.app[MANAGER], request.app[OPERATIONS]
    aliases = tuple(a for a in request.headers.get("X-LXD-aliases", "").split(",") if a)
    staging = staging_dir()
    try:
        files = await _receive(request, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    async def work(op: Operation) -> dict[str, Any]:
        try:
            from lxmgr.images import lxdformat

            image = await asyncio.to_thread(lxdformat.import_image, files, manager.images,
                                            aliases=aliases)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        return {"fingerprint": image.fingerprint, "size": image.size}

    return responses.async_op(ops.create("Importing image", work))


async def _receive(request: web.Request, staging: Path) -> list[Path]:
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        parts: dict[str, Path] = {}
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise InvalidConfig("Nested multipart uploads are not supported")
            name = {"metadata": "metadata", "rootfs": "rootfs",
                    "rootfs.img": "rootfs"}.get(part.name or "")
            if name is None or name in parts:
                raise InvalidConfig(f"Unexpected upload part '{part.name}': send 'metadata' "
                                    "and 'rootfs'")
            parts[name] = staging / name
            await save(part.read_chunk, parts[name], name)
        if set(parts) != {"metadata", "rootfs"}:
            raise InvalidConfig("A split image upload needs the parts 'metadata' and 'rootfs'")
        return [parts["metadata"], parts["rootfs"]]
    target = staging / "image"
    await save(request.content.read, target, request.headers.get("X-LXD-filename", "image"))
    if target.stat().st_size == 0:
        raise InvalidConfig("Empty image upload")
    return [target]


async def pull(request: web.Request, body: dict[str, Any], source: dict[str, Any]
               ) -> web.Response:
    """POST /1.0/images {"source": {"type": "image", "server", "protocol", "alias"}}."""
    manager, ops = request.app[MANAGER], request.app[OPERATIONS]
    server, alias = remote_source(source)
    aliases = aliases_of(body.get("aliases"))
    auto_update = field(body, "auto_update", bool, False)

    async def work(op: Operation) -> dict[str, Any]:
        def progress(p: Any) -> None:
            ops.update(op, download_progress=p.text)
        image = await image_ops.pull_image(manager, server, alias, aliases=aliases,
                                           auto_update=auto_update, progress=progress)
        return {"fingerprint": image.fingerprint, "size": image.size}

    return responses.async_op(ops.create(f"Downloading image {alias}", work))


def remote_source(source: dict[str, Any]) -> tuple[str, str]:
    """(server, alias) of an image source on a simplestreams server; InvalidConfig else."""
    server = field(source, "server", str, "")
    protocol = field(source, "protocol", str, "simplestreams")
    alias = field(source, "alias", str, "") or field(source, "fingerprint", str, "")
    if protocol != "simplestreams":
        raise NotSupported(f"Image server protocol '{protocol}' is not supported: use "
                           "simplestreams")
    if not server.startswith(("https://", "http://127.0.0.1", "http://localhost",
                              "http://[::1]")):
        raise InvalidConfig(f"Invalid image server '{server}': expected an https:// URL")
    if not alias:
        raise InvalidConfig("Missing source.alias: the image to download")
    return server.rstrip("/"), alias


async def export(request: web.Request, image: ImageInfo) -> web.StreamResponse:
    """The unified LXD tarball of an image, streamed from a temp file removed after."""
    from lxmgr.images import lxdformat

    staging = staging_dir()
    try:
        path = await asyncio.to_thread(lxdformat.export_image, image, staging)
        return await stream_file(request, path, path.name)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)


async def stream_file(request: web.Request, path: Path, filename: str) -> web.StreamResponse:
    """A file as a download (Content-Disposition names it), read in chunks off the loop."""
    response = web.StreamResponse(headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(path.stat().st_size)})
    await response.prepare(request)
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            await response.write(chunk)
    await response.write_eof()
    return response
