"""Moving images in and out: uploads to POST /1.0/images (a unified tarball as the body, or
multipart metadata + rootfs for split images), pulls from a simplestreams server
({"source": {"type": "image", "server": ..., "alias": ...}}), and GET
/1.0/images/{fingerprint}/export (the original file(s) of an imported image, as LXD serves
them, or a unified tarball of an image built here).

Uploads are untrusted: streamed to a private temp directory with a size cap, then imported
by lxmgr.images.lxdformat (which refuses hostile archives); nothing stays behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

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


def upload_flags(headers: Any) -> dict[str, Any]:
    """What LXD's getImgPostInfo reads from an upload's headers, as image_ops.update_image
    changes: X-LXD-public (shared.IsTrue) and X-LXD-properties (each header a URL query,
    overriding the image's metadata.yaml properties)."""
    public = headers.get("X-LXD-public", "").strip().lower() in ("1", "true", "yes", "on")
    properties: dict[str, str] = {}
    for value in headers.getall("X-LXD-properties", []):
        for key, values in parse_qs(value, keep_blank_values=True).items():
            properties[key] = values[0]
    return {"public": True if public else None, "properties": properties or None}


async def upload(request: web.Request, *, head: bytes = b"") -> web.Response:
    """POST /1.0/images with the image itself as the body (unified) or as multipart parts
    `metadata` and `rootfs` (split). head: the first bytes of a body already read."""
    manager, ops = request.app[MANAGER], request.app[OPERATIONS]
    aliases = tuple(a for a in request.headers.get("X-LXD-aliases", "").split(",") if a)
    flags = upload_flags(request.headers)
    staging = staging_dir()
    try:
        files = await _receive(request, staging, head)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    async def work(op: Operation) -> dict[str, Any]:
        try:
            image = await asyncio.to_thread(manager.images.upload, files, aliases=aliases,
                                            flags=flags)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        return {"fingerprint": image.fingerprint, "size": image.size}

    return responses.async_op(ops.create("Importing image", work))


async def _receive(request: web.Request, staging: Path, head: bytes) -> list[Path]:
    if request.content_type.startswith("multipart/") and not head:
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
    pending = [head] if head else []

    async def read(n: int) -> bytes:
        return pending.pop() if pending else await request.content.read(n)
    await save(read, target, request.headers.get("X-LXD-filename", "image"))
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
    """The image's original file(s) as LXD's imageExportFiles serves them (one file, or a
    multipart/form-data body with parts `metadata` and `rootfs` for a split image), which
    hash to the fingerprint; for an image built here, a unified tarball written to a temp
    file removed after (lxmgr.instances.images.Images.export_files)."""
    staging = staging_dir()
    try:
        files = await asyncio.to_thread(request.app[MANAGER].images.export_files, image,
                                        staging)
        if len(files) == 2:
            return await stream_parts(request, [("metadata", files[0]), ("rootfs", files[1])])
        return await stream_file(request, files[0], files[0].name)
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


async def stream_parts(request: web.Request, parts: list[tuple[str, Path]]
                       ) -> web.StreamResponse:
    """Files as one multipart/form-data body, each part named and with its file name (Go's
    multipart.Writer.CreateFormFile, which LXD's FileResponse uses)."""
    boundary = uuid.uuid4().hex
    heads = [(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
              f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
              ).encode() for name, path in parts]
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = sum(len(h) for h in heads) + sum(p.stat().st_size for _, p in parts) \
        + 2 * (len(parts) - 1) + len(tail)
    response = web.StreamResponse(headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(length)})
    await response.prepare(request)
    for i, (head, (_, path)) in enumerate(zip(heads, parts, strict=True)):
        await response.write((b"\r\n" if i else b"") + head)
        with open(path, "rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                await response.write(chunk)
    await response.write(tail)
    await response.write_eof()
    return response
