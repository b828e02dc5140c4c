"""The `project` query parameter for the whole API: which project a request acts in.

The middleware resolves `project=NAME` (absent or empty: `default`; an unknown project is
LXD's 404 "Project 'web' not found") into a Scope kept on the request, which routes use to
map the names they are given to the names objects are stored under, and back
(lxmgr.model.project: instances as "<project>_<name>", a project's own profiles as
"<project>/<name>", its own custom volumes as "<project>+<name>"; images list their
projects, lxmgr.images.store); `all-projects=true` widens a listing to every project, as
LXD's. Objects a project shares with `default` (a `features.*` left off) are `default`'s,
served unchanged; a project with its own networks has none (bridges live in default only,
as LXD 5.0). A client with a restricted certificate is held to its projects here too
(check_restricted). Imports aiohttp, daemon keys and auth, lxmgr.model.project, the image
store's and events' context variables, and errors."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from lxmgr.daemon import responses
from lxmgr.daemon.auth import restricted_projects
from lxmgr.daemon.keys import MANAGER
from lxmgr.errors import Forbidden, InvalidConfig, NotFound
from lxmgr.images.store import PROJECT as IMAGE_PROJECT
from lxmgr.instances.events import PROJECT
from lxmgr.model import project as model

# The API lives under /1.0; the web panel (/ui) keeps its own query strings.
API_PREFIX = "/1.0"

NETWORKS = "/1.0/networks"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Scope:
    """The project a request acts in, with its config (features decide what it shares
    with `default`), and whether a listing spans every project (`all-projects=true`)."""

    name: str = model.DEFAULT
    config: Mapping[str, str] = field(default_factory=model.default_config)
    all_projects: bool = False

    @property
    def is_default(self) -> bool:
        return self.name == model.DEFAULT

    def owner(self, feature: str) -> str:
        """The project whose objects of `feature` this one uses (itself or `default`)."""
        return model.owner(self.name, self.config, feature)

    # -- instances: always the project's own --------------------------------------------------

    def instance(self, name: str) -> str:
        """The stored name of this project's instance `name`."""
        return model.storage_name(self.name, name)

    # -- profiles: the project's own, or default's ---------------------------------------------

    @property
    def profile_owner(self) -> str:
        return self.owner("features.profiles")

    def profile(self, name: str) -> str:
        """The key of profile `name` as this project sees it."""
        return model.profile_key(self.profile_owner, name)

    def profiles(self, names: list[object] | None) -> list[object]:
        """A request's profile list as keys (None: the project's `default`, as LXD)."""
        return [self.profile(p) if isinstance(p, str) else p
                for p in (["default"] if names is None else names)]

    def has_profile(self, key: str) -> bool:
        return self.all_projects or model.profile_parts(key)[0] == self.profile_owner


DEFAULT_SCOPE = Scope()
SCOPE_KEY = web.RequestKey("lxmgr.project", Scope)


def scope(request: web.Request) -> Scope:
    """The request's project (`default` for requests the middleware did not see)."""
    return request.get(SCOPE_KEY, DEFAULT_SCOPE)


def _flag(value: str) -> bool:
    if value.lower() in ("", "0", "false"):
        return False
    if value.lower() in ("1", "true"):
        return True
    raise InvalidConfig(f"Invalid value '{value}' for all-projects: use true or false")


# Server-level objects a restricted certificate may read but not change (LXD 5.0 lets only
# admins change them): the server, projects, the trust store, pools (not their volumes) and
# networks (bridges are default's).
_SERVER_LEVEL = re.compile(r"^/1\.0(/projects(/.*)?|/certificates(/.*)?|/storage-pools(/[^/]+)?"
                           r"|/networks(/.*)?)?$")


def check_restricted(request: web.Request, name: str, all_projects: bool,
                     allowed: tuple[str, ...]) -> None:
    """What a client with a restricted certificate may do (LXD's restricted TLS clients):
    act in the projects it is restricted to, read the server, its projects (the list is
    filtered) and its own certificate; change nothing server-wide, see no other project."""
    path, method = request.path.rstrip("/") or "/", request.method
    if method == "GET" and path in ("/1.0", "/1.0/projects", "/1.0/certificates"):
        return
    if method == "GET" and path.startswith("/1.0/projects/"):
        if path.split("/")[3] not in allowed:
            raise Forbidden("not authorized")
        return
    if method == "GET" and path.startswith("/1.0/certificates/"):
        return  # its own only (routes.certificates)
    if _by_id(path):
        return  # the operation's own project is checked by routes.operations
    if (method != "GET" and _SERVER_LEVEL.match(path)) or all_projects or \
            name not in allowed or path == "/1.0/metrics" or path.startswith("/1.0/internal"):
        raise Forbidden("not authorized")


def _by_id(path: str) -> bool:
    """An operation named by its id: LXD does not check the project there (a client may
    wait on an operation of a project renamed or deleted meanwhile)."""
    return path.startswith(API_PREFIX + "/operations/")


@web.middleware
async def project_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve `project=` into the request's Scope (404 for an unknown project), held to a
    restricted certificate's projects.

    Sits inside the error middleware, which renders errors as LXD's error envelope."""
    found = DEFAULT_SCOPE
    if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
        names = request.query.getall("project", [])
        name = names[-1] if names and names[-1] else model.DEFAULT
        all_projects = _flag(request.query.get("all-projects", ""))
        allowed = restricted_projects(request)
        if allowed is not None:
            check_restricted(request, name, all_projects, allowed)
        if (name != model.DEFAULT or all_projects) and not _by_id(request.path):
            row = await asyncio.to_thread(request.app[MANAGER].db.project_get, name)
            found = Scope(name, dict(row["config"]), all_projects)
            if not found.is_default and found.owner("features.networks") == found.name \
                    and (request.path == NETWORKS or request.path.startswith(NETWORKS + "/")):
                return await _own_networks(request)
            request[SCOPE_KEY] = found
    # The project of this request's operations and events (and those of the tasks it
    # starts), and the images it sees; set for every request and reset after it: requests
    # on one keep-alive connection run in one task, so its context would carry over.
    tokens = (PROJECT.set(found.name), IMAGE_PROJECT.set(found.owner("features.images")))
    try:
        return await handler(request)
    finally:
        IMAGE_PROJECT.reset(tokens[1])
        PROJECT.reset(tokens[0])


async def _own_networks(request: web.Request) -> web.StreamResponse:
    """A project with features.networks has networks of its own, and lxmgr's only type,
    bridge, lives in the default project alone (LXD 5.0's networksPost: "Network type does
    not support non-default projects"): its list is empty and it has none to show."""
    if request.path.rstrip("/") == NETWORKS:
        if request.method == "GET":
            return responses.sync([])
        if request.method == "POST":
            raise InvalidConfig("Network type does not support non-default projects")
    name = request.path.removeprefix(NETWORKS + "/").split("/", 1)[0]
    raise NotFound(f"Network '{name}' not found")


def instance_name(request: web.Request, key: str = "name") -> str:
    """The stored name of the instance a route's URL names, in the request's project."""
    return scope(request).instance(request.match_info[key])


def shown(request: web.Request, message: str) -> str:
    """A message as the client should read it: names as it gave them, not as stored."""
    return model.shown(scope(request).name, message)
