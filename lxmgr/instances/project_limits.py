"""A project's limits.* and restricted* keys applied to what changes it (LXD 5.0's
AllowInstanceCreation, AllowInstanceUpdate, AllowProfileUpdate, AllowProjectUpdate in
lxd/project/permissions.go): gathers what the project would hold after the change from the
state database and checks it with the pure rules of lxmgr.model.project_limits.

Called by the Manager for every create, copy and import (_new_spec), instance update and
profile update, and by the projects route for a project's own update. A project without
limits or restrictions costs one read of its row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lxmgr.model import config as cfgmod
from lxmgr.model import project_limits as rules
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.profile import Profile
from lxmgr.model.project import display, owner, profile_parts, storage_parts
from lxmgr.model.volume import volume_parts

if TYPE_CHECKING:
    from lxmgr.instances.manager import Manager


def _config(manager: Manager, project: str) -> dict[str, str]:
    return dict(manager.db.project_get(project)["config"])


def holdings(manager: Manager, project: str, config: Mapping[str, str], *,
             spec: InstanceSpec | None = None,
             profile: Profile | None = None) -> rules.Holdings:
    """What `project` would hold with `spec` created or replaced and `profile` changed."""
    profiles = manager.profiles()
    if profile is not None:
        profiles = {**profiles, profile.name: profile}
    own = owner(project, config, "features.profiles")
    specs = {s.name: s for s in manager.db.instance_specs()
             if storage_parts(s.name)[0] == project}
    if spec is not None:
        specs[spec.name] = spec
    instances = []
    for each in specs.values():
        expanded, devices = cfgmod.expand([profiles[p] for p in each.profiles if p in profiles],
                                          each.config, each.devices)
        instances.append(rules.Entity(display(each.name), expanded, devices))
    mine = [rules.Entity(profile_parts(k)[1], p.config, p.devices) for k, p in profiles.items()
            if profile_parts(k)[0] == own]
    # The project's own custom volumes (snapshots aside); none for one using default's.
    volumes = [rules.Entity(volume_parts(r["name"])[1], r["config"])
               for r in manager.volumes.list_all()
               if "/" not in r["name"] and volume_parts(r["name"])[0] == project] \
        if manager.volume_owner(project) == project else []
    return rules.Holdings(instances, mine, volumes)


def check_instance(manager: Manager, spec: InstanceSpec, *, new: bool) -> None:
    """Refuse creating (new) or changing spec where its project's limits or restrictions
    would not hold."""
    project = storage_parts(spec.name)[0]
    config = _config(manager, project)
    if not rules.has_limits(config):
        return
    if new:
        count = sum(1 for n in manager.list() if storage_parts(n)[0] == project
                    and n != spec.name)
        rules.check_count(project, config, count)
    rules.check(project, config, holdings(manager, project, config, spec=spec))


def check_profile(manager: Manager, profile: Profile) -> None:
    """Refuse a profile change breaking a limit or restriction of a project using it: the
    project owning it, or every project sharing default's profiles."""
    owner_project = profile_parts(profile.name)[0]
    for project, row in manager.db.projects().items():
        config = dict(row["config"])
        if owner(project, config, "features.profiles") != owner_project or \
                not rules.has_limits(config):
            continue
        rules.check(project, config, holdings(manager, project, config, profile=profile))


def check_project(manager: Manager, project: str, old: Mapping[str, str],
                  new: Mapping[str, str]) -> None:
    """Refuse new limits or restrictions of a project that what it holds already breaks."""
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)
                     and (k.startswith("limits.") or k.startswith("restricted")))
    if not changed:
        return
    held = holdings(manager, project, new)
    rules.check_update(project, new, changed, held, len(held.instances))
