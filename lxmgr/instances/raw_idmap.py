"""raw.idmap changes on existing instances (updates, profile updates, copies): applied at
the next start where the instance's files do not depend on the map, refused where they do.

Imports lxmgr.errors, lxmgr.model, lxmgr.runtime.idmap and lxmgr.storage.remap; called by
the Manager (it passes itself). At create the whole map, raw entries included, is what the
files are shifted with (storage.shift); what a later change needs depends on where files
keep host ids:
- dir and btrfs pools through idmapped mounts keep container ids on disk: the new map only
  has to be written at the next start (LXD: "This property requires a container reboot");
- an overlay upper layer always keeps host ids (overlayfs writes the caller's ids), and so
  do its snapshots: the change is taken only while the instance is stopped and when no
  entry there (owner, group, ACL entry, file capability root id) would show as another
  container id through the new map, e.g. before a container user owns files;
- pools without idmapped mounts keep every file shifted (and an overlay's lower is a
  shifted copy per map): refused, lxmgr has no re-shifting (LXD re-shifts at start).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lxmgr.errors import InvalidState, NotSupported
from lxmgr.model.idmap import IdmapRequest, parse_raw_idmap
from lxmgr.model.instance import InstanceSpec
from lxmgr.runtime import idmap as idmaps
from lxmgr.storage import remap

if TYPE_CHECKING:
    from lxmgr.instances.manager import Manager


def check_change(manager: Manager, spec: InstanceSpec, old: Mapping[str, str],
                 new: Mapping[str, str], *, copy: bool = False) -> None:
    """Refuse a change of effective config old -> new whose raw.idmap instance `spec` cannot
    apply at its next start (the base range is runtime.idmap.check_change's). copy: spec is
    a copy being made, its files still the source's (whose config is old)."""
    old_raw = sorted(parse_raw_idmap(old.get("raw.idmap") or ""))
    new_raw = sorted(IdmapRequest.from_config(new).raw)  # refused on a privileged instance
    current = manager._idmap(spec)
    if old_raw == new_raw or current is None:
        return
    name = spec.name
    base = current.base_map
    old_map = dataclasses.replace(base, raw=tuple(old_raw))
    new_map = dataclasses.replace(base, raw=tuple(new_raw))  # InvalidConfig: a bad entry
    shared = idmaps.shared_mapping(*idmaps.ensure_subids())
    used = {n: m for n in manager.store.names()
            if n != name and (m := manager._idmap(manager.store.get(n)))}
    idmaps.check_raw(new_map, shared, used)
    driver = manager.pools.driver_for(spec)
    if not driver.idmapped:
        raise NotSupported(f"Instance '{name}' cannot change raw.idmap: without idmapped "
                           f"mounts its {driver.name} volume was shifted on disk for the "
                           "current map and lxmgr does not re-shift it")
    if not driver.shares_image:
        return  # dir, btrfs: container ids on disk, the next start writes the new map
    if copy:
        raise NotSupported(f"Instance '{name}' cannot change raw.idmap while being copied: "
                           "its overlay upper layer holds the source's host ids; change it "
                           "on the copy")
    if manager.is_running(name):
        raise InvalidState(f"Instance '{name}' is running: stop it before changing raw.idmap "
                           "(its overlay upper layer keeps the host ids of the running map)")
    trees = [("its overlay upper layer", driver.state_path(name))] + \
        [(f"snapshot '{snap.name}'", driver.state_path(name, snap.name))
         for snap in manager.db.snapshots(name)]
    for where, tree in trees:
        found = remap.first_moved(tree, old_map, new_map)
        if found:
            raise NotSupported(f"Instance '{name}' cannot change raw.idmap: in {where}, "
                               f"{found}; lxmgr does not re-shift files")
