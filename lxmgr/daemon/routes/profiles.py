"""/1.0/profiles: list, create, show, replace (PUT), merge (PATCH), rename (POST), delete.

A project with features.profiles has its own profiles (stored under "<project>/<name>"),
another uses `default`'s, as LXD (lxmgr.daemon.projects.Scope.profile)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.daemon import projects, responses
from lxmgr.daemon.keys import EVENTS, MANAGER
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import InvalidConfig
from lxmgr.instances import profiles as profiles_mod
from lxmgr.instances.manager import Manager
from lxmgr.model.profile import Profile, validate_profile_name
from lxmgr.model.project import instance_url, profile_parts, profile_url

routes = web.RouteTableDef()


def render(manager: Manager, profile: Profile) -> dict[str, Any]:
    """LXD's api.Profile; used_by lists instances of every project using it."""
    users = profiles_mod.used_by(manager.db, profile.name)
    project, name = profile_parts(profile.name)
    return {"name": name, "description": profile.description,
            "config": dict(profile.config), "devices": dict(profile.devices),
            "used_by": [instance_url(u) for u in users], "project": project}


def _key(request: web.Request) -> str:
    return projects.scope(request).profile(request.match_info["name"])


@routes.get("/1.0/profiles")
async def list_profiles(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    level = responses.recursion(request)
    scope = projects.scope(request)

    def listing() -> list[Any]:
        found = {k: v for k, v in manager.profiles().items() if scope.has_profile(k)}
        order = sorted(found, key=profile_parts)
        if not level:
            return [profile_url(k) for k in order]
        return [render(manager, found[k]) for k in order]
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
    await asyncio.to_thread(request.app[MANAGER].profile_create, _profile(body, key))
    request.app[EVENTS].changed("profiles", "profile-created", name)
    return responses.sync({}, status=201, headers={"Location": profile_url(key)})


@routes.get("/1.0/profiles/{name}")
async def get_profile(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    profile = await asyncio.to_thread(manager.db.profile_get, _key(request))
    return responses.sync(await asyncio.to_thread(render, manager, profile))


@routes.put("/1.0/profiles/{name}")
async def put_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    profile = _profile(body, _key(request))
    await asyncio.to_thread(request.app[MANAGER].profile_update, profile)
    request.app[EVENTS].changed("profiles", "profile-updated", request.match_info["name"])
    return responses.sync({})


@routes.patch("/1.0/profiles/{name}")
async def patch_profile(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    body = await json_body(request)
    old = await asyncio.to_thread(manager.db.profile_get, _key(request))
    merged = Profile(old.name, field(body, "description", str, old.description),
                     {**old.config, **field(body, "config", dict, {})},
                     {**old.devices, **field(body, "devices", dict, {})})
    await asyncio.to_thread(manager.profile_update, merged)
    request.app[EVENTS].changed("profiles", "profile-updated", request.match_info["name"])
    return responses.sync({})


@routes.post("/1.0/profiles/{name}")
async def rename_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    new = field(body, "name", str, "")
    if not new:
        raise InvalidConfig("Missing new profile name")
    validate_profile_name(new)
    scope = projects.scope(request)
    old = request.match_info["name"]
    await asyncio.to_thread(request.app[MANAGER].profile_rename, scope.profile(old),
                            scope.profile(new))
    request.app[EVENTS].changed("profiles", "profile-renamed", new, old_name=old)
    return responses.sync({}, status=201,
                          headers={"Location": profile_url(scope.profile(new))})


@routes.delete("/1.0/profiles/{name}")
async def delete_profile(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[MANAGER].profile_delete, _key(request))
    request.app[EVENTS].changed("profiles", "profile-deleted", request.match_info["name"])
    return responses.sync({})
