"""A Manager on a private state dir (short, under /tmp: unix socket paths are limited) whose
image store holds the cached debian image (a symlink into the persistent test cache; images
a test imports, pulls or publishes land in the private store and go with it), with its own
cgroup base; on exit every instance it knows is deleted and the dir and cgroup base
removed, even after a failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image_cache import cached_debian_image, cached_image


@contextlib.contextmanager
def private_manager(monkeypatch: pytest.MonkeyPatch, prefix: str) -> Iterator:  # type: ignore[type-arg]
    from lxmgr.instances.manager import Manager

    tag = uuid.uuid4().hex[:8]
    root = f"/tmp/{prefix}-{tag}"
    link_cached_image(root)
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
        shutil.rmtree(root, ignore_errors=True)  # the symlink goes, not the cached image


# The metadata of each cached image a test linked, as it was before: a private store writes
# through the symlink (aliases, the projects an image belongs to), and the next test must
# find the cache as it was (tests/conftest.py restores it after every test).
_LINKED: dict[Path, bytes] = {}


def link_cached_image(root: str, recipe: str = "debian") -> None:
    """root/images/<fp> -> the cached image of recipe (debian unless said): a private store
    that starts with it."""
    image = cached_debian_image() if recipe == "debian" else cached_image(recipe)
    os.makedirs(f"{root}/images", mode=0o711, exist_ok=True)
    metadata = Path(image.path) / "metadata.yaml"
    _LINKED.setdefault(metadata, metadata.read_bytes())
    os.symlink(image.path, f"{root}/images/{image.fingerprint}")


def restore_cached_images() -> None:
    """Put the metadata of the cached images tests linked back as it was."""
    for metadata, original in _LINKED.items():
        with contextlib.suppress(OSError):
            if metadata.read_bytes() != original:
                metadata.write_bytes(original)
