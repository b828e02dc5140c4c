"""The daemon's application in-process (aiohttp test client) on a real Manager with its own
state dir and cgroup base; everything created is removed afterwards."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.image_cache import CACHE_DIR, cached_debian_image


@pytest.fixture
async def api(monkeypatch) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root")
    await _image()
    from lxmgr.daemon.app import create_app
    from lxmgr.instances.manager import Manager

    tag = uuid.uuid4().hex[:8]
    root = f"/tmp/lxmi-{tag}"
    os.makedirs(root)
    os.symlink(CACHE_DIR / "images", f"{root}/images")
    monkeypatch.setenv("LXMGR_DIR", root)
    manager = Manager(cgroup_base_name=f"lxmgr-test-{tag}")
    client = TestClient(TestServer(create_app(manager, background=False)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        for name in manager.list():
            try:
                manager.delete(name, force=True)
            except Exception as err:  # noqa: BLE001 - keep cleaning
                print(f"cleanup of {name} failed: {err}")
        manager.close()
        try:
            manager.cgroups.delete_base()
        except Exception as err:  # noqa: BLE001
            print(f"cleanup of cgroup base failed: {err}")
        os.unlink(f"{root}/images")
        shutil.rmtree(root, ignore_errors=True)


async def _image() -> None:
    import asyncio

    await asyncio.to_thread(cached_debian_image)


async def call(client: TestClient, method: str, path: str, body: Any = None,
               status: int = 200, raw: bytes | None = None) -> Any:
    """One API call; asserts the HTTP status and returns the JSON envelope."""
    kwargs: dict[str, Any] = {"data": raw} if raw is not None else (
        {"json": body} if body is not None else {})
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
