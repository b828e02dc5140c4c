"""Fixtures for kernel-tier tests that boot real containers from the cached debian image.

Every test gets its own LXMGR_DIR (short, under /tmp: unix socket paths are limited) whose
image store points at the persistent cache, and its own cgroup base; everything it created
is removed afterwards, even when the test fails.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.image_cache import cached_debian_image
from tests.private_state import private_manager


@pytest.fixture(scope="session")
def debian_image():  # type: ignore[no-untyped-def]
    """The real debootstrap image (built once, ~40 s, then cached)."""
    return cached_debian_image()


@pytest.fixture
def manager(debian_image, monkeypatch) -> Iterator:  # type: ignore[no-untyped-def]
    """A Manager on a private state dir and cgroup base; cleans up every instance."""
    with private_manager(monkeypatch, "lxmt") as mgr:
        yield mgr


def exec_out(mgr, name: str, argv: list[str], stdin: bytes = b"") -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """Run argv in the container; (exit status, stdout, stderr)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp:
        inp.write(stdin)
        inp.seek(0)
        code = mgr.exec(name, argv, stdin=inp.fileno(), stdout=out.fileno(),
                        stderr=err.fileno())
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(), err.read().decode()


def wait_running(mgr, name: str, timeout: float = 30.0) -> str:  # type: ignore[no-untyped-def]
    """Wait for systemd inside to finish booting; returns is-system-running's answer."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        try:
            _, state, _ = exec_out(mgr, name, ["systemctl", "is-system-running"])
        except Exception:  # noqa: BLE001 - the supervisor may be rebooting the container
            state = "unreachable"
        state = state.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.05)
    return state


@pytest.fixture
def container(manager) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A running container (unprivileged, shared idmap) booted to systemd `running`."""
    name = f"c{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian")
    manager.start(name)
    assert wait_running(manager, name) == "running"
    return name
