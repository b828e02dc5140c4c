"""GET /1.0/openapi.json stays true: every route the app registers is documented and every
documented operation is registered (the app is built around a stand-in manager: no root,
no state)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lxmgr.daemon.app import create_app
from lxmgr.daemon.openapi_spec import build_spec

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def normalize(path: str) -> str:
    """aiohttp's `{name:.+}` patterns are `{name}` in OpenAPI."""
    return re.sub(r"{(\w+):[^}]*}", r"{\1}", path)


def make_app() -> web.Application:
    return create_app(SimpleNamespace(db=None), background=False)  # type: ignore[arg-type]


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) of the API's routes; the HEAD aiohttp adds to each GET is left out."""
    found = {(route.method, normalize(route.resource.canonical))
             for route in app.router.routes() if route.resource is not None}
    api = {(m, p) for m, p in found if p == "/" or p == "/1.0" or p.startswith("/1.0/")}
    return {(m, p) for m, p in api if not (m == "HEAD" and ("GET", p) in api)}


def documented(spec: dict) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    """(METHOD, path) of the spec's operations; HEAD next to a GET is left out as above."""
    found = {(method.upper(), path) for path, item in spec["paths"].items()
             for method in item if method in METHODS}
    return {(m, p) for m, p in found if not (m == "HEAD" and ("GET", p) in found)}


def test_spec_matches_routes() -> None:
    routes, docs = registered(make_app()), documented(build_spec())
    assert sorted(routes - docs) == [], "registered but not documented"
    assert sorted(docs - routes) == [], "documented but not registered"


def test_operations_are_complete() -> None:
    spec = build_spec()
    ids = []
    for path, item in spec["paths"].items():
        placeholders = set(re.findall(r"{(\w+)}", path))
        for method, op in item.items():
            assert op["summary"], (method, path)
            params = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert params == placeholders, (method, path)
            assert "default" in op["responses"], (method, path)
            if path.startswith("/1.0"):
                assert any(p["name"] == "project" for p in op["parameters"]), (method, path)
            ids.append(op["operationId"])
    assert len(ids) == len(set(ids))


def test_spec_is_valid_openapi() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(build_spec())


async def test_served() -> None:
    client = TestClient(TestServer(make_app()))
    await client.start_server()
    try:
        resp = await client.get("/1.0/openapi.json")
        assert resp.status == 200 and resp.content_type == "application/json"
        spec = await resp.json()
    finally:
        await client.close()
    assert spec["openapi"].startswith("3.0") and spec == build_spec(spec["info"]["version"])
