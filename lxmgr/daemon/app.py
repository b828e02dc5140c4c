"""The aiohttp application: typed app keys, the error middleware (LxmgrError -> LXD error
envelope with its status), route tables, background tasks owned by cleanup contexts.

Imports instances, api, model, errors; never runtime or linux (go through instances)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from lxmgr.daemon import auth, etag, responses
from lxmgr.daemon import projects as project_scope
from lxmgr.daemon.https import HTTPS, HttpsListener
from lxmgr.daemon.keys import EVENTS, IMAGE_BUILDS, MANAGER, OPERATIONS, WEBSOCKETS
from lxmgr.daemon.routes import (
    backups,
    certificates,
    events,
    images,
    instance_console,
    instance_exec,
    instance_files,
    instance_state,
    instances,
    internal,
    metrics,
    network_forwards,
    networks,
    openapi,
    operations,
    profiles,
    projects,
    server,
    snapshots,
    storage,
    storage_volumes,
)
from lxmgr.errors import LxmgrError
from lxmgr.instances import lifecycle
from lxmgr.instances.events import EventBus
from lxmgr.instances.image_builds import ImageBuilds
from lxmgr.instances.manager import Manager
from lxmgr.instances.operations import Operations

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as an LXD error envelope; 500 only for our own bugs."""
    try:
        return await handler(request)
    except LxmgrError as err:
        return responses.error(project_scope.shown(request, str(err)), err.status)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        reason = {404: "Not found", 405: "Method not allowed"}.get(err.status, err.reason)
        return responses.error(reason, err.status)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return responses.error("Internal error (see the daemon log)", 500)


def create_app(manager: Manager, *, background: bool = True) -> web.Application:
    """The daemon's web application around a Manager (tests pass their own)."""
    app = web.Application(middlewares=[error_middleware, auth.middleware,
                                       project_scope.project_middleware,
                                       etag.etag_middleware],
                          client_max_size=responses.MAX_BODY)
    bus = getattr(manager, "events", None) or EventBus()  # the engine's own bus
    app[MANAGER] = manager
    app[EVENTS] = bus
    app[OPERATIONS] = Operations(manager.db, bus)
    app[IMAGE_BUILDS] = ImageBuilds(lambda recipe, progress, cancel: manager.build_image(
        recipe, progress, cancel=cancel))
    app[WEBSOCKETS] = set()
    app[HTTPS] = HttpsListener()  # core.https_address; attached to the runner by lxmgrd
    for module in (server, instances, instance_state, instance_exec, instance_console,
                   instance_files, snapshots, backups, profiles, images, networks, network_forwards,
                   storage, storage_volumes,
                   operations, events, projects, metrics, openapi, certificates, internal):
        app.router.add_routes(module.routes)
    if background:
        app.cleanup_ctx.append(_lifecycle_tasks)
    app.on_shutdown.append(_close_websockets)
    app.on_cleanup.append(_stop_operations)
    return app


async def _lifecycle_tasks(app: web.Application) -> AsyncIterator[None]:
    """Autostart at daemon start, then watch for ephemeral instances that stopped. Before
    the daemon answers anything, what a killed daemon left half done is finished or undone
    (the API answers the truth from its first request)."""
    await asyncio.to_thread(app[MANAGER].recover)
    task = asyncio.create_task(lifecycle.run(app[MANAGER]), name="lifecycle")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _close_websockets(app: web.Application) -> None:
    for ws in list(app[WEBSOCKETS]):
        await ws.close(code=1001, message=b"Server shutdown")


async def _stop_operations(app: web.Application) -> None:
    await app[OPERATIONS].shutdown()
    await app[IMAGE_BUILDS].shutdown()
    from lxmgr.instances import files_api

    await asyncio.to_thread(files_api.shutdown)  # the files fork server, if one started
