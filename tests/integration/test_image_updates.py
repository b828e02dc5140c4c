"""Pulled images over time (lxmgr.instances.image_ops against a local simplestreams server):
a launch's pull is cached, a newer build on the server replaces it at the next hourly
check (aliases move along), an unused cached image expires; server config keys gate both."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lxmgr.instances import image_ops
from tests.private_state import private_manager
from tests.simplestreams_server import SimpleStreamsServer, build_tree

pytestmark = pytest.mark.kernel  # a real Manager (root)


def small_rootfs(path: Path, marker: str) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "os-release").write_text(f"ID=debian\nMARK={marker}\n")
    return path


async def test_auto_update_and_cache_expiry(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tree = tmp_path / "tree"
    build_tree(tree, small_rootfs(tmp_path / "v1", "one"), serial="20261101_00:00",
               formats=("root.tar.xz",))
    with private_manager(monkeypatch, "lxmu") as manager:
        async with SimpleStreamsServer(tree) as server:
            first = await image_ops.pull_image(manager, server.url, "debian/12", cached=True,
                                               aliases=("stable",))
            assert await image_ops.image_duties(manager) == []  # checked just now
            build_tree(tree, small_rootfs(tmp_path / "v2", "two"), serial="20261102_00:00",
                       formats=("root.tar.xz",))
            manager.db.set_server_config({"images.auto_update_interval": "0"})
            later = time.time() + 7 * 3600
            assert await image_ops.image_duties(manager, now=later) == []  # disabled
            manager.db.set_server_config({})  # default: every 6 hours
            done = await image_ops.image_duties(manager, now=later)
            assert done == [f"refreshed {first.fingerprint[:12]} -> "
                            f"{manager.images.get('stable').fingerprint[:12]}"]
            newer = manager.images.get("stable")
            assert (newer.rootfs / "etc" / "os-release").read_text().endswith("MARK=two\n")
            assert first.fingerprint not in [i.fingerprint for i in manager.images.list()]
            month = time.time() + 31 * 86400  # unused since: the cache expiry (10 days)
            gone = await image_ops.image_duties(manager, now=month)
            assert gone == [f"expired cached image {newer.fingerprint[:12]}"]
            assert newer.fingerprint not in [i.fingerprint for i in manager.images.list()]
