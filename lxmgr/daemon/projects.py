"""LXD projects, reduced to the one lxmgr has: `default`.

Owns the `project` query parameter for the whole API: the middleware lets `project=default`
(or no project) through and answers 404 for any other project before a route runs, and it
accepts `all-projects=true` (there is only one project, so every list already spans them
all). Also the default project's fixed description and feature flags, shared with the
/1.0/projects routes. Imports aiohttp and errors only; never runtime or linux."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from lxmgr.errors import NotFound

DEFAULT = "default"
DESCRIPTION = "Default LXD project"
# LXD's default project has every feature on: its instances, images, profiles, volumes and
# networks are the server's (`lxd/db/cluster/projects.go` ProjectFeatures).
FEATURES = ("features.images", "features.profiles", "features.storage.volumes",
            "features.networks")
# The API lives under /1.0; the web panel (/ui) keeps its own query strings.
API_PREFIX = "/1.0"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_config() -> dict[str, str]:
    """The default project's config map, as LXD serves it."""
    return {key: "true" for key in FEATURES}


def check_project(name: str) -> None:
    """NotFound unless name is the default project (an empty name means the default)."""
    if name not in ("", DEFAULT):
        raise NotFound(f"Project '{name}' not found")


@web.middleware
async def project_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests aimed at a project other than `default`.

    `all-projects` needs nothing: routes ignore it, and with one project every list already
    spans all of them (LXD reads it leniently too, shared.IsTrue).

    Sits inside the error middleware, which renders the NotFound as LXD's error envelope."""
    if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
        for name in request.query.getall("project", []):
            check_project(name)
    return await handler(request)
