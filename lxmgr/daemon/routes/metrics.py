"""GET /1.0/metrics: per-instance cpu, memory, disk, filesystem, network and process metrics
in Prometheus' text format (0.0.4), with LXD's family names, for running instances.

Thin: the collection (supervisor calls, netns switches, cgroup reads) runs in a worker thread
(lxmgr.instances.metrics), the text is built by lxmgr.api.metrics. Not an LXD envelope: the
body is the exposition itself, as LXD serves it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from lxmgr.api.metrics import CONTENT_TYPE
from lxmgr.daemon import projects
from lxmgr.daemon.keys import MANAGER
from lxmgr.instances.metrics import render_scrape

routes = web.RouteTableDef()


@routes.get("/1.0/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    # LXD's metricsGet: one project's instances with `project=`, every project's without.
    project = projects.scope(request).name if request.query.get("project") else None
    text = await asyncio.to_thread(render_scrape, request.app[MANAGER], project)
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})
