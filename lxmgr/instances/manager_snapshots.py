"""Manager, part four: snapshots, restore, copy and rename of instances (LXD's semantics).

A mixin of Manager; it relies on the Manager's stores, drivers and lifecycle methods.
A snapshot records the instance's definition (SnapshotSpec) in the database and asks the
storage driver to keep the volume's state; a running instance is frozen while its state
is copied, so the snapshot is consistent. Every multi-step change undoes what it did when a
later step fails (C7).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid as uuidlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, InvalidState, LxmgrError, NotSupported
from lxmgr.instances import files, image_ops, intents
from lxmgr.instances.checkpoints import checkpoint
from lxmgr.instances.locks import serialized
from lxmgr.model import snapshot as snapmod
from lxmgr.model.instance import InstanceSpec, validate_stored_name
from lxmgr.model.project import display
from lxmgr.model.snapshot import SnapshotSpec
from lxmgr.model.units import parse_bool
from lxmgr.runtime import idmap as idmaps
from lxmgr.storage import base as storage_base

log = logging.getLogger(__name__)

_IDMAP_KEYS = ("volatile.idmap.base", "volatile.idmap.gid_base", "volatile.idmap.size")


class SnapshotMixin:
    """Snapshots, restore, copy and rename (mixed into Manager)."""

    # -- snapshots ---------------------------------------------------------------------------

    def snapshots(self, name: str) -> list[SnapshotSpec]:
        self.store.get(name)
        return self.db.snapshots(name)

    def get_snapshot(self, name: str, snapshot: str) -> SnapshotSpec:
        self.store.get(name)
        snapmod.validate_snapshot_name(snapshot)
        return self.db.snapshot_get(name, snapshot)

    @serialized("name")
    def snapshot(self, name: str, snapshot: str | None = None, *,
                 expires_at: datetime | None = None, no_expiry: bool = False,
                 now: datetime | None = None) -> SnapshotSpec:
        """Take a snapshot (named by snapshots.pattern when snapshot is None); its expiry is
        expires_at, else snapshots.expiry (unless no_expiry)."""
        spec = self.store.get(name)
        expanded, _ = self.expanded(spec)
        now = now or datetime.now(UTC)
        existing = {s.name for s in self.db.snapshots(name)}
        if snapshot is None:
            snapshot = snapmod.next_name(expanded.get("snapshots.pattern", ""), existing, now)
        snapmod.validate_snapshot_name(snapshot)
        if snapshot in existing:
            raise Conflict(f"Snapshot '{name}/{snapshot}' already exists")
        if expires_at is None and not no_expiry:
            ttl = snapmod.parse_expiry(expanded.get("snapshots.expiry", ""))
            expires_at = now + ttl if ttl else None
        driver = self._driver_for_snapshots(spec)
        record = SnapshotSpec(snapshot, InstanceSpec.from_dict(spec.to_dict()), now, expires_at)
        with intents.intent("snapshot", name=name, snapshot=snapshot):
            with self._quiesced(name):
                driver.snapshot_volume(name, snapshot)
            try:
                checkpoint("snapshot.volume")
                self.db.snapshot_add(name, record)
            except BaseException:
                driver.delete_snapshot(name, snapshot)
                raise
        log.info("Snapshot %s/%s taken", name, snapshot)
        self.announce("instance-snapshot-created", name, snapshot=snapshot)
        return record

    @serialized("name")
    def delete_snapshot(self, name: str, snapshot: str) -> None:
        spec = self.store.get(name)
        self.get_snapshot(name, snapshot)
        with intents.intent("snapshot", name=name, snapshot=snapshot, delete=True):
            self._driver_for_snapshots(spec).delete_snapshot(name, snapshot)
            checkpoint("snapshot.deleted")
            self.db.snapshot_remove(name, snapshot)
        log.info("Snapshot %s/%s deleted", name, snapshot)
        self.announce("instance-snapshot-deleted", name, snapshot=snapshot)

    @serialized("name")
    def rename_snapshot(self, name: str, snapshot: str, new_name: str) -> SnapshotSpec:
        spec = self.store.get(name)
        record = self.get_snapshot(name, snapshot)
        snapmod.validate_snapshot_name(new_name)
        driver = self._driver_for_snapshots(spec)
        if driver.snapshot_exists(name, new_name) or new_name in {
                s.name for s in self.db.snapshots(name)}:
            raise Conflict(f"Snapshot '{name}/{new_name}' already exists")
        os.rename(driver.snapshot_dir(name, snapshot), driver.snapshot_dir(name, new_name))
        record.name = new_name
        try:
            self.db.snapshot_save(name, record, old_name=snapshot)
        except BaseException:
            os.rename(driver.snapshot_dir(name, new_name), driver.snapshot_dir(name, snapshot))
            raise
        self.announce("instance-snapshot-renamed", name, snapshot=new_name, old_name=snapshot)
        return record

    @serialized("name")
    def update_snapshot(self, name: str, snapshot: str, expires_at: datetime | None
                        ) -> SnapshotSpec:
        record = self.get_snapshot(name, snapshot)
        record.expires_at = expires_at
        self.db.snapshot_save(name, record)
        self.announce("instance-snapshot-updated", name, snapshot=snapshot)
        return record

    @serialized("name")
    def restore(self, name: str, snapshot: str) -> None:
        """Bring the volume and the definition (config, devices, profiles) back to the
        snapshot's; a running instance is stopped first and started again after, as LXD
        does. volatile.* keys stay the instance's own."""
        spec = self.store.get(name)
        record = self.get_snapshot(name, snapshot)
        driver = self._driver_for_snapshots(spec)
        was_running = self.is_running(name)
        if was_running:
            with self.quietly():  # LXD's Restore stops and starts under its "restore" op
                self.stop(name, keep_ephemeral=True)
        with intents.intent("restore", name=name, snapshot=snapshot):
            self._restore_stopped(spec, record, driver)
        log.info("Instance %s restored from snapshot %s", name, snapshot)
        if was_running:
            with self.quietly():
                self.start(name)
        # LXD's context: the snapshot's full name (driver_lxc.go Restore)
        self.announce("instance-restored", name,
                      context={"snapshot": f"{display(name)}/{snapshot}"})

    def _restore_stopped(self, spec: InstanceSpec, record: SnapshotSpec,
                         driver: storage_base.StorageDriver) -> None:
        name, snapshot = spec.name, record.name
        checkpoint("restore.begin")
        driver.restore_volume(name, snapshot)
        checkpoint("restore.volume")
        old = record.instance
        volatile = {k: v for k, v in spec.config.items() if k.startswith("volatile.")}
        spec.config = {**{k: v for k, v in old.config.items()
                          if not k.startswith("volatile.")}, **volatile}
        spec.devices, spec.profiles = dict(old.devices), list(old.profiles)
        spec.description, spec.ephemeral = old.description, old.ephemeral
        self.store.save(spec)

    # -- copy / rename -----------------------------------------------------------------------

    @serialized("source", "target")
    def copy(self, source: str, target: str, *, instance_only: bool = False,
             config: dict[str, Any] | None = None, profiles: list[str] | None = None,
             ephemeral: bool | None = None, description: str | None = None) -> InstanceSpec:
        """A new stopped instance from source ('NAME' or 'NAME/SNAPSHOT'): same image,
        state and definition, a new uuid and MACs; the snapshots come along unless
        instance_only (or the source is a snapshot)."""
        name, snapshot = snapmod.split_ref(source)
        src, spec = self._copy_spec(source, target, config=config, profiles=profiles,
                                    ephemeral=ephemeral, description=description)
        driver = self._driver_for_snapshots(src)
        spec.config["volatile.uuid"] = str(uuidlib.uuid4())
        spec.config.update(self.networks.new_volatile(self.expanded(spec)[1], spec.config))
        snapshots = [] if instance_only or snapshot else self.db.snapshots(name)
        with intents.intent("create", name=target), contextlib.ExitStack() as revert:
            self.store.add(spec)
            revert.callback(self.store.remove, target)
            with self._quiesced(name, snapshot is None):
                driver.copy_volume(name, target, snapshot=snapshot)
            revert.callback(driver.delete_volume, target)
            checkpoint("copy.volume")
            for snap in snapshots:
                checkpoint("copy.snapshot")
                driver.copy_snapshot(name, snap.name, target)
                copied = SnapshotSpec(snap.name, InstanceSpec.from_dict(spec.to_dict()),
                                      snap.created_at, snap.expires_at)
                self.db.snapshot_add(target, copied)
            self._write_name_files(spec)
            image_ops.apply_image_templates(self, spec, "copy")
            checkpoint("copy.files")
            revert.pop_all()
        log.info("Copied %s to %s", source, target)
        self.announce_created(spec)
        return spec

    def check_copy(self, source: str, target: str, *, config: dict[str, Any] | None = None,
                   profiles: list[str] | None = None, ephemeral: bool | None = None,
                   description: str | None = None) -> None:
        """Validate a copy before it becomes an operation (copy() checks it again)."""
        self._copy_spec(source, target, config=config, profiles=profiles,
                        ephemeral=ephemeral, description=description)

    def _copy_spec(self, source: str, target: str, *, config: dict[str, Any] | None,
                   profiles: list[str] | None, ephemeral: bool | None,
                   description: str | None) -> tuple[InstanceSpec, InstanceSpec]:
        """(the source's spec, the copy's validated new spec)."""
        name, snapshot = snapmod.split_ref(source)
        src = self.get_snapshot(name, snapshot).instance if snapshot else self.store.get(name)
        if parse_bool(src.config.get("security.idmap.isolated") or "false"):
            raise NotSupported(f"Copying '{name}' is not supported yet: it has an isolated "
                               "idmap (its files would need shifting to a new range)")
        own = {k: v for k, v in src.config.items() if not k.startswith("volatile.")}
        spec = self._new_spec(
            target, profiles=profiles if profiles is not None else list(src.profiles),
            config={**own, **(config or {})}, devices=src.devices,
            ephemeral=src.ephemeral if ephemeral is None else ephemeral,
            storage=src.storage_pool or src.storage_driver,
            description=src.description if description is None else description)
        spec.image_fingerprint = src.image_fingerprint
        spec.config.update({k: src.config[k] for k in _IDMAP_KEYS if k in src.config})
        # The copy's files are the source's: a config asking another map is refused.
        idmaps.check_change(target, self._idmap(spec), self.expanded(src)[0],
                            self.expanded(spec)[0])
        self._check_raw_change(spec, self.expanded(src)[0], self.expanded(spec)[0], copy=True)
        return src, spec

    @serialized("name", "new_name")
    def rename(self, name: str, new_name: str) -> InstanceSpec:
        """Rename a stopped instance with its snapshots (LXD's `move` on one host)."""
        spec = self.store.get(name)
        validate_stored_name(new_name)
        if self.store.exists(new_name):
            raise Conflict(f"Instance '{new_name}' already exists")
        if self.is_running(name):
            raise InvalidState(f"Instance '{name}' is running: stop it before renaming")
        driver = self._driver_for_snapshots(spec)
        old_dir, new_dir = paths.instance_dir(name), paths.instance_dir(new_name)
        if new_dir.exists():
            raise Conflict(f"Instance '{new_name}' already exists (stale directory "
                           f"'{new_dir}')")
        self.networks.release(self._nic_specs_or_none(spec))
        with intents.intent("rename", name=name, new_name=new_name), \
                contextlib.ExitStack() as revert:
            driver.rename_volume(name, new_name)
            revert.callback(driver.rename_volume, new_name, name)
            checkpoint("rename.volume")
            if old_dir.exists():
                os.rename(old_dir, new_dir)
                revert.callback(os.rename, new_dir, old_dir)
            checkpoint("rename.dir")
            spec.name = new_name
            self.db.instance_rename(spec, name)
            revert.pop_all()
        self.backups.on_instance_renamed(name, new_name)
        self._write_name_files(spec)
        image_ops.apply_image_templates(self, spec, "rename")
        log.info("Renamed instance %s to %s", name, new_name)
        self.announce("instance-renamed", new_name, old_name=display(name))
        return spec

    def _recover_snapshot(self, name: str, snapshot: str, delete: bool) -> None:
        """A snapshot taken or deleted half way: undo the taking (no record: remove its
        data), finish the delete."""
        driver = self._driver_for_snapshots(self.store.get(name))
        recorded = snapshot in {s.name for s in self.db.snapshots(name)}
        if delete and recorded:
            self.db.snapshot_remove(name, snapshot)
            recorded = False
        if not recorded and driver.snapshot_exists(name, snapshot):
            driver.delete_snapshot(name, snapshot)

    def _recover_rename(self, name: str, new_name: str) -> None:
        """A rename half done: the record decides (renamed: move volume and directory on;
        else back)."""
        if self.store.exists(new_name):
            old, new, spec = name, new_name, self.store.get(new_name)
        elif self.store.exists(name):
            old, new, spec = new_name, name, self.store.get(name)
        else:
            return
        driver = self._driver_for_snapshots(spec)
        if driver.volume_exists(old) and not driver.volume_exists(new):
            driver.rename_volume(old, new)
        old_dir, new_dir = paths.instance_dir(old), paths.instance_dir(new)
        if old_dir.exists() and not new_dir.exists():
            os.rename(old_dir, new_dir)

    # -- scheduled snapshots and expiry (the daemon's lifecycle loop calls these) ------------

    def expire_snapshots(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Delete every snapshot past its expires_at; (instance, snapshot) of each."""
        now = now or datetime.now(UTC)
        gone = []
        for name in self.list():
            for snap in self.db.snapshots(name):
                if snap.expires_at is not None and snap.expires_at <= now:
                    try:
                        self.delete_snapshot(name, snap.name)
                        gone.append((name, snap.name))
                    except LxmgrError as err:
                        log.warning("Could not expire snapshot %s/%s: %s", name, snap.name,
                                    err)
        return gone

    def scheduled_snapshots(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Take the snapshots whose snapshots.schedule matches this minute."""
        now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
        taken = []
        for name in self.list():
            try:
                expanded, _ = self.expanded(self.store.get(name))
                schedule = snapmod.parse_schedule(expanded.get("snapshots.schedule", ""))
                if schedule is None or not snapmod.schedule_due(schedule, now):
                    continue
                if not parse_bool(expanded.get("snapshots.schedule.stopped") or "false") and \
                        not self.is_running(name):
                    continue
                taken.append((name, self.snapshot(name, now=now).name))
            except LxmgrError as err:
                log.warning("Scheduled snapshot of %s failed: %s", name, err)
        return taken

    # -- helpers -----------------------------------------------------------------------------

    def _driver_for_snapshots(self, spec: InstanceSpec) -> storage_base.StorageDriver:
        driver = self.pools.driver_for(spec)
        if not driver.can_snapshot:
            raise NotSupported(f"Storage driver '{driver.name}' of '{spec.name}' cannot "
                               "snapshot or copy")
        return driver

    @contextlib.contextmanager
    def _quiesced(self, name: str, wanted: bool = True) -> Iterator[None]:
        """Freeze a running instance for the block (no-op when stopped or frozen)."""
        frozen = wanted and self.status(name) == "Running"
        try:
            if frozen:  # inside: a freeze that failed half-way is undone too
                with self.quietly():  # internal: no instance-paused/resumed
                    self.freeze(name)
            yield
        finally:
            if frozen:
                try:
                    with self.quietly():
                        self.unfreeze(name)
                except LxmgrError as err:
                    log.error("Could not unfreeze %s after copying its state: %s", name, err)

    def _write_name_files(self, spec: InstanceSpec) -> None:
        """/etc/hostname and /etc/hosts naming the instance (LXD's copy/rename templates)."""
        driver = self.pools.driver_for(spec)
        img = self._image(spec)
        try:
            rootfs = driver.rootfs_spec(spec.name, img.rootfs, self._idmap(spec))
            files.write_instance_files(rootfs, self._idmap(spec), display(spec.name))
        except (InvalidConfig, OSError) as err:
            log.warning("Could not name %s in /etc/hostname and /etc/hosts: %s", spec.name,
                        err)
