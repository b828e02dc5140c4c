"""A FakeServer per test on a unix socket in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lxmgr.client import Client
from tests.unit.client.fake_server import FakeServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeServer]:
    fake = FakeServer(str(tmp_path / "unix.socket")).start()
    yield fake
    fake.stop()


@pytest.fixture
def client(server: FakeServer) -> Iterator[Client]:
    with Client(server.socket_path, timeout=10) as c:
        yield c
