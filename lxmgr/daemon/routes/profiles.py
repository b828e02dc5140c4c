"""/1.0/profiles: list, create, show, replace (PUT), merge (PATCH), rename (POST), delete."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from lxmgr.daemon import responses
from lxmgr.daemon.keys import EVENTS, MANAGER
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import InvalidConfig
from lxmgr.instances import profiles as profiles_mod
from lxmgr.instances.manager import Manager
from lxmgr.model.profile import Profile

routes = web.RouteTableDef()


def render(manager: Manager, profile: Profile) -> dict[str, Any]:
    users = profiles_mod.used_by(manager.db, profile.name)
    return {"name": profile.name, "description": profile.description,
            "config": dict(profile.config), "devices": dict(profile.devices),
            "used_by": [f"/1.0/instances/{u}" for u in users], "project": "default"}


@routes.get("/1.0/profiles")
async def list_profiles(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    level = responses.recursion(request)

    def listing() -> list[Any]:
        found = manager.profiles()
        if not level:
            return [f"/1.0/profiles/{n}" for n in sorted(found)]
        return [render(manager, found[n]) for n in sorted(found)]
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
    await asyncio.to_thread(request.app[MANAGER].profile_create, _profile(body, name))
    request.app[EVENTS].changed("profiles", "profile-created", name)
    return responses.sync({}, status=201, headers={"Location": f"/1.0/profiles/{name}"})


@routes.get("/1.0/profiles/{name}")
async def get_profile(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    profile = await asyncio.to_thread(manager.db.profile_get, request.match_info["name"])
    return responses.sync(await asyncio.to_thread(render, manager, profile))


@routes.put("/1.0/profiles/{name}")
async def put_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    profile = _profile(body, request.match_info["name"])
    await asyncio.to_thread(request.app[MANAGER].profile_update, profile)
    request.app[EVENTS].changed("profiles", "profile-updated", profile.name)
    return responses.sync({})


@routes.patch("/1.0/profiles/{name}")
async def patch_profile(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    body = await json_body(request)
    old = await asyncio.to_thread(manager.db.profile_get, request.match_info["name"])
    merged = Profile(old.name, field(body, "description", str, old.description),
                     {**old.config, **field(body, "config", dict, {})},
                     {**old.devices, **field(body, "devices", dict, {})})
    await asyncio.to_thread(manager.profile_update, merged)
    request.app[EVENTS].changed("profiles", "profile-updated", merged.name)
    return responses.sync({})


@routes.post("/1.0/profiles/{name}")
async def rename_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    new = field(body, "name", str, "")
    old = request.match_info["name"]
    await asyncio.to_thread(request.app[MANAGER].profile_rename, old, new)
    request.app[EVENTS].changed("profiles", "profile-renamed", new, old_name=old)
    return responses.sync({}, status=201, headers={"Location": f"/1.0/profiles/{new}"})


@routes.delete("/1.0/profiles/{name}")
async def delete_profile(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[MANAGER].profile_delete, request.match_info["name"])
    request.app[EVENTS].changed("profiles", "profile-deleted", request.match_info["name"])
    return responses.sync({})
