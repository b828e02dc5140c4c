"""GET /1.0/openapi.json: the API description built by lxmgr.daemon.openapi_spec (plain
JSON, not in an envelope, like the swagger documents LXD publishes)."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from lxmgr import __version__
from lxmgr.daemon.openapi_spec import build_spec

routes = web.RouteTableDef()


@functools.cache
def spec() -> dict[str, Any]:
    """Built once: the description is data that only changes with the code."""
    return build_spec(__version__)


@routes.get("/1.0/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())
