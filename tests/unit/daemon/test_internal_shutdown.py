"""PUT /internal/shutdown on the real app around a stand-in manager (no instances): answers
LXD's sync envelope with what it stopped, then sets the event that ends lxmgrd; a second
call while one runs is a 409; over HTTPS it is refused as LXD refuses remote internal
requests."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from lxmgr.daemon import auth
from lxmgr.daemon.app import create_app
from lxmgr.daemon.routes import internal
from lxmgr.errors import Forbidden


class StandIn:
    """A manager without instances (weak-referenceable, as lifecycle keeps its managers)."""

    db = None

    def list(self) -> list[str]:
        return []

    def statuses_fast(self, names: list[str]) -> list[str | None]:
        return []


def stand_in() -> StandIn:
    return StandIn()


async def test_shutdown_answers_then_ends_the_daemon() -> None:
    app = create_app(stand_in(), background=False)  # type: ignore[arg-type]
    done = asyncio.Event()
    app[internal.EXIT] = done
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.put("/internal/shutdown")
        body = await resp.json()
        assert resp.status == 200 and body["type"] == "sync"
        assert body["metadata"] == {"stopped": []}
        assert done.is_set()
    finally:
        await client.close()


async def test_without_exit_event_the_app_stays() -> None:
    client = TestClient(TestServer(create_app(stand_in(), background=False)))  # type: ignore[arg-type]
    await client.start_server()
    try:
        for _ in range(2):  # done, so a later call runs (and finds nothing) again
            assert (await client.put("/internal/shutdown")).status == 200
    finally:
        await client.close()


async def test_refused_over_tls() -> None:
    app = create_app(stand_in(), background=False)  # type: ignore[arg-type]
    request = make_mocked_request("PUT", "/internal/shutdown", app=app)
    with warnings.catch_warnings():  # auth's key is a plain string (NotAppKeyWarning)
        warnings.simplefilter("ignore")
        request[auth.TLS_KEY] = (True, "f" * 64)  # even a trusted certificate
    with pytest.raises(Forbidden):
        await internal.shutdown(request)
