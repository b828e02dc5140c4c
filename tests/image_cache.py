"""The real debian image for kernel/system tests, built once into a persistent cache.

`cached_debian_image()` builds images/debian.yaml into /var/cache/lxmgr-test/images (the
store LXMGR_DIR=/var/cache/lxmgr-test would use) and returns its ImageInfo. The build is
skipped when an image from a byte-identical recipe is already there (a no-op), rebuilt when
the recipe changed. A file lock serializes concurrent test sessions. Tests must treat the
image as read-only (overlay lower): write only through their own volumes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from lxmgr.images import debootstrap
from lxmgr.images.store import ImageInfo, ImageStore

CACHE_DIR = Path(os.environ.get("LXMGR_TEST_CACHE", "/var/cache/lxmgr-test"))


def cache_store() -> ImageStore:
    return ImageStore(CACHE_DIR / "images")


def cached_debian_image() -> ImageInfo:
    """Build (first time, ~40 s) or return the cached debian image."""
    return cached_image("debian")


def cached_image(recipe: str) -> ImageInfo:
    """Build (first time) or return the cached image of a built-in recipe (debian-dev:
    ~70 s)."""
    CACHE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return debootstrap.build(recipe, store=cache_store())
