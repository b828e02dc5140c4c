"""aiohttp responses in LXD's envelopes, and request parsing helpers shared by routes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from lxmgr.api import envelope
from lxmgr.api.operation import Operation
from lxmgr.errors import InvalidConfig

MAX_BODY = 4 << 20


def sync(metadata: Any, status: int = 200, headers: dict[str, str] | None = None) \
        -> web.Response:
    return web.json_response(envelope.sync_response(metadata), status=status, headers=headers)


def async_op(op: Operation) -> web.Response:
    return web.json_response(envelope.async_response(op.to_dict()), status=202,
                             headers={"Location": op.url})


def error(message: str, code: int) -> web.Response:
    return web.json_response(envelope.error_response(message, code), status=code)


async def json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object; InvalidConfig (400) for malformed or non-object bodies."""
    return parse_json_object(await request.read(), required=required)


def parse_json_object(raw: bytes, *, required: bool = True) -> dict[str, Any]:
    """json_body's checks on bytes already read."""
    if not raw.strip():
        if required:
            raise InvalidConfig("Missing request body")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidConfig(f"Malformed JSON body: {err}") from None
    if not isinstance(body, dict):
        raise InvalidConfig("The request body must be a JSON object")
    return body


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) \
        -> Any:
    """body[name] checked against kind (None means absent); InvalidConfig names the field."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) and kind in (int, float):
        raise InvalidConfig(f"Invalid '{name}': expected a number")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InvalidConfig(f"Invalid '{name}': expected {names}")
    return value


def recursion(request: web.Request) -> int:
    raw = request.query.get("recursion", "0")
    try:
        return int(raw.split(";")[0])
    except ValueError:
        raise InvalidConfig(f"Invalid recursion '{raw}'") from None


STATE_FIELDS = frozenset({"state.disk", "state.network"})  # the costly parts of a state


def state_fields(request: web.Request) -> frozenset[str]:
    """Which costly state fields a recursion=2 request wants (LXD's
    instances_state_selective_recursion): `recursion=2;fields=state.network` (or a separate
    fields= parameter), `recursion=2;fields=` for none; all when not said."""
    raw = request.query.get("recursion", "0")
    _, sep, rest = raw.partition(";")
    if sep:
        key, eq, text = rest.partition("=")
        if key != "fields" or not eq:
            raise InvalidConfig(f"Invalid recursion '{raw}': expected N;fields=FIELD,...")
    elif "fields" in request.query:
        text = request.query["fields"]
    else:
        return STATE_FIELDS
    fields = frozenset(f for f in text.split(",") if f)
    unknown = sorted(fields - STATE_FIELDS)
    if unknown:
        raise InvalidConfig(f"Invalid state field '{unknown[0]}': expected "
                            f"{', '.join(sorted(STATE_FIELDS))}")
    return fields
