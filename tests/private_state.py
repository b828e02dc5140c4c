"""A Manager on a private state dir (short, under /tmp: unix socket paths are limited) whose
image store points at the persistent test image cache, with its own cgroup base; on exit
every instance it knows is deleted and the dir and cgroup base removed, even after a failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from tests.image_cache import CACHE_DIR


@contextlib.contextmanager
def private_manager(monkeypatch: pytest.MonkeyPatch, prefix: str) -> Iterator:  # type: ignore[type-arg]
    from lxmgr.instances.manager import Manager

    tag = uuid.uuid4().hex[:8]
    root = f"/tmp/{prefix}-{tag}"
    os.makedirs(root)
    os.symlink(CACHE_DIR / "images", f"{root}/images")
    monkeypatch.setenv("LXMGR_DIR", root)
    manager = Manager(cgroup_base_name=f"lxmgr-test-{tag}")
    try:
        yield manager
    finally:
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
