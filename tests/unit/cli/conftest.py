"""A fake Client (records calls, answers from a table) and a runner wired to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lxmgr.cli.app import App
from lxmgr.cli.main import cli
from lxmgr.client import Response


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None
    headers: dict[str, str] | None = None
    project: str | None = None  # the client's project when the call was made (App sets it)


class FakeClient:
    """Stands in for lxmgr.client.Client: answers[(method, path)] is metadata or an exception."""

    socket_path = "/nonexistent/lxmgr-test.socket"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.answers: dict[tuple[str, str], Any] = {}
        self.project: str | None = None

    def _answer(self, method: str, path: str) -> Any:
        value = self.answers.get((method, path))
        if isinstance(value, BaseException):
            raise value
        if callable(value):
            return value()
        return value

    def query(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: Any = None, headers: dict[str, str] | None = None) -> Any:
        self.calls.append(Call(method, path, params, body, headers, self.project))
        return self._answer(method, path)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, headers: dict[str, str] | None = None) -> Response:
        self.calls.append(Call(method, path, params, body, headers, self.project))
        metadata = self._answer(method, path)
        return Response(200, {"etag": "etag-1"}, {"type": "sync", "metadata": metadata})

    def operate(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None, wait: bool = True) -> dict[str, Any]:
        self.calls.append(Call(method, path, params, body, project=self.project))
        return {"id": "op-1", "status_code": 200, "metadata": self._answer(method, path) or {}}

    def wait_operation(self, op: Any, timeout: float | None = None) -> dict[str, Any]:
        return dict(op) if isinstance(op, dict) else {"id": op, "status_code": 200}

    def raw(self, path: str, *, params: dict[str, Any] | None = None) -> bytes:
        self.calls.append(Call("GET", path, params, project=self.project))
        return bytes(self._answer("GET", path) or b"")

    def close(self) -> None:
        pass

    def mutations(self) -> list[tuple[str, str]]:
        """(method, path) of every non-GET call, in order."""
        return [(c.method, c.path) for c in self.calls if c.method != "GET"]

    def last(self, method: str, path: str) -> Call:
        return [c for c in self.calls if (c.method, c.path) == (method, path)][-1]


@pytest.fixture(autouse=True)
def private_conf(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI's own directory (remotes, current projects) of each test: never the user's."""
    conf = tmp_path_factory.mktemp("conf")
    monkeypatch.setenv("LXMGR_CONF", str(conf))
    return conf


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
def run(fake: FakeClient) -> Callable[..., Result]:
    def invoke(*args: str, input: str | None = None) -> Result:
        app = App(client=fake)  # type: ignore[arg-type]
        return CliRunner().invoke(cli, list(args), obj=app, input=input)

    return invoke
