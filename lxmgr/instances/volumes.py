"""Custom storage volumes (LXD's /1.0/storage-pools/POOL/volumes/custom): their records, their
content in the pool, and who uses them, with the rules LXD 5.0 keeps (lxd/storage_volumes.go,
lxd/storage/backend_lxd.go):

- a volume is used by the instances whose own disk devices name it (`pool` + `source`) and
  by the profiles whose devices do; one in use can't be deleted ("The storage volume is
  still in use", a 400);
- one mounted by a running instance (its devices expanded with its profiles) can't be
  renamed or restored; a rename rewrites the `source` of its users' disk devices;
- snapshots are read-only copies named "volume/snapshot", taken without stopping anyone.

Synchronous; the daemon calls it from worker threads. Built with explicit dependencies (the
database, the pools, and how to ask whether an instance runs) by the Manager.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from lxmgr.api.operation import format_time
from lxmgr.errors import Conflict, InvalidConfig, NotSupported
from lxmgr.instances.db import Database
from lxmgr.instances.pools import Pools
from lxmgr.instances.volume_records import VolumeRecords
from lxmgr.model import config as cfgmod
from lxmgr.model import snapshot as snapmod
from lxmgr.model.project import (
    DEFAULT,
    instance_url,
    profile_parts,
    profile_url,
    storage_parts,
    url_suffix,
)
from lxmgr.model.units import parse_size
from lxmgr.model.volume import (
    split_volume_ref,
    validate_stored_volume_name,
    validate_volume_config,
    volume_key,
    volume_parts,
)
from lxmgr.storage import custom
from lxmgr.storage.custom import CustomVolumes

log = logging.getLogger(__name__)
Devices = Mapping[str, Mapping[str, str]]


Owner = Callable[[str], str]  # a project -> the project whose volumes it uses


def uses(devices: Devices, pool: str, key: str, owner: str = DEFAULT) -> list[str]:
    """The names of the disk devices mounting volume `key` of pool, for devices of an
    instance or profile whose project's volumes are `owner`'s (a device names the volume
    as its project knows it)."""
    return sorted(dev for dev, d in devices.items()
                  if d.get("type") == "disk" and d.get("pool") == pool and d.get("source")
                  and volume_key(owner, d["source"]) == key and d.get("path") != "/")


def volume_url(pool: str, key: str) -> str:
    """The URL of volume (or "volume/snapshot") `key` (`?project=` outside default)."""
    project, name = volume_parts(key)
    volume, _, snapshot = name.partition("/")
    url = f"/1.0/storage-pools/{pool}/volumes/custom/{volume}"
    return url + (f"/snapshots/{snapshot}" if snapshot else "") + url_suffix(project)


class Volumes:
    """The custom volumes of every pool."""

    def __init__(self, db: Database, pools: Pools, is_running: Callable[[str], bool],
                 owner: Owner = lambda project: DEFAULT) -> None:
        self.db = db
        self.pools = pools
        self.records = VolumeRecords(db)
        self.is_running = is_running
        self.owner = owner  # whose volumes a project's instances and profiles name

    def _instance_owner(self, stored: str) -> str:
        return self.owner(storage_parts(stored)[0])

    def _profile_owner(self, key: str) -> str:
        return self.owner(profile_parts(key)[0])

    def storage(self, pool: str) -> CustomVolumes:
        """The pool's custom volumes on disk (NotFound for an unknown pool)."""
        record = self.pools.get(pool)
        return custom.load(record["driver"], pool, self.pools.pool_dir(record))

    # -- reading ---------------------------------------------------------------------------------

    def list(self, pool: str) -> list[dict[str, Any]]:
        """The pool's volumes and snapshots ("vol/snap"), by name."""
        self.pools.get(pool)
        return self.records.list(pool)

    def list_all(self) -> list[dict[str, Any]]:
        return self.records.list()

    def get(self, pool: str, name: str) -> dict[str, Any]:
        validate_stored_volume_name(name)
        self.pools.get(pool)
        return self.records.get(pool, name)

    def snapshots(self, pool: str, name: str) -> list[dict[str, Any]]:
        """A volume's snapshot records, oldest first."""
        self.get(pool, name)
        rows = [r for r in self.records.list(pool) if r["name"].startswith(f"{name}/")]
        return sorted(rows, key=lambda r: (r["created_at"], r["name"]))

    def get_snapshot(self, pool: str, name: str, snapshot: str) -> dict[str, Any]:
        validate_stored_volume_name(name)
        snapmod.validate_snapshot_name(snapshot)
        self.pools.get(pool)
        return self.records.get(pool, f"{name}/{snapshot}")

    def host_path(self, pool: str, name: str) -> str:
        """Where volume name of pool is on the host (what a disk device mounts); NotFound
        naming the pool or the volume when either is missing."""
        self.get(pool, name)
        return str(self.storage(pool).existing(name))

    def used_by(self, pool: str, name: str) -> list[str]:
        """API URLs of the instances (own devices) and profiles whose disks use the volume."""
        instances = [instance_url(spec.name) for spec in self.db.instance_specs()
                     if uses(spec.devices, pool, name, self._instance_owner(spec.name))]
        profiles = [profile_url(p.name) for p in self.db.profiles().values()
                    if uses(p.devices, pool, name, self._profile_owner(p.name))]
        return sorted(instances) + sorted(profiles)

    def running_users(self, pool: str, name: str) -> list[str]:
        """Running instances mounting the volume, through their profiles too."""
        profiles = self.db.profiles()
        out = []
        for spec in self.db.instance_specs():
            _, devices = cfgmod.expand([profiles[p] for p in spec.profiles if p in profiles],
                                       spec.config, spec.devices)
            if uses(devices, pool, name, self._instance_owner(spec.name)) and \
                    self.is_running(spec.name):
                out.append(spec.name)
        return out

    # -- volumes ---------------------------------------------------------------------------------

    def create(self, pool: str, name: str, config: Mapping[str, object] | None = None,
               description: str = "") -> dict[str, Any]:
        """A new empty volume; nothing is left behind on failure."""
        validate_stored_volume_name(name)
        clean = validate_volume_config(config or {})
        storage = self.storage(pool)
        self._check_size(storage, clean)
        self._check_free(storage, name)
        with contextlib.ExitStack() as revert:
            self.records.add(pool, name, description, clean, _now())
            revert.callback(self.records.remove, pool, name)
            storage.create(name)
            revert.callback(storage.delete, name)
            self._apply_size(storage, name, clean)
            revert.pop_all()
        log.info("Created storage volume %s/%s", pool, name)
        return self.records.get(pool, name)

    def copy(self, pool: str, name: str, source_pool: str, source: str, *,
             config: Mapping[str, object] | None = None, description: str = "",
             volume_only: bool = False) -> dict[str, Any]:
        """A new volume holding a copy of source ("vol" or "vol/snap") of source_pool, with
        the source volume's snapshots unless volume_only (or the source is a snapshot);
        config and description default to the source's, as LXD's CreateCustomVolumeFromCopy."""
        validate_stored_volume_name(name)
        src_name, src_snap = split_volume_ref(source)
        src = self.get_snapshot(source_pool, src_name, src_snap) if src_snap else \
            self.get(source_pool, src_name)
        clean = validate_volume_config(src["config"] if config is None else config)
        src_storage, storage = self.storage(source_pool), self.storage(pool)
        self._check_size(storage, clean)
        snaps = [] if volume_only or src_snap else self.snapshots(source_pool, src_name)
        self._check_free(storage, name)
        with contextlib.ExitStack() as revert:
            self.records.add(pool, name, description or src["description"], clean, _now())
            revert.callback(self.records.remove, pool, name)
            revert.callback(storage.delete, name)
            for snap in snaps:
                short = snap["name"].partition("/")[2]
                self.records.add(pool, f"{name}/{short}", snap["description"], snap["config"],
                                 snap["created_at"])
                storage.import_snapshot(src_storage.existing(src_name, short), name, short)
            storage.import_volume(src_storage.existing(src_name, src_snap), name)
            self._apply_size(storage, name, clean)
            revert.pop_all()
        log.info("Copied storage volume %s/%s to %s/%s", source_pool, source, pool, name)
        return self.records.get(pool, name)

    def update(self, pool: str, name: str, config: Mapping[str, object] | None = None,
               description: str | None = None) -> None:
        """Replace the config (None: keep it) and description (None: keep it); a changed
        `size` is applied to the volume first."""
        record = self.get(pool, name)
        clean = record["config"] if config is None else validate_volume_config(config)
        if clean.get("size") != record["config"].get("size"):
            storage = self.storage(pool)
            self._check_size(storage, clean)
            size = clean.get("size")
            storage.set_size(name, parse_size(size) if size else None)
        self.records.save(pool, name, record["description"] if description is None
                          else description, clean)

    def delete(self, pool: str, name: str) -> None:
        """Delete a volume no instance or profile uses, with its snapshots."""
        self.get(pool, name)
        if self.used_by(pool, name):
            raise InvalidConfig("The storage volume is still in use")  # LXD 5.0's words
        self.storage(pool).delete(name)
        self.records.remove(pool, name)
        log.info("Deleted storage volume %s/%s", pool, name)

    def rename(self, pool: str, name: str, new: str) -> None:
        """Rename a volume no running instance mounts; its users' disks follow."""
        self.get(pool, name)
        validate_stored_volume_name(new)
        if self.running_users(pool, name):
            raise InvalidConfig("Volume is still in use by running instances")  # LXD's words
        storage = self.storage(pool)
        with contextlib.ExitStack() as revert:
            self.records.rename(pool, name, new)
            revert.callback(self.records.rename, pool, new, name)
            storage.rename(name, new)
            revert.callback(storage.rename, new, name)
            self._repoint_users(pool, name, new)
            revert.pop_all()
        log.info("Renamed storage volume %s/%s to %s", pool, name, new)

    def move(self, pool: str, name: str, target_pool: str, new: str) -> None:
        """Move a volume no running instance mounts to another pool (a copy with its
        snapshots, then the source deleted, as LXD's storagePoolVolumeTypePostMove); its
        users' disks follow."""
        self.get(pool, name)
        if self.running_users(pool, name):
            raise InvalidConfig("Volume is still in use by running instances")  # LXD's words
        with contextlib.ExitStack() as revert:
            self.copy(target_pool, new, pool, name)
            revert.callback(self._drop, target_pool, new)
            self._repoint_users(pool, name, new, target_pool)
            revert.callback(self._repoint_users, target_pool, new, name, pool)
            self.storage(pool).delete(name)
            self.records.remove(pool, name)
            revert.pop_all()
        log.info("Moved storage volume %s/%s to %s/%s", pool, name, target_pool, new)

    def _drop(self, pool: str, name: str) -> None:
        self.storage(pool).delete(name)
        self.records.remove(pool, name)

    def _repoint_users(self, pool: str, old: str, new: str, new_pool: str = "") -> None:
        """Disk devices of instances and profiles naming volume old of pool name new (of
        new_pool, default the same pool) instead."""
        target = new_pool or pool
        for spec in self.db.instance_specs():
            named = uses(spec.devices, pool, old, self._instance_owner(spec.name))
            if named:
                spec.devices = _repointed(spec.devices, named, target, new)
                self.db.instance_save(spec)
        for profile in self.db.profiles().values():
            named = uses(profile.devices, pool, old, self._profile_owner(profile.name))
            if named:
                profile.devices = _repointed(profile.devices, named, target, new)
                self.db.profile_save(profile)

    def restore(self, pool: str, name: str, snapshot: str) -> None:
        """Make the volume's content its snapshot's (no running instance may mount it)."""
        self.get_snapshot(pool, name, snapshot)
        if self.running_users(pool, name):
            raise InvalidConfig("Cannot restore custom volume used by running instances")
        self.storage(pool).restore(name, snapshot)
        log.info("Restored storage volume %s/%s from %s", pool, name, snapshot)

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot(self, pool: str, name: str, snapshot: str | None = None) -> str:
        """Take a read-only snapshot (named snap0, snap1... when not given); its name."""
        record = self.get(pool, name)
        existing = {r["name"].partition("/")[2] for r in self.snapshots(pool, name)}
        snapshot = snapshot or snapmod.next_name("", existing, datetime.now(UTC))
        snapmod.validate_snapshot_name(snapshot)
        storage = self.storage(pool)
        with contextlib.ExitStack() as revert:
            self.records.add(pool, f"{name}/{snapshot}", record["description"],
                             record["config"], _now())
            revert.callback(self.records.remove, pool, f"{name}/{snapshot}")
            storage.snapshot(name, snapshot)
            revert.pop_all()
        log.info("Snapshot %s/%s/%s taken", pool, name, snapshot)
        return snapshot

    def delete_snapshot(self, pool: str, name: str, snapshot: str) -> None:
        self.get_snapshot(pool, name, snapshot)
        self.storage(pool).delete_snapshot(name, snapshot)
        self.records.remove(pool, f"{name}/{snapshot}")

    def rename_snapshot(self, pool: str, name: str, snapshot: str, new: str) -> None:
        self.get_snapshot(pool, name, snapshot)
        snapmod.validate_snapshot_name(new)
        storage = self.storage(pool)
        with contextlib.ExitStack() as revert:
            self.records.rename(pool, f"{name}/{snapshot}", f"{name}/{new}")
            revert.callback(self.records.rename, pool, f"{name}/{new}", f"{name}/{snapshot}")
            storage.rename_snapshot(name, snapshot, new)
            revert.pop_all()

    def update_snapshot(self, pool: str, name: str, snapshot: str, description: str) -> None:
        record = self.get_snapshot(pool, name, snapshot)
        self.records.save(pool, record["name"], description, record["config"])

    # -- private ---------------------------------------------------------------------------------

    def _check_free(self, storage: CustomVolumes, name: str) -> None:
        """Conflict when the volume exists, or something of that name is on disk."""
        if any(r["name"] == name for r in self.records.list(storage.pool)):
            raise Conflict(f"Storage volume '{name}' already exists in pool '{storage.pool}'")
        storage.check_free(name)

    @staticmethod
    def _check_size(storage: CustomVolumes, config: Mapping[str, str]) -> None:
        if config.get("size") and not storage.can_limit_size:
            raise NotSupported(f"Storage pool '{storage.pool}' can't limit a volume's size "
                               "('size' needs a btrfs pool)")

    @staticmethod
    def _apply_size(storage: CustomVolumes, name: str, config: Mapping[str, str]) -> None:
        if config.get("size"):
            storage.set_size(name, parse_size(config["size"]))


def _repointed(devices: Devices, named: list[str], new_pool: str,
               new: str) -> dict[str, dict[str, str]]:
    """The devices, those named mounting volume key `new` of new_pool (by its name)."""
    source = volume_parts(new)[1]
    return {dev: ({**d, "pool": new_pool, "source": source} if dev in named else dict(d))
            for dev, d in devices.items()}



def _now() -> str:
    return format_time(datetime.now(UTC))

