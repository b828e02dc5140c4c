"""GET/HEAD/POST/DELETE /1.0/instances/{name}/files?path= (LXD's files API, extensions
file_delete, file_append, file_symlinks, directory_manipulation, instance_file_head).

GET of a file answers its bytes, of a symlink its target, both with X-LXD-uid/gid/mode/type;
of a directory a sync envelope listing its entries. POST writes a file (body = content),
makes a directory or a symlink (body = target) per X-LXD-type; DELETE removes a file,
symlink or empty directory. Thin: validation and the transfer live in
lxmgr.instances.files_api.
"""

from __future__ import annotations

from aiohttp import web

from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import MANAGER
from lxmgr.instances import files_api

routes = web.RouteTableDef()
PATH = "/1.0/instances/{name}/files"


@routes.get(PATH, allow_head=False)
async def get_file(request: web.Request) -> web.StreamResponse:
    """A file's bytes, a symlink's target, or a directory's entries."""
    manager, name = request.app[MANAGER], projects.instance_name(request)
    async with files_api.pull(manager, name, request.query.get("path")) as (info, chunks):
        headers = files_api.response_headers(info)
        if info["type"] == "directory":
            return responses.sync(info["entries"], headers=headers)
        headers["Content-Type"] = "application/octet-stream"
        if info["type"] == "symlink":
            return web.Response(body=info["target"].encode(errors="surrogateescape"),
                                headers=headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response


@routes.head(PATH)
async def head_file(request: web.Request) -> web.StreamResponse:
    """The same headers as GET, no body."""
    info = await files_api.stat(request.app[MANAGER], projects.instance_name(request),
                                request.query.get("path"))
    headers = files_api.response_headers(info)
    if info["type"] == "file":
        headers["Content-Length"] = str(info["size"])
    return web.Response(headers=headers)


@routes.post(PATH)
async def post_file(request: web.Request) -> web.Response:
    """Create or write a file, a directory or a symlink."""
    req = files_api.parse_push(request.query.get("path"), request.headers)
    cap = files_api.max_upload()
    if request.content_length is not None and request.content_length > cap:
        raise files_api.TooLarge(f"File upload is larger than {cap} bytes "
                                 "(LXMGR_MAX_FILE_UPLOAD)")
    await files_api.push(request.app[MANAGER], projects.instance_name(request), req,
                         request.content.read)
    return responses.sync({})


@routes.delete(PATH)
async def delete_file(request: web.Request) -> web.Response:
    """Remove a file, a symlink (not its target) or an empty directory."""
    await files_api.delete(request.app[MANAGER], projects.instance_name(request),
                           request.query.get("path"))
    return responses.sync({})
