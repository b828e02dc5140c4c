"""Manager, part two: instance config changes (live keys, disk and NIC hot-plug, proxy
reloads). A mixin of Manager; it relies on the Manager's stores and helpers. Profile and
network changes are services of their own (profile_service, network_service)."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from lxmgr import devices as devices_mod
from lxmgr import paths
from lxmgr.devices.disk import Disk
from lxmgr.errors import Conflict, InvalidConfig, LxmgrError
from lxmgr.instances import cloudinit, device_nodes, project_limits
from lxmgr.instances.locks import serialized
from lxmgr.instances.store import write_atomic
from lxmgr.model import config as cfgmod
from lxmgr.model.devices import validate_devices
from lxmgr.model.instance import InstanceSpec
from lxmgr.net.nic import NicSpec
from lxmgr.runtime import idmap as idmaps
from lxmgr.runtime.disks import DiskMount
from lxmgr.supervisor import control, protocol

log = logging.getLogger(__name__)
Devices = dict[str, dict[str, str]]


class ConfigMixin:
    """Instance config updates (mixed into Manager)."""

    # -- config ------------------------------------------------------------------------------

    @serialized("name")
    def update(self, name: str, *, config: dict[str, Any] | None = None,
               devices: dict[str, dict[str, Any]] | None = None,
               profiles: list[str] | None = None, description: str | None = None) -> list[str]:
        """Replace the given fields (LXD's PUT; the API merges first for PATCH). Live keys
        apply at once to a running instance; returns the changed keys needing a restart."""
        spec = self.store.get(name)
        old_expanded, _ = self.expanded(spec)
        if config is not None:
            spec.config = _keep_volatile(spec.config, cfgmod.validate_config(
                {k: v for k, v in config.items() if not k.startswith("volatile.")}))
            _check_volatile_unchanged(spec.config, config)
        if devices is not None:
            spec.devices = validate_devices(devices)
        if profiles is not None:
            spec.profiles = list(profiles)
        if description is not None:
            spec.description = description
        old_nics = self._nic_specs_or_none(self.store.get(name))
        try:
            old_devices = self.expanded(self.store.get(name))[1]
        except LxmgrError:
            old_devices = {}
        expanded, devices = self.expanded(spec)
        cfgmod.validate_config(expanded, allow_volatile=True)
        # The project's limits and restrictions first, as LXD's AllowInstanceUpdate.
        project_limits.check_instance(self, spec, new=False)
        cloudinit.check_unchanged(old_expanded, expanded, name)
        self.check_expanded_change(spec, old_expanded, expanded)
        self.networks.check_devices(devices, own_networks=self.owns_networks(name))
        ctx = self.device_context(name, expanded)
        # Host-side checks for what this update adds or changes: a disk whose source went
        # away since must not block an unrelated change (its next start says so).
        devices_mod.validate_all({n: d for n, d in devices.items() if old_devices.get(n) != d},
                                 ctx)
        self.proxies.check_update(spec, old_devices, devices)  # 4xx: bad or port in use
        spec.config.update(self.networks.new_volatile(devices, spec.config))
        self.apply_live(name, expanded)
        with contextlib.ExitStack() as revert:
            self._replug_disks(spec, old_devices, devices, ctx, revert)
            device_nodes.replug(self.socket_path(name), old_devices, devices, ctx, revert)
            self._replug(spec, old_nics, self.networks.nics(spec, devices))
            self._update_proxies(spec, devices)
            self.store.save(spec)
            revert.pop_all()
        self.announce("instance-updated", name)  # type: ignore[attr-defined]
        return cfgmod.restart_required(old_expanded, expanded)

    def _replug_disks(self, spec: InstanceSpec, old: Devices, new: Devices,
                      ctx: devices_mod.InstanceContext, revert: contextlib.ExitStack) -> None:
        """Hot-unplug disk devices removed from (or changed on) a running instance, then
        hot-plug the added and changed ones; each step is undone if a later one fails."""
        def disks(devices: Devices) -> dict[str, DiskMount]:
            return {n: Disk(n, d, ctx).mount() for n, d in devices.items()
                    if d.get("type") == "disk" and d.get("path") != "/"}
        before, after = disks(old), disks(new)
        gone = [before[n] for n in sorted(before) if after.get(n) != before[n]]
        added = [after[n] for n in sorted(after) if before.get(n) != after[n]]
        if not gone and not added:
            return
        for disk in added:
            Disk(disk.device, new[disk.device], ctx).validate()
        try:
            for disk in gone:
                self._disk_call(spec.name, protocol.DISK_DETACH, disk)
                revert.callback(self._disk_call, spec.name, protocol.DISK_ATTACH, disk)
            for disk in added:
                self._disk_call(spec.name, protocol.DISK_ATTACH, disk)
                revert.callback(self._disk_call, spec.name, protocol.DISK_DETACH, disk)
        except control.NotRunning:
            return  # stopped meanwhile: the next start mounts what the config says

    def _disk_call(self, name: str, cmd: str, disk: DiskMount) -> None:
        try:
            control.call(self.socket_path(name), cmd, wait=60, disk=disk.to_dict())
        except control.OlderSupervisor:
            raise Conflict(f"Instance '{name}' runs under the supervisor of an older "
                           "lxmgr that can't hot-plug disks: restart the instance "
                           "first") from None

    def _replug(self, spec: InstanceSpec, old: list[NicSpec], new: list[NicSpec]) -> None:
        """Hot-plug NICs added to a running instance, unplug removed or changed ones."""
        if old == new:
            return
        try:
            pid = int(control.call(self.socket_path(spec.name), protocol.GET_STATE,
                                   wait=5)["pid"])
        except control.NotRunning:
            return
        from lxmgr.net import nic as nicmod

        for gone in (n for n in old if n not in new):
            nicmod.hot_unplug(gone)
        self.networks.release([n for n in old if n not in new])
        added = [n for n in new if n not in old]
        if added:
            others = [(s, self._nic_specs(s)) for s in self.db.instance_specs()
                      if s.name != spec.name]
            self.networks.reserve(spec, added, others)
        for fresh in added:
            nicmod.hot_plug(fresh, pid)
        path = paths.instance_dir(spec.name) / "nics.json"
        write_atomic(path, json.dumps([n.to_dict() for n in new]))

    def _update_proxies(self, spec: InstanceSpec, devices: dict[str, dict[str, str]]) -> None:
        """Proxy devices of a running instance apply at once: its DNAT forwards now, its
        relay restarted by the supervisor on the rewritten proxies.json."""
        if not self.is_running(spec.name):
            return
        if not self.proxies.update_running(spec, devices):
            return
        try:
            control.call(self.socket_path(spec.name), protocol.RELOAD_PROXIES, wait=30)
        except control.NotRunning:
            pass  # stopped meanwhile: the next start writes and serves them
        except LxmgrError as err:  # e.g. an older supervisor (control.OlderSupervisor)
            log.warning("Instance '%s': proxy relay not reloaded (%s); the proxy devices "
                        "apply at its next start", spec.name, err)

    @serialized("name")
    def update_config(self, name: str, changes: dict[str, Any],
                      unset: list[str] | None = None) -> list[str]:
        """Set and unset local keys (`lxmgr config set/unset`)."""
        config = dict(self.store.get(name).config)
        config.update({k: cfgmod.to_config_value(v) for k, v in changes.items()})
        for key in unset or []:
            if key.startswith("volatile."):
                raise InvalidConfig(f"Invalid config key '{key}': volatile keys are set by "
                                    "lxmgr only")
            config.pop(key, None)
        return self.update(name, config=config)

    def apply_live(self, name: str, expanded: dict[str, str]) -> None:
        """Push live-changeable keys (limits) to a running instance."""
        if self.is_running(name):
            limits = {k: v for k, v in expanded.items() if k.startswith("limits.")}
            self.cgroups.apply_limits(name, limits)

    def check_expanded_change(self, spec: InstanceSpec, old: dict[str, str],
                              new: dict[str, str]) -> None:
        """Refuse a change of spec's effective config from old to new that its files
        cannot follow (its idmap, raw.idmap); profile updates check each user with it."""
        idmaps.check_change(spec.name, self._idmap(spec), old, new)
        self._check_raw_change(spec, old, new)


def _keep_volatile(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    return {**new, **{k: v for k, v in old.items() if k.startswith("volatile.")}}


def _check_volatile_unchanged(current: dict[str, str], given: dict[str, Any]) -> None:
    for key, value in given.items():
        if key.startswith("volatile.") and current.get(key) != str(value):
            raise InvalidConfig(f"Invalid config key '{key}': volatile keys are set by "
                                "lxmgr only")
