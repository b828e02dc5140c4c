"""ETags of editable objects and the If-Match check, as LXD's util.EtagHash/EtagCheck.

A GET of an object that PUT or PATCH can change answers an `ETag` header; a PUT or PATCH
whose `If-Match` names another ETag than the object's current one is refused with 412
Precondition Failed before anything changes (lxd/instance_put.go, instance_patch.go,
profiles.go, networks.go, storage_pools.go, storage_volumes.go, images.go: `util.EtagCheck`
then `response.PreconditionFailed`). No If-Match header, or an empty one, means no check
(lxd/util/http.go EtagCheck). The hash covers what the object's owner edits, not its runtime
state (status, used_by, last_used_at), so a started instance keeps its ETag as in LXD.

Imports aiohttp and errors only."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lxmgr.errors import LxmgrError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The editable fields of instances, profiles, networks, storage pools and volumes, images
# and snapshots (LXD hashes a per-object subset of these).
EDITABLE = ("name", "type", "driver", "managed", "architecture", "description", "config",
            "devices", "ephemeral", "profiles", "stateful", "expires_at", "public",
            "auto_update", "properties", "target", "listen_address", "ports")
EDITS = ("PUT", "PATCH")
MAX_HASHED = 1 << 20  # bytes of a GET body worth hashing (a single object, not a list)


class PreconditionFailed(LxmgrError):
    """If-Match names another version of the object than the current one."""

    status = 412


def etag_of(metadata: Any) -> str | None:
    """The ETag of an object's GET metadata; None for anything but one object."""
    if not isinstance(metadata, dict):
        return None
    fields = {key: metadata[key] for key in EDITABLE if key in metadata}
    if not fields:
        return None
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


async def _editable(request: web.Request) -> bool:
    """Whether PUT or PATCH also answers on request's path (one object, not a list)."""
    for method in EDITS:
        if (await request.app.router.resolve(request.clone(method=method))).http_exception \
                is None:
            return True
    return False


async def _current_etag(request: web.Request) -> str | None:
    """The ETag a GET of the same path answers now."""
    probe = request.clone(method="GET", headers={k: v for k, v in request.headers.items()
                                                  if k.lower() not in ("if-match",
                                                                       "content-length")})
    match = await request.app.router.resolve(probe)
    if match.http_exception is not None:
        return None
    probe._match_info = match  # noqa: SLF001 - what aiohttp's own dispatch does
    match.add_app(request.app)
    response = await match.handler(probe)
    if not isinstance(response, web.Response) or response.status != 200 or \
            not isinstance(response.body, bytes) or len(response.body) > MAX_HASHED:
        return None
    return etag_of(json.loads(response.body).get("metadata"))


@web.middleware
async def etag_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ETag on GET of an editable object; 412 for a PUT/PATCH with a stale If-Match."""
    if request.method in EDITS:
        wanted = request.headers.get("If-Match", "").strip('"')
        if wanted:
            current = await _current_etag(request)
            if current is not None and wanted != current:  # LXD's words and order
                raise PreconditionFailed(f"ETag doesn't match: {current} vs {wanted}")
        return await handler(request)
    response = await handler(request)
    if request.method == "GET" and isinstance(response, web.Response) and \
            response.status == 200 and isinstance(response.body, bytes) and \
            len(response.body) <= MAX_HASHED and "ETag" not in response.headers and \
            response.content_type == "application/json" and await _editable(request):
        tag = etag_of(json.loads(response.body).get("metadata"))
        if tag is not None:
            response.headers["ETag"] = f'"{tag}"'  # quoted, as LXD's syncResponse
    return response
