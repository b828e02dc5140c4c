"""Schemathesis over GET /1.0/openapi.json against a real lxmgrd: no request may get a 5xx
or kill the daemon.

The daemon runs on a temp LXMGR_DIR with its own cgroup base, no default network and an
empty image store, and the calls that could reach past it are not fuzzed: creating
instances (image builds and pulls go to the network), images (uploads, pulls, builds,
refreshes), networks (real bridges and nftables rules) and storage pools (loop devices,
host directories). Everything else only meets the daemon's own state; whatever the run
creates (profiles, server config) goes with the daemon (tests/system/conftest.py's
Daemon.cleanup, then the dir). LXMGR_FUZZ_EXAMPLES sets the examples per operation."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.conftest import Daemon, _remove_cgroup_base

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
import requests  # noqa: E402 - a schemathesis dependency
import urllib3  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

pytestmark = pytest.mark.system

EXAMPLES = int(os.environ.get("LXMGR_FUZZ_EXAMPLES", "8"))
EXCLUDED = {
    ("POST", "/1.0/instances"),
    ("POST", "/1.0/images"),
    ("POST", "/1.0/images/{fingerprint}/refresh"),
    ("POST", "/1.0/networks"),
    ("POST", "/1.0/storage-pools"),
}
# Objects the empty daemon has: fuzzing them too reaches past the 404s.
EXISTING = ("/1.0/profiles/{name}", "/1.0/storage-pools/{name}", "/1.0/projects/{name}")
BASE_URL = "http://unix.socket"
# lxmgr's NotSupported (errors.py): a deliberate answer for what lxmgr does not do.
NOT_SUPPORTED = 501


class UnixConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection to the daemon's unix socket."""

    def __init__(self, *args: Any, socket_path: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(self.socket_path)
        return sock


class UnixPool(urllib3.HTTPConnectionPool):
    ConnectionCls = UnixConnection


class UnixAdapter(requests.adapters.HTTPAdapter):
    """requests over a unix socket (what schemathesis' case.call sends through)."""

    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self.pool = UnixPool("unix.socket", socket_path=socket_path)

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> UnixPool:
        return self.pool

    def close(self) -> None:
        self.pool.close()
        super().close()


@pytest.fixture
def empty_daemon() -> Iterator[Daemon]:
    """A daemon whose image store is empty (creating an instance can only fail)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = uuid.uuid4().hex[:8]
    root = f"/tmp/lxmf-{tag}"
    os.makedirs(root, mode=0o711)
    daemon = Daemon(root, f"lxmgr-test-{tag}")
    set_hypothesis_home_dir(f"{root}/hypothesis")  # its caches go with the dir, not into cwd
    try:
        daemon.start()
        yield daemon
    finally:
        try:
            daemon.cleanup()
        finally:
            set_hypothesis_home_dir(None)
            _remove_cgroup_base(f"lxmgr-test-{tag}")
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def session(empty_daemon: Daemon) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.mount(BASE_URL, UnixAdapter(empty_daemon.socket))
        yield s


def operations(spec: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(spec)
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if (op.method.upper(), op.path) not in EXCLUDED]


def fuzz(operation: Any, session: requests.Session, daemon: Daemon, calls: list[int]) \
        -> list[str]:
    """Run one operation's examples (statuses into calls); the failures as curl commands
    with what went wrong."""
    failures: list[str] = []

    @settings(max_examples=EXAMPLES, database=None, deadline=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), existing=st.booleans())
    def run(case: Any, existing: bool) -> None:
        if existing and operation.path in EXISTING:
            case.path_parameters["name"] = "default"
        try:
            response = case.call(base_url=BASE_URL, session=session, timeout=60)
        except requests.RequestException as err:
            failures.append(f"{case.as_curl_command(base_url=BASE_URL)}: {err!r}")
            return
        calls.append(response.status_code)
        if response.status_code >= 500 and response.status_code != NOT_SUPPORTED:
            failures.append(f"{case.as_curl_command(base_url=BASE_URL)}: "
                            f"{response.status_code} {response.text[:200]}")
        assert daemon.proc is not None and daemon.proc.poll() is None, "lxmgrd died"

    run()
    return failures


def test_no_server_errors(empty_daemon: Daemon, session: requests.Session) -> None:
    spec = session.get(f"{BASE_URL}/1.0/openapi.json", timeout=60).json()
    failures: list[str] = []
    calls: list[int] = []
    for operation in operations(spec):
        failures += fuzz(operation, session, empty_daemon, calls)
    print(f"{len(calls)} requests: " + ", ".join(
        f"{status}: {calls.count(status)}" for status in sorted(set(calls))))
    assert empty_daemon.api("GET", "/1.0/instances")["metadata"] == []
    assert failures == [], "\n".join(failures)
