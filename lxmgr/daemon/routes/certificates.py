"""/1.0/certificates: LXD's TLS trust store (list, add, show, delete) and trust tokens
(`POST {"name": ..., "token": true}` answers a `token` operation listed in /1.0/operations,
revoked by deleting it; an untrusted TLS client then POSTs `{"trust_token": ...}` and its
certificate is added). Tokens are stored in the database, so restore_tokens() registers their
operations again at daemon start. A certificate may be restricted to projects (`restricted`,
`projects`; a token passes them on), as LXD's; what such a client may call is decided in
lxmgr.daemon.projects, and it sees only its own certificate here. Authentication:
lxmgr.daemon.auth.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from lxmgr.api.certificate import (
    TrustToken,
    certificate_pem,
    decode_token,
    fingerprint,
    load_certificate,
)
from lxmgr.api.operation import Operation, format_time
from lxmgr.daemon import auth, responses
from lxmgr.daemon.https import HTTPS
from lxmgr.daemon.keys import MANAGER, OPERATIONS
from lxmgr.daemon.responses import field, json_body
from lxmgr.errors import Conflict, Forbidden, InvalidConfig, NotFound, NotSupported

routes = web.RouteTableDef()
TOKEN_LIFETIME = timedelta(hours=1)


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row["name"], "type": row["type"], "restricted": row["restricted"],
            "projects": list(row["projects"]), "certificate": row["certificate"],
            "fingerprint": row["fingerprint"]}


async def _visible(request: web.Request) -> list[dict[str, Any]]:
    """The trust store as the client may see it: a restricted client its own entry only
    (LXD's certificatesGet for a non-admin)."""
    rows = await asyncio.to_thread(request.app[MANAGER].db.certificate_list)
    if auth.restricted_projects(request) is None:
        return rows
    return [row for row in rows if row["fingerprint"] == auth.client_fingerprint(request)]


async def _restriction(request: web.Request, body: dict[str, Any]) -> tuple[bool, list[str]]:
    """`restricted` and `projects` of a request; every project named must exist."""
    restricted = field(body, "restricted", bool, False)
    projects = field(body, "projects", list, []) or []
    if not all(isinstance(p, str) for p in projects):
        raise InvalidConfig("Invalid 'projects': expected a list of project names")
    if projects and not restricted:  # an unrestricted certificate would ignore them
        raise InvalidConfig("Projects can only be specified for restricted certificates")
    known = await asyncio.to_thread(request.app[MANAGER].db.projects)
    missing = [p for p in projects if p not in known]
    if missing:
        raise NotFound(f"Project '{missing[0]}' not found")
    return restricted, list(dict.fromkeys(projects))


@routes.get("/1.0/certificates")
async def list_certificates(request: web.Request) -> web.Response:
    rows = await _visible(request)
    if responses.recursion(request) >= 1:
        return responses.sync([_entry(row) for row in rows])
    return responses.sync([f"/1.0/certificates/{row['fingerprint']}" for row in rows])


async def _find(request: web.Request) -> dict[str, Any]:
    """The certificate named by a fingerprint or a unique prefix of one (as LXD)."""
    prefix = request.match_info["fingerprint"].lower()
    rows = await _visible(request)
    found = [row for row in rows if row["fingerprint"].startswith(prefix)]
    if len(found) != 1 or not prefix:
        raise NotFound("Certificate not found")
    return found[0]


@routes.get("/1.0/certificates/{fingerprint}")
async def get_certificate(request: web.Request) -> web.Response:
    return responses.sync(_entry(await _find(request)))


async def _update(request: web.Request, merge: bool) -> web.Response:
    """LXD's certificatePut/Patch: name, restricted and projects (the certificate itself
    and its type stay)."""
    row = await _find(request)
    body = await json_body(request)
    if merge:
        body = {"name": row["name"], "restricted": row["restricted"],
                "projects": row["projects"], **body}
    kind = field(body, "type", str, "") or "client"
    if kind != row["type"]:
        raise InvalidConfig(f"Unsupported certificate type '{kind}'")
    text = field(body, "certificate", str, "")
    if text and fingerprint(load_certificate(text)) != row["fingerprint"]:
        raise NotSupported("Replacing the certificate itself is not supported: add the new "
                           "one and delete this one")
    restricted, projects = await _restriction(request, body)
    await asyncio.to_thread(request.app[MANAGER].db.certificate_update, row["fingerprint"],
                            field(body, "name", str, "") or row["name"], restricted, projects)
    return responses.sync({})


@routes.put("/1.0/certificates/{fingerprint}")
async def put_certificate(request: web.Request) -> web.Response:
    return await _update(request, merge=False)


@routes.patch("/1.0/certificates/{fingerprint}")
async def patch_certificate(request: web.Request) -> web.Response:
    return await _update(request, merge=True)


@routes.delete("/1.0/certificates/{fingerprint}")
async def delete_certificate(request: web.Request) -> web.Response:
    row = await _find(request)
    await asyncio.to_thread(request.app[MANAGER].db.certificate_remove, row["fingerprint"])
    return responses.sync({})


@routes.post("/1.0/certificates")
async def add_certificate(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = field(body, "name", str, "")
    kind = field(body, "type", str, "") or "client"  # lxc 5.0 sends "": LXD reads it as client
    if kind != "client":
        raise InvalidConfig(f"Unsupported certificate type '{kind}'")
    if not auth.is_trusted(request):
        return await _join_with_token(request, body, name)
    restricted, projects = await _restriction(request, body)
    if field(body, "token", bool, False):
        return await _create_token(request, name, restricted, projects)
    text = field(body, "certificate", str, "")
    if text:
        cert = load_certificate(text)
    else:
        der = auth.peer_certificate(request)
        if der is None:
            raise InvalidConfig("No certificate given")
        cert = load_certificate(der)
    return await _store(request, cert, name or cert.subject.rfc4514_string(),
                        restricted=restricted, projects=projects)


async def _store(request: web.Request, cert: Any, name: str, *, restricted: bool = False,
                 projects: list[str] | None = None) -> web.Response:
    fp = fingerprint(cert)
    added = await asyncio.to_thread(functools.partial(
        request.app[MANAGER].db.certificate_add, fp, name, certificate_pem(cert),
        restricted=restricted, projects=projects))
    if not added:
        raise Conflict("Certificate already in trust store")
    url = f"/1.0/certificates/{fp}"
    return responses.sync({}, status=201, headers={"Location": url})


async def _join_with_token(request: web.Request, body: dict[str, Any], name: str) \
        -> web.Response:
    """An untrusted TLS client presents a token: its own certificate joins the store."""
    der = auth.peer_certificate(request)
    text = field(body, "trust_token", str, "") or field(body, "password", str, "")
    if der is None or not text:
        raise Forbidden("Forbidden")
    try:
        token = decode_token(text)
    except InvalidConfig:
        raise Forbidden("Forbidden") from None
    now = format_time(datetime.now(UTC))
    client = await asyncio.to_thread(request.app[MANAGER].db.token_consume, token.secret, now)
    if client is None:
        raise Forbidden("Invalid or expired trust token")
    _end_token_operation(request.app, token.secret)
    return await _store(request, load_certificate(der), client["name"] or name,
                        restricted=client["restricted"], projects=client["projects"])


async def _create_token(request: web.Request, name: str, restricted: bool,
                        projects: list[str]) -> web.Response:
    """A single-use token for `name`, valid one hour, as an LXD token operation; the
    certificate joining with it is restricted to `projects` when `restricted`."""
    if not name:
        raise InvalidConfig("A name is required for a trust token")
    listener = request.app.get(HTTPS)
    addresses = await asyncio.to_thread(listener.addresses) if listener is not None else []
    if listener is None or not addresses:
        raise InvalidConfig("The server is not available over the network "
                            "(set core.https_address)")
    now = datetime.now(UTC)
    token = TrustToken(client_name=name, fingerprint=listener.certificate_fingerprint,
                       addresses=addresses, secret=secrets.token_hex(32),
                       expires_at=format_time(now + TOKEN_LIFETIME))
    await asyncio.to_thread(functools.partial(
        request.app[MANAGER].db.token_add, token.secret, name, format_time(now),
        token.expires_at, restricted=restricted, projects=projects))
    return responses.async_op(register_token(request.app, token, restricted, projects))


def register_token(app: web.Application, token: TrustToken, restricted: bool = False,
                   projects: list[str] | None = None) -> Operation:
    """The `token` class operation of a stored token (LXD's certificate add token): running
    until it expires (then cancelled, as LXD's expired token pruning), is used by a joining
    client, or is revoked with DELETE /1.0/operations/{id}; the last two remove the token."""
    db = app[MANAGER].db
    expires = datetime.fromisoformat(token.expires_at.replace("Z", "+00:00")) \
        if token.expires_at else None

    async def work(_op: Operation) -> None:
        if expires is None:
            await asyncio.Event().wait()  # never expires: runs until used or revoked
        else:
            await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()))
        await asyncio.to_thread(db.token_remove, token.secret)
        raise asyncio.CancelledError  # an expired token ends Cancelled, as in LXD

    async def revoke(_op: Operation) -> None:
        await asyncio.to_thread(db.token_remove, token.secret)

    return app[OPERATIONS].create(
        "Certificate add token", work, class_="token", may_cancel=True, on_cancel=revoke,
        metadata={"request": {"name": token.client_name, "type": "client", "token": True,
                              "restricted": restricted, "projects": list(projects or [])},
                  "secret": token.secret, "fingerprint": token.fingerprint,
                  "addresses": token.addresses, "expiresAt": token.expires_at,
                  "token": token.encode()})


def _end_token_operation(app: web.Application, secret: str) -> None:
    """The token was used: its operation ends (cancelled, as LXD does on use)."""
    for op in list(app[OPERATIONS].ops.values()):
        if op.class_ == "token" and not op.is_final and op.metadata.get("secret") == secret:
            app[OPERATIONS].cancel(op.id)


async def restore_tokens(app: web.Application) -> None:
    """Daemon start: an operation again for each stored token still valid; expired ones go."""
    db = app[MANAGER].db
    listener = app.get(HTTPS)
    addresses = await asyncio.to_thread(listener.addresses) if listener is not None else []
    fp = listener.certificate_fingerprint if listener is not None and addresses else ""
    now = format_time(datetime.now(UTC))
    for row in await asyncio.to_thread(db.token_list):
        if row["expires_at"] and row["expires_at"] <= now:
            await asyncio.to_thread(db.token_remove, row["secret"])
            continue
        register_token(app, TrustToken(client_name=row["name"], fingerprint=fp,
                                       addresses=addresses, secret=row["secret"],
                                       expires_at=row["expires_at"]),
                       row["restricted"], row["projects"])
