"""Instance orchestration: create/start/stop/restart/freeze/exec/delete with revert stacks.

The only layer that combines drivers (images, storage, cgroups, runtime, supervisor).
Synchronous; the daemon calls it from worker threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from lxmgr import devices as devices_mod
from lxmgr import paths
from lxmgr.cgroups import base as cgroup_base
from lxmgr.cgroups.detect import detect
from lxmgr.errors import (
    Conflict,
    InvalidConfig,
    InvalidState,
    LxmgrError,
    NotFound,
    NotSupported,
    RuntimeSetupError,
)
from lxmgr.images import debootstrap
from lxmgr.images.store import ALL as ALL_PROJECTS
from lxmgr.images.store import ImageInfo, ImageStore
from lxmgr.instances import (
    cloudinit,
    files,
    image_ops,
    intents,
    lxcfs,
    project_limits,
    raw_idmap,
    staging,
)
from lxmgr.instances.backups import Backups
from lxmgr.instances.checkpoints import checkpoint
from lxmgr.instances.db import Database
from lxmgr.instances.events import EventBus
from lxmgr.instances.host import ensure_host_ready, load_kernel_modules
from lxmgr.instances.images import Images
from lxmgr.instances.locks import InstanceLocks, serialized
from lxmgr.instances.manager_backup import BackupMixin
from lxmgr.instances.manager_config import ConfigMixin
from lxmgr.instances.manager_exec import ExecMixin
from lxmgr.instances.manager_publish import PublishMixin
from lxmgr.instances.manager_snapshots import SnapshotMixin
from lxmgr.instances.manager_status import StatusMixin, SupervisorWatch
from lxmgr.instances.network_forwards import NetworkForwards
from lxmgr.instances.network_service import NetworkService
from lxmgr.instances.networks import Networks
from lxmgr.instances.observer import Observer
from lxmgr.instances.pools import Pools
from lxmgr.instances.profile_service import ProfileService
from lxmgr.instances.profiles import seed_profiles
from lxmgr.instances.proxies import Proxies
from lxmgr.instances.store import InstanceStore, write_atomic
from lxmgr.instances.volumes import Volumes
from lxmgr.instances.warm import WarmSupervisor
from lxmgr.model import config as cfgmod
from lxmgr.model import project as projectmod
from lxmgr.model import units
from lxmgr.model.devices import root_disk, validate_devices
from lxmgr.model.idmap import IdMap, IdmapRequest, parse_raw_idmap
from lxmgr.model.instance import InstanceSpec, validate_stored_name
from lxmgr.model.profile import Profile
from lxmgr.model.rootfs import RootfsSpec
from lxmgr.model.volume import volume_key
from lxmgr.net.nic import NicSpec
from lxmgr.net.nic import detach as detach_nic
from lxmgr.runtime import idmap as idmaps
from lxmgr.runtime.plan import build_plan
from lxmgr.storage import base as storage_base
from lxmgr.supervisor import control, protocol
from lxmgr.supervisor.config import SupervisorConfig

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "overlay"
STOP_TIMEOUT = 30.0


class Manager(ConfigMixin, SnapshotMixin, PublishMixin, BackupMixin, ExecMixin, StatusMixin):
    """Owns every instance under paths.root(); `cgroup_base` names our cgroup subtree."""

    def __init__(self, cgroup_base_name: str = "lxmgr", storage: str = DEFAULT_STORAGE,
                 db: Database | None = None) -> None:
        self.cgroup_base = cgroup_base_name
        self.default_storage = storage
        self._own_db = db is None
        self.db = db or Database()
        self.pools = Pools(self.db, storage)
        self.locks = InstanceLocks()  # one operation at a time on each instance
        # /1.0/events: the engine emits the lifecycle event of each state change it makes
        # (from worker threads: the bus delivers on the daemon's loop)
        self.events = EventBus()
        self._quiet = threading.local()  # depth of steps whose enclosing operation announces
        self.volumes = Volumes(self.db, self.pools, self.is_running,  # custom volumes
                               self.volume_owner)
        self.store = InstanceStore(self.db)
        # backup records and tarballs; they move with a rename and go with a delete
        self.backups = Backups(paths.root() / "backups" / "instances", self.events,
                               self.locks, self.export_backup, self.store.exists)
        self.images = Images(ImageStore(), self.events, lambda fingerprint: [  # its users
            n for n in self.list() if self.get(n).image_fingerprint == fingerprint])
        self.networks = Networks(self.db)
        self.proxies = Proxies(self.networks)  # proxy devices: relay specs and DNAT rules
        seed_profiles(self.db)
        # profile and network (and forward) changes; each service announces its own
        self.profile_service = ProfileService(
            self.db, self.events, self.locks, expanded=self.expanded,
            check_limits=lambda profile: project_limits.check_profile(self, profile),
            check_change=self.check_expanded_change, apply_live=self.apply_live)
        self.network_service = NetworkService(self.networks, NetworkForwards(self.db),
                                              self.db, self.events, expanded=self.expanded)
        self._cgroups: cgroup_base.CgroupDriver | None = None
        self._host_checked = False
        self.warm = WarmSupervisor()
        self.supervisors = SupervisorWatch()  # status_fast's state.json and pidfd cache
        # changes nobody asked for (poweroff, reboot, crash inside; a supervisor lost)
        self.observer = Observer(
            watch=self.supervisors, hold=self.locks.hold, try_hold=self.locks.try_hold,
            ephemeral=lambda name: self.store.get(name).ephemeral,
            responds=self.is_running, announce=self.announce, reap=self._reap_lost,
            delete_ephemeral=lambda name: self.delete(name, ephemeral_stop=True))

    def close(self) -> None:
        """Let the pre-started supervisor go (it exits on EOF); drop our pidfds."""
        self.warm.close()
        self.supervisors.close()
        if self._own_db:
            self.db.close()

    # -- helpers -----------------------------------------------------------------------------

    def announce(self, action: str, name: str, *, snapshot: str | None = None,
                 context: dict[str, Any] | None = None, **more: Any) -> None:
        """Emit the lifecycle event of a change made to instance `name` (LXD's instance
        drivers send theirs where the change is made, whoever asked), unless it is a step of
        an operation that announces itself (a restart's start, a restore's stop and start)."""
        if not getattr(self._quiet, "depth", 0):
            self.events.lifecycle(action, name, snapshot=snapshot, context=context, **more)

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Steps of an enclosing operation: their own events are not sent (this thread)."""
        self._quiet.depth = getattr(self._quiet, "depth", 0) + 1
        try:
            yield
        finally:
            self._quiet.depth -= 1

    @property
    def cgroups(self) -> cgroup_base.CgroupDriver:
        if self._cgroups is None:
            self._cgroups = cgroup_base.load(detect(), base=self.cgroup_base)
        return self._cgroups

    def profiles(self) -> dict[str, Profile]:
        return self.db.profiles()

    def expanded(self, spec: InstanceSpec) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """Effective config and devices: profiles in order, then the instance's own."""
        known = self.profiles()
        missing = [p for p in spec.profiles if p not in known]
        if missing:
            raise NotFound(f"Profile '{missing[0]}' not found")
        return cfgmod.expand([known[p] for p in spec.profiles], spec.config, spec.devices)

    def project_owner(self, project: str, feature: str) -> str:
        """The project whose objects of `feature` (features.profiles, ...) `project` uses."""
        if project == projectmod.DEFAULT:
            return project
        return projectmod.owner(project, self.db.project_get(project)["config"], feature)

    def volume_owner(self, project: str) -> str:
        """The project whose custom volumes `project` uses (features.storage.volumes)."""
        return self.project_owner(project, "features.storage.volumes")

    def owns_networks(self, name: str) -> bool:
        """Whether the project of instance `name` has its own networks (features.networks,
        so none of default's bridges)."""
        project = projectmod.storage_parts(name)[0]
        return self.project_owner(project, "features.networks") != projectmod.DEFAULT

    def socket_path(self, name: str) -> str:
        return str(paths.instance_dir(name) / "supervisor.sock")

    def device_context(self, name: str, expanded: dict[str, str], *,
                       rootfs: Callable[[], RootfsSpec] | None = None
                       ) -> devices_mod.InstanceContext:
        privileged = units.parse_bool(expanded.get("security.privileged") or "false")
        return devices_mod.InstanceContext(
            name=name, privileged=privileged,
            volume_path=lambda pool, volume: self.volumes.host_path(pool, volume_key(
                self.volume_owner(projectmod.storage_parts(name)[0]), volume)),
            idmap=None if privileged else self._idmap_of(expanded), config=expanded,
            bridge_of=self.networks.bridge_of, rootfs=rootfs,
            pool_has_quotas=self._pool_has_quotas)

    def _pool_has_quotas(self, pool: str) -> bool:
        """Whether pool's driver applies a root disk's `size` (unknown pools: say yes and
        let Pools.resolve name them)."""
        try:
            return self.pools.driver(pool).can_limit_size
        except NotFound:
            return True

    def _idmap(self, spec: InstanceSpec) -> IdMap | None:
        return self._idmap_of(self.expanded(spec)[0])

    @staticmethod
    def _idmap_of(config: dict[str, str]) -> IdMap | None:
        """The map volatile.idmap.* records with the raw.idmap entries of config, an
        effective config (None: privileged, or not allocated yet)."""
        base = config.get("volatile.idmap.base")
        if base is None:
            return None
        size = int(config.get("volatile.idmap.size", idmaps.SIZE))
        return IdMap(int(base), int(config.get("volatile.idmap.gid_base", base)), size,
                     parse_raw_idmap(config.get("raw.idmap") or ""))

    def _check_raw_change(self, spec: InstanceSpec, old: dict[str, str],
                          new: dict[str, str], *, copy: bool = False) -> None:
        """Refuse a raw.idmap change spec's files cannot follow (instances.raw_idmap)."""
        raw_idmap.check_change(self, spec, old, new, copy=copy)

    def _allocate_idmap(self, config: dict[str, str]) -> IdMap | None:
        """The map of a new instance with effective config `config` (LXD's findIdmap).
        Privileged: none. Isolated: security.idmap.size ids (65536) from security.idmap.base,
        which must lie in root's subordinate ids clear of every other map, or else the first
        free range. Else the map non-isolated instances share. raw.idmap's entries come on
        top, their host ids clear of every instance's range."""
        request = IdmapRequest.from_config(config)
        if request.privileged:
            return None
        uid_range, gid_range = idmaps.ensure_subids()
        shared = idmaps.shared_mapping(uid_range, gid_range)
        used = {n: m for n in self.store.names() if (m := self._idmap(self.store.get(n)))}
        if not request.isolated:
            idmap = shared
        elif request.base is not None:
            idmap = idmaps.place_isolated(request.base, request.map_size,
                                          *idmaps.root_subids(), shared, used)
        else:
            idmap = idmaps.pick_isolated(uid_range, gid_range, used.values(), request.map_size)
        if request.raw:
            idmap = IdMap(idmap.uid_base, idmap.gid_base, idmap.size, request.raw)
            idmaps.check_raw(idmap, shared, used)
        return idmap

    # -- create / delete ---------------------------------------------------------------------

    def _new_spec(self, name: str, *, profiles: list[str] | None, config: dict[str, Any] | None,
                  devices: dict[str, dict[str, Any]] | None, ephemeral: bool,
                  storage: str | None, description: str) -> InstanceSpec:
        """A validated spec for a new instance (no image yet); raises on bad input."""
        validate_stored_name(name)
        if profiles is not None and not all(isinstance(p, str) for p in profiles):
            raise InvalidConfig("Invalid 'profiles': expected a list of names")
        spec = InstanceSpec(
            name=name, image_fingerprint="", description=description,
            profiles=list(profiles if profiles is not None else [projectmod.profile_key(
                self.project_owner(projectmod.storage_parts(name)[0], "features.profiles"),
                "default")]),
            config=cfgmod.validate_config(config or {}), devices=validate_devices(devices or {}),
            ephemeral=ephemeral, storage_driver=self.default_storage)
        expanded, devices = self.expanded(spec)
        cfgmod.validate_config(expanded)
        self.networks.check_devices(devices, own_networks=self.owns_networks(name))
        devices_mod.validate_all(devices, self.device_context(spec.name, expanded))
        root = root_disk(devices)
        root_pool = root[1].get("pool") if root else None
        spec.storage_pool, spec.storage_driver = self.pools.resolve(storage or root_pool)
        if self.store.exists(name):
            raise Conflict(f"Instance '{name}' already exists")
        project_limits.check_instance(self, spec, new=True)
        return spec

    def check_create(self, name: str, image: str, *, profiles: list[str] | None = None,
                     config: dict[str, Any] | None = None,
                     devices: dict[str, dict[str, Any]] | None = None, ephemeral: bool = False,
                     storage: str | None = None, description: str = "",
                     remote: bool = False) -> bool:
        """Validate a create request before it becomes an operation; True when the image
        must first be built from its recipe (NotFound if neither image nor recipe exists).
        remote: the image comes from a server (pulled by the operation), not checked here."""
        self._new_spec(name, profiles=profiles, config=config, devices=devices,
                       ephemeral=ephemeral, storage=storage, description=description)
        if remote:
            return False
        try:
            self.images.get(image)
            return False
        except NotFound:
            try:
                self.check_recipe(image)
            except NotFound:
                raise image_ops.missing_image(self, image) from None
            return True

    def check_recipe(self, name: str) -> None:
        """A built-in recipe name (images/<name>.yaml); never a host path from the API."""
        if not name or "/" in name or name.startswith(".") or name.endswith((".yaml", ".yml")):
            raise NotFound(f"Image recipe '{name}' not found")
        debootstrap.recipe_path(name)

    def build_image(self, recipe: str, progress: Any = None,
                    cancel: threading.Event | None = None) -> ImageInfo:
        """Build (or reuse) the image of a built-in recipe; setting `cancel` stops it."""
        self.check_recipe(recipe)
        return self.images.adding(lambda: debootstrap.build(
            recipe, progress, store=self.images.store, cancel=cancel))

    def delete_image(self, fingerprint: str) -> None:
        """Delete an image no instance uses (overlay volumes keep using it)."""
        self.images.delete(fingerprint)

    @serialized("name")
    def create(self, name: str, image: str, *, profiles: list[str] | None = None,
               config: dict[str, Any] | None = None,
               devices: dict[str, dict[str, Any]] | None = None, ephemeral: bool = False,
               storage: str | None = None, description: str = "") -> InstanceSpec:
        """Create an instance from an image; nothing is left behind on failure."""
        spec = self._new_spec(name, profiles=profiles, config=config, devices=devices,
                              ephemeral=ephemeral, storage=storage, description=description)
        expanded, _ = self.expanded(spec)
        img = self.images.get(image)
        cloudinit.check_image(expanded, img.rootfs, image)
        spec.image_fingerprint = img.fingerprint
        spec.config.update(image_ops.image_config(img))
        image_ops.mark_used(img)
        driver = self.pools.driver_for(spec)
        if self.store.exists(name) or driver.volume_exists(name):
            raise Conflict(f"Instance '{name}' already exists")
        idmap = self._allocate_idmap(expanded)
        spec.config["volatile.uuid"] = str(uuidlib.uuid4())
        spec.config.update(self.networks.new_volatile(self.expanded(spec)[1], spec.config))
        if idmap is not None:
            spec.config["volatile.idmap.base"] = str(idmap.uid_base)
            spec.config["volatile.idmap.gid_base"] = str(idmap.gid_base)
            spec.config["volatile.idmap.size"] = str(idmap.size)
        with intents.intent("create", name=name), contextlib.ExitStack() as revert:
            self.store.add(spec)
            revert.callback(self.store.remove, name)
            checkpoint("create.record")
            driver.create_volume(name, img, idmap)
            revert.callback(driver.delete_volume, name)
            checkpoint("create.volume")
            self._apply_root_size(spec, driver)
            rootfs = driver.rootfs_spec(name, img.rootfs, idmap)
            files.write_instance_files(rootfs, idmap, projectmod.display(name))
            cloudinit.write_seed(rootfs, idmap, projectmod.display(name),
                                     spec.config["volatile.uuid"], expanded)
            image_ops.apply_image_templates(self, spec, "create")
            checkpoint("create.files")
            revert.pop_all()
        log.info("Created instance %s from %s", name, img.fingerprint[:12])
        self.announce_created(spec)
        return spec

    def announce_created(self, spec: InstanceSpec) -> None:
        """LXD's instance-created, with its context (lxd/instance/drivers/driver_lxc.go)."""
        root = root_disk(self.expanded(spec)[1])
        self.announce("instance-created", spec.name, context={
            "type": "container", "storage-pool": root[1].get("pool", "") if root else ""})

    def _apply_root_size(self, spec: InstanceSpec, driver: storage_base.StorageDriver) -> None:
        """The root disk's `size` as a quota where the driver has one (btrfs qgroups)."""
        root = root_disk(self.expanded(spec)[1])
        size = root[1].get("size") if root else None
        if not size:
            return
        if not driver.can_limit_size:  # refused by the root disk's validate() before
            raise NotSupported(f"Invalid device '{root[0] if root else 'root'}': 'size' "
                               f"needs a storage pool with quotas; {driver.name} has none")
        from lxmgr.model.units import parse_size

        driver.set_size(spec.name, parse_size(size))

    @serialized("name")
    def delete(self, name: str, force: bool = False, *, ephemeral_stop: bool = False) -> None:
        """Delete a stopped instance (force: stop it first). Removes its volume only.
        security.protection.delete refuses it before anything is stopped, except when a
        stopped ephemeral instance goes (ephemeral_stop), as LXD 5.0's onStop deletes it
        with force=true (lxd/instance/drivers/driver_lxc.go)."""
        spec = self.store.get(name)
        self.observer.observe(name)  # a stop from inside not yet announced comes first
        if not self.store.exists(name):
            return  # it was ephemeral: that stop deleted it
        if not ephemeral_stop and self._protected(spec):
            raise InvalidConfig("Instance is protected")  # LXD 5.0's words (a 400 Failure)
        if ephemeral_stop and self.is_running(name):
            return  # started again (a restart) before its lock came: nothing to reap
        if self.is_running(name):
            if not force:
                raise InvalidState(f"Instance '{name}' is running: stop it first or use --force")
            self.stop(name, force=True)
        with intents.intent("delete", name=name):  # a killed daemon's next start finishes it
            checkpoint("delete.begin")
            self._purge(spec)
        log.info("Deleted instance %s", name)
        self.announce("instance-deleted", name)

    def _purge(self, spec: InstanceSpec) -> None:
        """Remove a stopped instance wholly, whatever of it exists (also what a create or
        delete killed half way left): volume, cgroup, DNAT rules, addresses, record, dir."""
        name = spec.name
        driver = self.pools.driver_for(spec)
        if driver.volume_exists(name):
            driver.delete_volume(name)
        checkpoint("delete.volume")
        if self.cgroups.exists(name):
            self.cgroups.delete(name)
        self.proxies.clear(name)
        self.networks.release(self._nic_specs_or_none(spec))
        self.store.remove(name)
        self.backups.on_instance_deleted(name)

    def recover(self) -> None:
        """At daemon start: finish or undo the work a killed daemon left half done (the
        intent journal), so that each instance fully exists or not at all; then remove the
        staging a dead process left."""
        for path, record in intents.pending():
            action, name = record["action"], str(record.get("name", ""))
            try:
                with self.locks.hold(name, str(record.get("new_name", ""))):
                    self._recover(action, name, record)
            except (LxmgrError, OSError) as err:
                log.error("Could not recover the %s of '%s' a killed daemon left: %s "
                          "(tried again at the next start)", action, name, err)
                continue
            log.warning("Recovered the %s of '%s' a killed daemon left half done", action,
                        name)
            path.unlink(missing_ok=True)
        staging.sweep([self.images.root, self._backups_dir()])

    def _recover(self, action: str, name: str, record: dict[str, Any]) -> None:
        exists = self.store.exists(name)
        if action in ("create", "delete"):  # both end with no such instance
            if exists and self.is_running(name):
                raise InvalidState(f"Instance '{name}' is running")
            if exists:
                self._purge(self.store.get(name))
            elif (directory := paths.instance_dir(name)).is_dir():
                shutil.rmtree(directory)
        elif action == "snapshot" and exists:
            self._recover_snapshot(name, str(record["snapshot"]), bool(record.get("delete")))
        elif action == "rename":
            self._recover_rename(name, str(record["new_name"]))
        elif action == "restore" and exists:
            self.restore(name, str(record["snapshot"]))
        elif action in ("start", "stop") and exists and not self.is_running(name):
            self.proxies.clear(name)  # the DNAT rules of a start that never ran, or a stop
            spec = self.store.get(name)
            if action == "stop" and spec.ephemeral:
                self._purge(spec)  # what the stop would have done

    def _reap_lost(self, name: str) -> None:
        """Take away what a supervisor that died without stopping its container left: the
        container's processes (its PID 1 was reparented, out of reach), its cgroup, DNAT
        rules, egress IFB devices and control socket."""
        directory = paths.instance_dir(name)
        if self.cgroups.exists(name):
            if self.cgroups.pids(name):
                self.cgroups.kill(name)
            self.cgroups.delete(name)
        self.proxies.clear(name)
        nics = directory / "nics.json"
        if nics.exists():
            try:
                specs = [NicSpec.from_dict(d) for d in json.loads(nics.read_text())]
            except (OSError, ValueError, TypeError, LxmgrError) as err:
                log.warning("Instance '%s': NIC specs unreadable: %s", name, err)
                specs = []
            for nic in specs:
                if nic.limits_egress:
                    detach_nic(nic)
        with contextlib.suppress(FileNotFoundError):
            (directory / "supervisor.sock").unlink()

    def _protected(self, spec: InstanceSpec) -> bool:
        """security.protection.delete of the expanded config (a missing profile is skipped:
        it must not make an instance undeletable)."""
        known = self.profiles()
        config, _ = cfgmod.expand([known[p] for p in spec.profiles if p in known],
                                  spec.config, {})
        return units.parse_bool(config.get("security.protection.delete") or "false")

    def _nic_specs_or_none(self, spec: InstanceSpec) -> list[NicSpec]:
        try:
            return self._nic_specs(spec)
        except LxmgrError:
            return []

    def list(self) -> list[str]:
        return self.store.names()

    def get(self, name: str) -> InstanceSpec:
        return self.store.get(name)

    # -- start / stop ------------------------------------------------------------------------

    def is_running(self, name: str) -> bool:
        try:
            control.call(self.socket_path(name), protocol.GET_STATE, wait=5)
            return True
        except control.NotRunning:
            return False

    def _image(self, spec: InstanceSpec) -> ImageInfo:
        try:
            return self.images.get(spec.image_fingerprint, project=ALL_PROJECTS)
        except NotFound:
            raise NotFound(f"Image '{spec.image_fingerprint[:12]}' of instance '{spec.name}' "
                           "is missing from the image store") from None

    def build_supervisor_config(self, spec: InstanceSpec) -> SupervisorConfig:
        """Everything the supervisor needs, from the stored spec."""
        expanded, _devices = self.expanded(spec)
        idmap = self._idmap(spec)
        img = self._image(spec)
        driver = self.pools.driver_for(spec)
        if not driver.volume_exists(spec.name):
            raise NotFound(f"Storage volume of instance '{spec.name}' is missing")
        def root_volume() -> RootfsSpec:
            return driver.rootfs_spec(spec.name, img.rootfs, idmap)

        run = devices_mod.start_all(_devices, self.device_context(spec.name, expanded,
                                                                  rootfs=root_volume))
        # The root disk's volume; an instance created without one (--no-profiles) still has
        # its volume in the pool it was created on (LXD refuses creating such an instance).
        rootfs = run.rootfs or root_volume()
        init_target = files.find_init(rootfs)
        cg = self.cgroups
        plan = build_plan(
            name=spec.name, uuid=spec.config.get("volatile.uuid", str(uuidlib.uuid4())),
            config=expanded, storage_root=str(driver.volume_dir(spec.name)),
            rootfs=rootfs.target, rootfs_spec=files.spec_dict(rootfs), idmap=idmap,
            init_target=init_target, cgroup_procs=cg.procs_paths(spec.name),
            cgroup_mounts=cg.container_mounts(), disks=[d.to_dict() for d in run.disks],
            device_rules=run.cgroup_devices)
        plan.lxcfs = lxcfs.plan_binds(spec.name)
        directory = paths.instance_dir(spec.name)
        limits = {k: v for k, v in expanded.items() if k.startswith("limits.")}
        return SupervisorConfig(
            plan=plan, cgroup_driver=cg.name, cgroup_base=self.cgroup_base, limits=limits,
            socket=self.socket_path(spec.name), state_file=str(directory / "state.json"),
            console_log=str(directory / "console.log"),
            nics_file=self._write_nics(spec, run.nics),
            proxies_file=self.proxies.write(spec, _devices, run.proxies))  # Conflict: in use

    def _nic_specs(self, spec: InstanceSpec) -> list[NicSpec]:
        return self.networks.nics(spec, self.expanded(spec)[1])

    def _write_nics(self, spec: InstanceSpec, nics: list[NicSpec]) -> str:
        """The NIC specs (the nic devices' RunConfig) the supervisor's attach hook reads
        after every boot; static addresses are reserved in the networks' DHCP servers first."""
        others = [(s, self._nic_specs(s)) for s in self.db.instance_specs() if s.name != spec.name]
        if nics:
            self.networks.reserve(spec, nics, others)
        path = paths.instance_dir(spec.name) / "nics.json"  # also read after hot-plugs
        write_atomic(path, json.dumps([nic.to_dict() for nic in nics]))
        return str(path)

    @serialized("name")
    def start(self, name: str) -> int:
        """Boot the instance; returns PID 1's host pid."""
        spec = self.store.get(name)
        self.observer.observe(name)  # the last run's end is announced (and cleaned) first
        if not self.store.exists(name):
            raise NotFound(f"Instance '{name}' not found")  # ephemeral: it stopped for good
        if self.is_running(name):
            raise InvalidState(f"Instance '{name}' is already running")
        if not self._host_checked:
            ensure_host_ready()
            self._host_checked = True
        load_kernel_modules(self.expanded(spec)[0].get("linux.kernel_modules", ""))
        with intents.intent("start", name=name):  # killed before the supervisor runs: undone
            image_ops.apply_image_templates(self, spec, "start")
            sup = self.build_supervisor_config(spec)
            cfg_path = paths.instance_dir(name) / "supervisor.json"
            write_atomic(cfg_path, sup.to_json())
            checkpoint("start.config")
            warm = self.warm.take()
            out, err = warm.communicate(f"{cfg_path}\n", timeout=120)
            if warm.returncode != 0:
                self.proxies.clear(name)  # the DNAT rules proxies.write() added
                lines = err.strip().splitlines()
                message = lines[-1] if lines else f"supervisor exited with {warm.returncode}"
                raise RuntimeSetupError(message.removeprefix("Error: "))
            pid = int(out.strip())
            checkpoint("start.supervisor")
        self._plug_nics(spec, pid)
        self.db.instance_touch(name, datetime.now(UTC).isoformat().replace("+00:00", "Z"))
        log.info("Started instance %s", name)
        self.observer.observe(name)  # where changes from inside are counted from
        self.announce("instance-started", name)
        return pid

    def _plug_nics(self, spec: InstanceSpec, pid: int) -> None:
        """Plug the NICs in as soon as PID 1 exists: systemd-networkd finds eth0 when it
        starts. Only here on a start (the supervisor plugs them after reboots from inside,
        with a helper process that would cost the booting container ~100 ms of CPU). A
        failure is logged (the supervisor's hook retries on reboot; `lxmgr
        doctor` and the no-lease hint point at it); the container keeps running."""
        nics = self._nic_specs_or_none(spec)
        if not nics:
            return
        from lxmgr.net import nic as nicmod

        for spec_ in nics:
            try:
                nicmod.attach(spec_, pid)
            except LxmgrError as err:
                log.error("Instance '%s': NIC %s: %s", spec.name, spec_.device, err)

    @serialized("name")
    def stop(self, name: str, *, timeout: float = STOP_TIMEOUT, force: bool = False,
             keep_ephemeral: bool = False) -> None:
        """Graceful stop (init's halt signal, then SIGKILL of the cgroup after timeout); an
        ephemeral instance is deleted then, unless the caller starts it again
        (keep_ephemeral: a restore, as LXD's). The event is LXD's: instance-stopped when
        forced or without a timeout (its Stop), else instance-shutdown (its Shutdown)."""
        spec = self.store.get(name)
        self.observer.expected.add(name)
        with intents.intent("stop", name=name):  # killed before the cleanup: done next start
            try:
                control.call(self.socket_path(name), protocol.STOP, wait=timeout + 30,
                             force=force, timeout=timeout)
            except control.NotRunning:
                raise InvalidState(f"Instance '{name}' is not running") from None
            checkpoint("stop.stopped")
            self.proxies.clear(name)  # nat=true forwards (the relay went with the container)
        self.announce("instance-stopped" if force or timeout == 0 else "instance-shutdown",
                      name)
        if spec.ephemeral and not keep_ephemeral:
            self.delete(name, ephemeral_stop=True)

    @serialized("name")
    def restart(self, name: str, *, timeout: float = STOP_TIMEOUT, force: bool = False) -> int:
        spec = self.store.get(name)
        ephemeral, spec.ephemeral = spec.ephemeral, False
        self.observer.expected.add(name)
        try:
            control.call(self.socket_path(name), protocol.STOP, wait=timeout + 30,
                         force=force, timeout=timeout)
        except control.NotRunning:
            pass
        finally:
            spec.ephemeral = ephemeral
        with self.quietly():
            pid = self.start(name)
        self.announce("instance-restarted", name)
        return pid

    @serialized("name")
    def freeze(self, name: str) -> None:
        self.store.get(name)
        control.call(self.socket_path(name), protocol.FREEZE)
        self.announce("instance-paused", name)

    @serialized("name")
    def unfreeze(self, name: str) -> None:
        self.store.get(name)
        control.call(self.socket_path(name), protocol.UNFREEZE)
        self.announce("instance-resumed", name)

    def state(self, name: str, *, spec: InstanceSpec | None = None,
              devices: dict[str, dict[str, str]] | None = None,
              network: bool = True) -> dict[str, Any]:
        """LXD-like state: status, pid, processes, memory and cpu usage, and the network
        (unless network=False: it enters the container). A listing passes the spec and
        expanded devices it has read already."""
        spec = spec or self.store.get(name)
        try:
            sup = control.call(self.socket_path(name), protocol.GET_STATE, wait=5)
        except control.NotRunning:
            return {"status": "Stopped", "status_code": 102, "pid": 0, "processes": 0,
                    "memory": {"usage": 0}, "cpu": {"usage": 0}}
        usage = self.cgroups.usage(name)
        codes = {"Running": 103, "Frozen": 110, "Stopping": 107, "Stopped": 102}
        return {
            "status": sup["status"], "status_code": codes.get(sup["status"], 103),
            "pid": sup["pid"], "processes": usage.processes,
            "memory": {"usage": usage.memory_bytes, "usage_peak": usage.memory_peak_bytes or 0,
                       "swap_usage": usage.swap_bytes or 0},
            # .get: a supervisor started by an older lxmgr answers what it knew then
            "cpu": {"usage": usage.cpu_ns}, "started_at": sup.get("started_at", ""),
            "supervisor_pid": sup.get("supervisor_pid", 0),
            "supervisor_protocol": int(sup.get("protocol", 1)),
            "network": self._network_state(spec, int(sup["pid"]), devices) if network
            else None,
        }

    def _network_state(self, spec: InstanceSpec, pid: int,
                       devices: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
        """LXD's state.network: every interface inside the container (lo included; both
        address families, MAC, MTU, counters), the host end's name added for our NICs; empty
        for an instance without NICs."""
        from lxmgr.net import inside

        try:
            nics = self._nic_specs(spec) if devices is None else \
                self.networks.nics(spec, devices)
        except LxmgrError:
            nics = []
        if not nics:  # entering the namespace costs ~2 ms: not for an instance without NICs
            return {}
        try:
            seen = inside.interfaces(pid)
        except LxmgrError as err:
            log.warning("Network state of '%s': %s", spec.name, err)
            seen = {}
        for nic in nics:
            seen.setdefault(nic.name, {"addresses": [], "hwaddr": nic.hwaddr, "mtu": 0,
                                       "state": "down", "type": "broadcast", "counters": {}})
            seen[nic.name]["host_name"] = nic.host_name
        return seen

    def console_clear(self, name: str) -> None:
        self.store.get(name)
        try:
            control.call(self.socket_path(name), protocol.CONSOLE_CLEAR)
        except control.NotRunning:
            (paths.instance_dir(name) / "console.log").unlink(missing_ok=True)

    def console_log(self, name: str) -> str:
        self.store.get(name)
        try:
            return str(control.call(self.socket_path(name), protocol.CONSOLE_LOG)["log"])
        except control.NotRunning:
            path = paths.instance_dir(name) / "console.log"
            return path.read_text(errors="replace") if path.exists() else ""
