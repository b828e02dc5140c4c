"""Manager, part five: an instance's (or snapshot's) root filesystem as a plain tree, for
publishing it as an image and for backups.

A mixin of Manager. The tree is unshifted (container ids, as images and LXD backups hold
them): overlay volumes are merged with their image without mounting anything
(lxmgr.storage.merge), dir/btrfs volumes are copied (and unshifted when they are shifted
on disk). Running instances are frozen while their state is read.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from lxmgr.errors import Conflict, InvalidConfig, InvalidState
from lxmgr.images.fingerprint import fingerprint_tree
from lxmgr.images.lxdformat import COMPRESSION_KEY
from lxmgr.images.store import ImageInfo, info_from_metadata, read_metadata, write_metadata
from lxmgr.instances import staging as stagingmod
from lxmgr.instances.checkpoints import checkpoint
from lxmgr.instances.locks import serialized
from lxmgr.model import snapshot as snapmod
from lxmgr.model.instance import InstanceSpec
from lxmgr.storage.copies import copy_dir

log = logging.getLogger(__name__)
COMPRESSIONS = ("gzip", "xz", "none")  # what lxmgr.images.archive_write writes


class PublishMixin:
    """materialize_rootfs() and publish() (mixed into Manager)."""

    def materialize_rootfs(self, spec: InstanceSpec, snapshot: str | None, dest: Path) -> None:
        """dest (which must not exist) becomes the unshifted root filesystem of spec (or of
        its snapshot)."""
        from lxmgr.storage.merge import merge_overlay, unshift_tree

        current = self.store.get(spec.name)  # a snapshot's volume is owned as the instance's
        driver = self.pools.driver_for(current)
        idmap = self._idmap(current)
        image = self._image(spec)
        with self._quiesced(spec.name, snapshot is None):
            state = driver.state_path(spec.name, snapshot)
            if driver.shares_image:  # overlay: the state is the upper layer over the image
                merge_overlay(image.rootfs, state, dest, unshift=idmap)
                return
            copy_dir(state, dest)
        if idmap is not None and not driver.idmapped:
            unshift_tree(dest, idmap)

    @serialized("source")
    def publish(self, source: str, *, aliases: tuple[str, ...] = (),
                properties: dict[str, str] | None = None,
                compression: str | None = None) -> ImageInfo:
        """A new image from instance NAME (stopped) or snapshot NAME/SNAP: its merged root
        filesystem, the source image's templates and properties (plus `properties`).

        compression (LXD's compression_algorithm; None: gzip) is how the image is exported:
        the store keeps a tree, so it is recorded in the image's metadata. Publishing a tree
        that is already an image records the new choice on that image."""
        if compression is not None:
            check_compression(compression)
        name, snapshot = snapmod.split_ref(source)
        spec = self.get_snapshot(name, snapshot).instance if snapshot else self.store.get(name)
        if snapshot is None and self.is_running(name):
            raise InvalidState(f"Instance '{name}' is running: stop it or publish a snapshot")
        taken = {a: i.fingerprint for i in self.images.list() for a in i.aliases}
        for alias in aliases:
            if alias in taken:
                raise Conflict(f"Alias '{alias}' already points to image "
                               f"'{taken[alias][:12]}'")
        base = self._image(spec)
        known = self.images.fingerprints()
        staging = stagingmod.make(".publish-", self.images.root)
        try:
            self.materialize_rootfs(spec, snapshot, staging / "rootfs")
            checkpoint("publish.rootfs")
            if (base.path / "templates").is_dir():
                copy_dir(base.path / "templates", staging / "templates")
            digest = fingerprint_tree(staging / "rootfs")
            write_metadata(staging, _metadata(read_metadata(base.path), source, digest.size,
                                              properties or {}, compression))
            final = self.images.root / digest.fingerprint
            checkpoint("publish.fingerprint")
            if not final.exists():
                os.chmod(staging, 0o700)
                os.rename(staging, final)
            else:  # the same tree is an image already (maybe another project's)
                self.images.store.join(digest.fingerprint)
                if compression is not None:
                    write_metadata(final, {**read_metadata(final),
                                           COMPRESSION_KEY: compression})
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        for alias in aliases:
            self.images.store.add_alias(digest.fingerprint, alias)
        log.info("Published %s as image %s", source, digest.fingerprint[:12])
        self.images.announce_new(digest.fingerprint, known)
        image = self.images.get(digest.fingerprint)
        return info_from_metadata(image.fingerprint, image.path, read_metadata(image.path))


def check_compression(compression: str) -> None:
    """InvalidConfig unless the archive writer (lxmgr.images.archive_write) can produce it.
    LXD also takes bzip2, lzma, zstd or any compressor on its PATH: those are refused."""
    if compression not in COMPRESSIONS:
        raise InvalidConfig(f"Unsupported compression algorithm '{compression}': use "
                            f"{', '.join(COMPRESSIONS[:-1])} or {COMPRESSIONS[-1]}")


def _metadata(base: dict[str, Any], source: str, size: int, properties: dict[str, str],
              compression: str | None) -> dict[str, Any]:
    """The new image's metadata.yaml: the base image's, minus where it came from."""
    data = {k: v for k, v in base.items() if k not in (
        "aliases", "source", "cached", "auto_update", "last_update_check", "last_used_at",
        "recipe", "recipe_sha256", COMPRESSION_KEY)}
    if compression is not None:
        data[COMPRESSION_KEY] = compression
    props = dict(base.get("properties") or {})
    props["description"] = properties.pop("description", None) or f"Published from {source}"
    props.update(properties)
    data.update(created_at=int(time.time()), size=size, aliases=[], properties=props,
                published_from=source)
    return data
