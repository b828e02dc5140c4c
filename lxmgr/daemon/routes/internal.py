"""LXD's /internal endpoints that lxmgr has: PUT /internal/shutdown, what `lxd shutdown` and
`lxmgr daemon shutdown` call at host shutdown (systemd/lxmgr-startup.service ExecStop).

It stops every running instance in boot.stop.priority order, each given its
boot.host_shutdown_timeout (lxmgr.instances.lifecycle.shutdown), answers once they all
stopped, then lets lxmgrd exit. Served on the unix socket only: LXD refuses internal
requests from remote clients (lxd/daemon.go createCmd). Not part of the versioned API, so
not in /1.0/openapi.json (LXD's swagger leaves /internal out too)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from lxmgr.daemon import auth, responses
from lxmgr.daemon.keys import MANAGER
from lxmgr.errors import Forbidden
from lxmgr.instances import lifecycle

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# Set by lxmgrd (lxmgr.daemon.__main__): the event that ends serve(). An app without it (tests
# in-process) runs the sequence and stays up.
EXIT = web.AppKey("exit", asyncio.Event)


@routes.put("/internal/shutdown")
async def shutdown(request: web.Request) -> web.StreamResponse:
    if auth.is_tls(request):
        raise Forbidden("Forbidden")
    log.info("Asked to shut down by the API: stopping the running instances")
    stopped = await lifecycle.shutdown(request.app[MANAGER])
    log.info("Shutdown: %d instance(s) stopped", len(stopped))
    response = responses.sync({"stopped": stopped})
    # The answer leaves before lxmgrd does (LXD flushes it before its process ends).
    await response.prepare(request)
    await response.write_eof()
    exit_event = request.app.get(EXIT)
    if exit_event is not None:
        exit_event.set()
    return response
