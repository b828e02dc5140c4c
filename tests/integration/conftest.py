"""The daemon's application in-process (aiohttp test client) on a real Manager with its own
state dir and cgroup base; everything created is removed afterwards."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.image_cache import cached_debian_image
from tests.private_state import private_manager


@pytest.fixture
async def api(monkeypatch) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root")
    await _image()
    from lxmgr.daemon.app import create_app

    with private_manager(monkeypatch, "lxmi") as manager:
        client = TestClient(TestServer(create_app(manager, background=False)))
        await client.start_server()
        try:
            yield client
        finally:
            await client.close()


async def _image() -> None:
    import asyncio

    await asyncio.to_thread(cached_debian_image)


async def call(client: TestClient, method: str, path: str, body: Any = None,
               status: int = 200, raw: bytes | None = None) -> Any:
    """One API call; asserts the HTTP status and returns the JSON envelope."""
    kwargs: dict[str, Any] = {"data": raw, "headers": {"Content-Type": "application/json"}} \
        if raw is not None else ({"json": body} if body is not None else {})
    resp = await client.request(method, path, **kwargs)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def wait(client: TestClient, envelope: dict[str, Any], ok: bool = True) -> dict[str, Any]:
    """Wait for an async response's operation; returns the finished operation."""
    assert envelope["type"] == "async", envelope
    op = (await call(client, "GET", f"{envelope['operation']}/wait?timeout=60"))["metadata"]
    if ok:
        assert op["status"] == "Success", op
    return op
