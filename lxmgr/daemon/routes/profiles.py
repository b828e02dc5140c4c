"""/1.0/profiles: list, create, show, replace (PUT), merge (PATCH), rename (POST), delete.

A project with features.profiles has its own profiles (stored under "<project>/<name>"),
another uses `default`'s, as LXD (lxmgr.daemon.projects.Scope.profile)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import MANAGER
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import InvalidConfig
from lxmgr.instances.profile_service import ProfileService
from lxmgr.model.profile import Profile, validate_profile_name
from lxmgr.model.project import instance_url, profile_parts, profile_url

routes = web.RouteTableDef()


def render(service: ProfileService, profile: Profile) -> dict[str, Any]:
    """LXD's api.Profile; used_by lists instances of every project using it."""
    users = service.used_by(profile.name)
    project, name = profile_parts(profile.name)
    return {"name": name, "description": profile.description,
            "config": dict(profile.config), "devices": dict(profile.devices),
            "used_by": [instance_url(u) for u in users], "project": project}


def _key(request: web.Request) -> str:
    return projects.scope(request).profile(request.match_info["name"])


def _service(request: web.Request) -> ProfileService:
    return request.app[MANAGER].profile_service


@routes.get("/1.0/profiles")
async def list_profiles(request: web.Request) -> web.Response:
    service = _service(request)
    level = responses.recursion(request)
    scope = projects.scope(request)

    def listing() -> list[Any]:
        found = {k: v for k, v in service.all().items() if scope.has_profile(k)}
        order = sorted(found, key=profile_parts)
        if not level:
            return [profile_url(k) for k in order]
        return [render(service, found[k]) for k in order]
    return responses.sync(await asyncio.to_thread(listing))


def _profile(body: dict[str, Any], name: str) -> Profile:
    return Profile(name, field(body, "description", str, ""), field(body, "config", dict, {}),
                   field(body, "devices", dict, {}))


@routes.post("/1.0/profiles")
async def create_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = field(body, "name", str, "")
    if not name:
        raise InvalidConfig("Missing profile name")
    validate_profile_name(name)
    key = projects.scope(request).profile(name)
    await asyncio.to_thread(_service(request).create, _profile(body, key))
    return responses.sync({}, status=201, headers={"Location": profile_url(key)})


@routes.get("/1.0/profiles/{name}")
async def get_profile(request: web.Request) -> web.Response:
    service = _service(request)
    profile = await asyncio.to_thread(service.get, _key(request))
    return responses.sync(await asyncio.to_thread(render, service, profile))


@routes.put("/1.0/profiles/{name}")
async def put_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    await asyncio.to_thread(_service(request).update, _profile(body, _key(request)))
    return responses.sync({})


@routes.patch("/1.0/profiles/{name}")
async def patch_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    await asyncio.to_thread(_service(request).patch, _key(request),
                            field(body, "description", str), field(body, "config", dict, {}),
                            field(body, "devices", dict, {}))
    return responses.sync({})


@routes.post("/1.0/profiles/{name}")
async def rename_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    new = field(body, "name", str, "")
    if not new:
        raise InvalidConfig("Missing new profile name")
    validate_profile_name(new)
    scope = projects.scope(request)
    await asyncio.to_thread(_service(request).rename, _key(request), scope.profile(new))
    return responses.sync({}, status=201,
                          headers={"Location": profile_url(scope.profile(new))})


@routes.delete("/1.0/profiles/{name}")
async def delete_profile(request: web.Request) -> web.Response:
    await asyncio.to_thread(_service(request).delete, _key(request))
    return responses.sync({})
