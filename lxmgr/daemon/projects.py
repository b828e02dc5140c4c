"""The `project` query parameter for the whole API.

Projects are objects now (/1.0/projects, lxmgr.model.project), but every instance, profile,
image, volume and network still lives in `default`: no route scopes its objects by project
yet. So the middleware lets `project=default` (or no project) through, answers 404 for a
project that does not exist (LXD's "Project 'web' not found"), and refuses an existing
other project with 501 on every route except /1.0 and /1.0/projects, rather than serving or
creating `default`'s objects under another project's name. `all-projects=true` needs
nothing: every object is in `default`, so every list already spans all projects. Imports
aiohttp, instances' Manager key and errors only; never runtime or linux."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from lxmgr.daemon.keys import MANAGER
from lxmgr.errors import NotSupported
from lxmgr.model.project import DEFAULT

# The API lives under /1.0; the web panel (/ui) keeps its own query strings.
API_PREFIX = "/1.0"
# Routes that already answer for any project: the server's environment and projects.
PROJECT_AWARE = ("/1.0", "/1.0/projects")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def project_aware(path: str) -> bool:
    return path.rstrip("/") in PROJECT_AWARE or path.startswith("/1.0/projects/")


@web.middleware
async def project_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """404 for unknown projects, 501 for other projects on routes not scoped by project.

    Sits inside the error middleware, which renders both as LXD's error envelope."""
    if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
        for name in request.query.getall("project", []):
            if name in ("", DEFAULT):
                continue
            await asyncio.to_thread(request.app[MANAGER].db.project_get, name)
            if not project_aware(request.path):
                raise NotSupported(f"Project '{name}': only the default project holds "
                                   "instances, profiles, images, volumes and networks yet")
    return await handler(request)
