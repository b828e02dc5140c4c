"""/1.0/instances/{name}/state: GET the InstanceState, PUT an action (start, stop, restart,
freeze, unfreeze) as an operation. Impossible actions (start a running instance, stop a
stopped one) are refused at once with 409, as the CLI needs a clear error."""

from __future__ import annotations

import asyncio

from aiohttp import web

from lxmgr.api.operation import Operation
from lxmgr.daemon import projects, responses, views
from lxmgr.daemon.keys import MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import InvalidConfig, InvalidState
from lxmgr.instances.manager import STOP_TIMEOUT
from lxmgr.model.project import display, instance_url

routes = web.RouteTableDef()

ACTIONS = {"start": "instance-started", "stop": "instance-stopped",
           "restart": "instance-restarted", "freeze": "instance-paused",
           "unfreeze": "instance-resumed"}
NEEDS_RUNNING = {"stop", "restart", "freeze", "unfreeze"}


@routes.get("/1.0/instances/{name}/state")
async def get_state(request: web.Request) -> web.Response:
    return responses.sync(await asyncio.to_thread(
        views.instance_state, request.app[MANAGER], projects.instance_name(request)))


@routes.put("/1.0/instances/{name}/state")
async def put_state(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    name = projects.instance_name(request)
    body = await json_body(request)
    action = field(body, "action", str, "")
    if action not in ACTIONS:
        raise InvalidConfig(f"Invalid action '{action}': expected one of "
                            f"{', '.join(ACTIONS)}")
    timeout = field(body, "timeout", (int, float), -1)
    timeout = STOP_TIMEOUT if timeout < 0 else float(timeout)
    force = field(body, "force", bool, False)
    status = await asyncio.to_thread(manager.status, name)
    if action == "start" and status != "Stopped":
        raise InvalidState(f"Instance '{name}' is already running")
    if action in NEEDS_RUNNING and status == "Stopped":
        raise InvalidState(f"Instance '{name}' is not running")
    if action == "freeze" and status == "Frozen":
        raise InvalidState(f"Instance '{name}' is already frozen")
    if action == "unfreeze" and status != "Frozen":
        raise InvalidState(f"Instance '{name}' is not frozen")

    async def work(op: Operation) -> None:
        if action == "start":
            await asyncio.to_thread(manager.start, name)
        elif action == "stop":
            await asyncio.to_thread(manager.stop, name, timeout=timeout, force=force)
        elif action == "restart":
            await asyncio.to_thread(manager.restart, name, timeout=timeout, force=force)
        elif action == "freeze":
            await asyncio.to_thread(manager.freeze, name)
        else:
            await asyncio.to_thread(manager.unfreeze, name)

    op = request.app[OPERATIONS].create(
        f"{action.capitalize()}ing instance {display(name)}".replace("Stoping", "Stopping"), work,
        resources={"instances": [instance_url(name)]})
    return responses.async_op(op)
