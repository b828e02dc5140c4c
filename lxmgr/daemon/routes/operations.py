"""/1.0/operations: list (by status), show, wait, cancel, and the websocket attach point of
websocket-class operations (exec)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lxmgr.api.operation import Operation
from lxmgr.daemon import auth, projects, responses
from lxmgr.daemon.keys import OPERATIONS
from lxmgr.errors import Forbidden, InvalidConfig

routes = web.RouteTableDef()


def _dict(op: Operation | dict[str, Any]) -> dict[str, Any]:
    return op.to_dict() if isinstance(op, Operation) else op


@routes.get("/1.0/operations")
async def list_operations(request: web.Request) -> web.Response:
    level = responses.recursion(request)
    grouped: dict[str, list[Any]] = {}
    scope = projects.scope(request)
    for op in request.app[OPERATIONS].all(None if scope.all_projects else scope.name):
        key = str(op["status"]).lower()
        grouped.setdefault(key, []).append(op if level else f"/1.0/operations/{op['id']}")
    return responses.sync(grouped)


def _check_visible(request: web.Request) -> str:
    """The operation id of the URL; a restricted client sees operations of its projects
    only."""
    op_id = request.match_info["id"]
    allowed = auth.restricted_projects(request)
    if allowed is not None and request.app[OPERATIONS].project_of(op_id) not in allowed:
        raise Forbidden("not authorized")
    return op_id


@routes.get("/1.0/operations/{id}")
async def get_operation(request: web.Request) -> web.Response:
    return responses.sync(_dict(request.app[OPERATIONS].get(_check_visible(request))))


@routes.get("/1.0/operations/{id}/wait")
async def wait_operation(request: web.Request) -> web.Response:
    raw = request.query.get("timeout", "-1")
    try:
        timeout: float | None = float(raw)
    except ValueError:
        raise InvalidConfig(f"Invalid timeout '{raw}'") from None
    if timeout is not None and timeout < 0:
        timeout = None
    op = await request.app[OPERATIONS].wait(_check_visible(request), timeout)
    return responses.sync(_dict(op))


@routes.delete("/1.0/operations/{id}")
async def cancel_operation(request: web.Request) -> web.Response:
    request.app[OPERATIONS].cancel(_check_visible(request))
    return responses.sync({})
