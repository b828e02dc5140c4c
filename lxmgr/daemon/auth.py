"""Who is calling: requests on the unix socket are trusted; over HTTPS (lxmgr.daemon.https)
a client is trusted when its TLS certificate's sha256 fingerprint is in the trust store.
Untrusted TLS clients may only read `GET /` and a reduced `GET /1.0`, POST
/1.0/certificates with a trust token and attach to an operation's websocket with its secret;
everything else is 403 in LXD's error envelope.

The middleware also applies server config changes to the HTTPS listener (start, move, stop)
after a successful PUT/PATCH /1.0, restoring the old config when the new address cannot be
bound. Imports daemon modules, api, model, errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lxmgr.api.certificate import fingerprint
from lxmgr.daemon import responses
from lxmgr.daemon.https import HTTPS
from lxmgr.daemon.keys import MANAGER
from lxmgr.errors import Forbidden, InvalidConfig, LxmgrError
from lxmgr.instances.events import REQUESTOR

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What an untrusted TLS client may call (LXD: GET /, GET /1.0, POST /1.0/certificates, and
# an operation's websockets, which their secrets guard: AllowUntrusted in lxd/operations.go).
UNTRUSTED_ALLOWED = {("GET", "/"), ("GET", "/1.0"), ("POST", "/1.0/certificates")}
UNTRUSTED_WEBSOCKET = re.compile(r"/1\.0/operations/[^/]+/websocket")
TLS_KEY = "lxmgr.tls"  # request[TLS_KEY]: (trusted, fingerprint or "") for HTTPS requests
# The projects a restricted certificate may use (LXD's restricted certificates); absent for
# unrestricted clients and the unix socket.
RESTRICTED_KEY = web.RequestKey("lxmgr.restricted", tuple)


def peer_certificate(request: web.Request) -> bytes | None:
    """The DER certificate the TLS client presented; None on the unix socket or without one."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)  # type: ignore[no-any-return]


def is_tls(request: web.Request) -> bool:
    return TLS_KEY in request


def is_trusted(request: web.Request) -> bool:
    """Unix socket requests, and TLS ones with a certificate in the trust store."""
    return bool(request.get(TLS_KEY, (True, ""))[0])


def client_fingerprint(request: web.Request) -> str:
    return str(request.get(TLS_KEY, (True, ""))[1])


def restricted_projects(request: web.Request) -> tuple[str, ...] | None:
    """The projects a restricted TLS client may use; None when it is not restricted."""
    return request.get(RESTRICTED_KEY)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate TLS clients, then run the handler; see the module docstring."""
    transport = request.transport
    if transport is not None and transport.get_extra_info("ssl_object") is not None:
        der = peer_certificate(request)
        fp = fingerprint(der) if der else ""
        db = request.app[MANAGER].db
        row = await asyncio.to_thread(db.certificate_get, fp) if fp else None
        trusted = row is not None
        request[TLS_KEY] = (trusted, fp)
        if row is not None and row["restricted"]:
            request[RESTRICTED_KEY] = tuple(row["projects"])
        if not trusted and not _allowed_untrusted(request):
            raise Forbidden("Forbidden")
        token = REQUESTOR.set({"username": fp, "protocol": "tls",
                               "address": _address(transport.get_extra_info("peername"))})
        try:
            return await _serve(request, handler)
        finally:
            REQUESTOR.reset(token)
    return await _serve(request, handler)


def _address(peer: Any) -> str:
    """host:port ([v6]:port) of a TCP peer, as LXD's requestor address."""
    if not isinstance(peer, tuple) or len(peer) < 2:
        return ""
    host, port = str(peer[0]), peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _serve(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/1.0" and request.method in ("PUT", "PATCH"):
        return await _apply_server_config(request, handler)
    response = await handler(request)
    if request.path == "/1.0" and request.method == "GET" and is_tls(request):
        return _tls_server_info(request, response)
    return response


def _allowed_untrusted(request: web.Request) -> bool:
    if (request.method, request.path) in UNTRUSTED_ALLOWED:
        return True
    return request.method == "GET" and UNTRUSTED_WEBSOCKET.fullmatch(request.path) is not None


async def _apply_server_config(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the config change, then move the HTTPS listener; undo the change if that fails."""
    db = request.app[MANAGER].db
    before = await asyncio.to_thread(db.server_config)
    response = await handler(request)
    listener = request.app.get(HTTPS)
    if response.status != 200 or listener is None:
        return response
    try:
        await listener.sync()
    except (OSError, LxmgrError) as err:
        await asyncio.to_thread(db.set_server_config, before)
        address = (await asyncio.to_thread(db.server_config)).get("core.https_address", "")
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise InvalidConfig(f"Cannot listen on core.https_address (kept '{address}'): "
                            f"{reason}") from None
    return response


def _tls_server_info(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """GET /1.0 over TLS: `auth` from the certificate; untrusted clients see no details."""
    if not isinstance(response, web.Response) or response.status != 200 or \
            not isinstance(response.body, bytes):
        return response
    info: dict[str, Any] = json.loads(response.body)["metadata"]
    info["auth_methods"] = ["tls"]
    if not is_trusted(request):
        return responses.sync({key: info[key] for key in (
            "api_extensions", "api_status", "api_version", "auth_methods")} | {
            "auth": "untrusted", "public": False, "config": {},
            "environment": {"server_clustered": False}})
    listener = request.app.get(HTTPS)
    info["auth"] = "trusted"
    info["auth_user_method"] = "tls"
    info["auth_user_name"] = client_fingerprint(request)
    if listener is not None and listener.address:
        info["environment"]["certificate"] = listener.certificate_pem
        info["environment"]["certificate_fingerprint"] = listener.certificate_fingerprint
    return responses.sync(info)
