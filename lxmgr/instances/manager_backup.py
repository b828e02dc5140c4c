"""Manager, part six: instance backups in LXD's format (`lxmgr export` / `lxmgr import`).

A mixin of Manager over lxmgr.instances.backup (the tarball format). Export materializes
the instance's and each snapshot's unshifted rootfs (PublishMixin) into a staging
directory and writes the tarball. Import reads an untrusted tarball (backup.read_backup
refuses hostile ones), then builds the instance on the chosen pool: its volume is made
from the `empty` base image (an image with an empty rootfs, shared by every imported
instance) and its state replaced by the backup's trees, oldest snapshot first, each one
kept as a snapshot, then the instance's own tree. On the overlay driver the full tree thus
lives in the upper layer over an empty lower: no sharing, but exact. Anything half-made
is removed when a step fails.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

from lxmgr import paths
from lxmgr.errors import Conflict, NotFound
from lxmgr.images.store import ImageInfo, read_metadata, write_metadata
from lxmgr.instances import intents
from lxmgr.instances import staging as stagingmod
from lxmgr.instances.checkpoints import byte_progress, checkpoint
from lxmgr.instances.locks import serialized
from lxmgr.model import config as cfgmod
from lxmgr.model.devices import root_disk
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.project import DEFAULT, profile_key, storage_name
from lxmgr.storage import base as storage_base
from lxmgr.storage.shift import copy_tree, shift_tree

log = logging.getLogger(__name__)
EMPTY_IMAGE_ALIAS = "lxmgr/empty"


class BackupMixin:
    """export_backup() and import_backup() (mixed into Manager)."""

    @serialized("name")
    def export_backup(self, name: str, out: Path, *, instance_only: bool = False,
                      compression: str = "gzip") -> str:
        """Write name's backup tarball (with its snapshots unless instance_only) to out;
        returns its sha256."""
        from lxmgr.instances.backup import write_backup

        spec = self.store.get(name)
        snapshots = [] if instance_only else self.db.snapshots(name)
        image = self._image(spec)
        staging = stagingmod.make(".export-", self._backups_dir())
        try:
            trees = {}
            for snap in [None, *(s.name for s in snapshots)]:
                trees[snap] = staging / (f"snap-{snap}" if snap else "instance")
                self.materialize_rootfs(spec, snap, trees[snap])
                checkpoint("export.tree")
            templates = image.path / "templates"
            return write_backup(
                out, spec=spec, snapshots=snapshots, rootfs_of=lambda s: trees[s],
                image_metadata=read_metadata(image.path), compression=compression,
                expand=self.expanded, templates_dir=templates if templates.is_dir() else None,
                pool=spec.storage_pool or "default", status=self.status(name),
                progress=byte_progress("create_backup_progress"))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @serialized("name")
    def import_backup(self, archive: Path, *, name: str | None = None,
                      storage: str | None = None, project: str = DEFAULT) -> InstanceSpec:
        """Create an instance (stopped) with its snapshots from a backup tarball, in
        `project` (name: the instance's name there, default the backup's)."""
        from lxmgr.instances.backup import read_backup

        if name is not None and self.store.exists(storage_name(project, name)):
            # refused before the archive is unpacked (the backup's own name: after)
            raise Conflict(f"Instance '{storage_name(project, name)}' already exists")
        staging = stagingmod.make(".import-", self._backups_dir())
        try:
            contents = read_backup(archive, staging / "backup")
            return self._import_contents(contents, name, storage, project)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _import_contents(self, contents: object, name: str | None,
                         storage: str | None, project: str = DEFAULT) -> InstanceSpec:
        from lxmgr.instances.backup import BackupContents

        assert isinstance(contents, BackupContents)
        target = storage_name(project, name or contents.name)
        if self.store.exists(target):
            raise Conflict(f"Instance '{target}' already exists")
        image = self.empty_image()
        spec = contents.instance_spec(name=target)
        if storage is None:  # the source's pool when this host has one by that name
            root = root_disk(spec.devices)
            pool = root[1].get("pool") if root else None
            if pool and pool not in {p["name"] for p in self.pools.list()}:
                spec.devices["root"] = {"type": "disk", "path": "/", "pool": "default"}
        spec.config = cfgmod.validate_config(spec.config)
        owner = self.project_owner(project, "features.profiles")
        new = self._new_spec(target, profiles=[profile_key(owner, p) for p in spec.profiles],
                             config=spec.config,
                             devices=spec.devices, ephemeral=spec.ephemeral, storage=storage,
                             description=spec.description)
        new.image_fingerprint, new.created_at = image.fingerprint, spec.created_at
        idmap = self._allocate_idmap(self.expanded(new)[0])
        new.config["volatile.uuid"] = str(uuidlib.uuid4())
        if contents.base_image:
            new.config["volatile.base_image"] = contents.base_image
        new.config.update(self.networks.new_volatile(self.expanded(new)[1], new.config))
        if idmap is not None:
            new.config["volatile.idmap.base"] = str(idmap.uid_base)
            new.config["volatile.idmap.gid_base"] = str(idmap.gid_base)
            new.config["volatile.idmap.size"] = str(idmap.size)
        driver = self.pools.driver_for(new)
        with intents.intent("create", name=target), contextlib.ExitStack() as revert:
            self.store.add(new)
            revert.callback(self.store.remove, target)
            driver.create_volume(target, image, idmap)
            revert.callback(driver.delete_volume, target)
            checkpoint("import.volume")
            volatile = {k: v for k, v in new.config.items() if k.startswith("volatile.")}
            for snap, record in zip(contents.snapshots, contents.snapshot_specs(new),
                                    strict=True):
                checkpoint("import.snapshot")
                record.instance.config.update(volatile)  # the volume's idmap, uuid, MACs
                self._replace_state(driver, new, snap.rootfs)
                driver.snapshot_volume(target, snap.name)
                self.db.snapshot_add(target, record)
            self._replace_state(driver, new, contents.rootfs)
            revert.pop_all()
        log.info("Imported instance %s (%d snapshots)", target, len(contents.snapshots))
        self.announce_created(new)  # type: ignore[attr-defined]
        return new

    def _replace_state(self, driver: storage_base.StorageDriver, spec: InstanceSpec,
                       tree: Path) -> None:
        """The volume's state becomes tree (unshifted), shifted when it is kept shifted on
        disk (overlay's upper; dir/btrfs without idmapped mounts). The tree is extracted
        staging used once: its entries are moved when it is on the same filesystem (a
        rename each), copied otherwise."""
        state = driver.state_path(spec.name)
        for entry in os.listdir(state):
            path = state / entry
            if path.is_dir() and not path.is_symlink():
                storage_base.remove_tree(path)
            else:
                path.unlink()
        st = os.lstat(tree)
        os.chmod(state, st.st_mode & 0o7777)
        os.chown(state, st.st_uid, st.st_gid)
        try:
            for entry in os.listdir(tree):
                os.rename(tree / entry, state / entry)
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            copy_tree(tree, state)  # what is left of it, on another filesystem
        idmap = self._idmap(spec)
        if idmap is not None and (driver.shares_image or not driver.idmapped):
            shift_tree(state, idmap)

    def empty_image(self) -> ImageInfo:
        """The image every imported instance is made from: an empty rootfs (made once)."""
        try:
            return self.images.get(EMPTY_IMAGE_ALIAS)
        except NotFound:
            pass
        from lxmgr.images.fingerprint import fingerprint_tree

        staging = Path(tempfile.mkdtemp(prefix=".empty-", dir=self.images.root))
        try:
            (staging / "rootfs").mkdir(mode=0o755)
            digest = fingerprint_tree(staging / "rootfs")
            machine = platform.machine()
            write_metadata(staging, {
                "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine),
                "os": "none", "release": "", "created_at": int(time.time()), "aliases": [],
                "size": 0, "properties": {"description": "Empty base of imported instances"}})
            final = self.images.root / digest.fingerprint
            if not final.exists():
                os.chmod(staging, 0o700)
                os.rename(staging, final)
            else:  # another project made it
                self.images.store.join(digest.fingerprint)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.images.store.add_alias(digest.fingerprint, EMPTY_IMAGE_ALIAS, take_over=True)
        return self.images.get(digest.fingerprint)

    def _backups_dir(self) -> Path:
        directory = paths.root() / "backups"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory
