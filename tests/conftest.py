"""Test tiers (see README): unit by default; kernel and system tests need root, else skip."""

from __future__ import annotations

import os
import tempfile

import pytest

# Daemons and managers in tests keep their instance names in a hosts file of their own, never
# in the machine's /etc/hosts (lxmgr.net.hosts); every process the tests start inherits this.
_HOSTS_DIR = tempfile.TemporaryDirectory(prefix="lxmgr-test-hosts-")
os.environ.setdefault("LXMGR_HOSTS_FILE", os.path.join(_HOSTS_DIR.name, "hosts"))
# Nor do they start an lxcfs or use the machine's (lxmgr.instances.lxcfs): containers see the
# kernel's /proc files unless a test points LXMGR_LXCFS at the session's private lxcfs
# (tests/kernel/test_lxcfs.py).
os.environ.setdefault("LXMGR_LXCFS", "none")


@pytest.fixture(autouse=True)
def _cached_images_unchanged():  # type: ignore[no-untyped-def]
    """What a test wrote into the shared image cache through a private store's symlink goes
    (tests.private_state.restore_cached_images)."""
    yield
    from tests.private_state import restore_cached_images

    restore_cached_images()


def pytest_unconfigure(config: pytest.Config) -> None:
    _HOSTS_DIR.cleanup()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.iter_markers(name=m) for m in ("kernel", "system")):
            item.add_marker(pytest.mark.unit)
        elif os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root"))
