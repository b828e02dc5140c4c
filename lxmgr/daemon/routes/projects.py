"""/1.0/projects: the single `default` project, as LXD serves it (list, show, state).

Creating projects is not supported (501); any other project name is 404. The `project=`
query parameter of every other route is checked by lxmgr.daemon.projects' middleware."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import MANAGER
from lxmgr.errors import NotSupported
from lxmgr.instances.manager import Manager

routes = web.RouteTableDef()
# create_app installs it inside the error middleware (app.py imports this module already).
middleware = projects.project_middleware

DEFAULT_URL = f"/1.0/projects/{projects.DEFAULT}"


def used_by(manager: Manager) -> list[str]:
    """Every instance, profile, image, network and storage pool URL of the server.

    LXD leaves `?project=default` out of these URLs (lxd/api_project.go,
    projectUsedByListFromMap), so lxmgr does too."""
    urls = [f"/1.0/instances/{name}" for name in sorted(manager.list())]
    urls += [f"/1.0/profiles/{name}" for name in sorted(manager.profiles())]
    urls += [f"/1.0/images/{fp}" for fp in sorted(i.fingerprint for i in manager.images.list())]
    urls += [f"/1.0/networks/{name}" for name in manager.networks.names()]
    urls += [f"/1.0/storage-pools/{pool['name']}" for pool in manager.pools.list()]
    return urls


def render(manager: Manager) -> dict[str, Any]:
    """The default project object (LXD's api.Project)."""
    return {"name": projects.DEFAULT, "description": projects.DESCRIPTION,
            "config": projects.default_config(), "used_by": used_by(manager)}


def render_state(manager: Manager) -> dict[str, Any]:
    """LXD's api.ProjectState: usage per resource, no limits (-1) since none can be set.

    LXD's ProjectStateResource has no json tags, hence the capitalized `Limit`/`Usage`."""
    instances = len(manager.list())
    counts = {"instances": instances, "containers": instances, "virtual-machines": 0,
              "networks": len(manager.networks.names())}
    return {"resources": {key: {"Limit": -1, "Usage": usage} for key, usage in counts.items()}}


@routes.get("/1.0/projects")
async def list_projects(request: web.Request) -> web.Response:
    if responses.recursion(request):
        return responses.sync([await asyncio.to_thread(render, request.app[MANAGER])])
    return responses.sync([DEFAULT_URL])


@routes.post("/1.0/projects")
async def create_project(request: web.Request) -> web.Response:
    raise NotSupported("Only the default project is supported")


@routes.get("/1.0/projects/{name}")
async def get_project(request: web.Request) -> web.Response:
    projects.check_project(request.match_info["name"])
    return responses.sync(await asyncio.to_thread(render, request.app[MANAGER]))


@routes.get("/1.0/projects/{name}/state")
async def get_project_state(request: web.Request) -> web.Response:
    projects.check_project(request.match_info["name"])
    return responses.sync(await asyncio.to_thread(render_state, request.app[MANAGER]))
