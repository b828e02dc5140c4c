"""Profiles in the state database: seeded from profiles/*.yaml at first start, then managed
through the API. `default` cannot be deleted, a profile in use cannot be deleted, and a
change reaches the running instances that use it (live keys), as in LXD."""

from __future__ import annotations

import logging

from lxmgr import paths
from lxmgr.errors import Conflict, Forbidden, InvalidConfig, InvalidState
from lxmgr.instances.db import Database
from lxmgr.model import config as cfgmod
from lxmgr.model.devices import validate_devices
from lxmgr.model.profile import Profile, load_profiles_dir, validate_profile_name
from lxmgr.model.project import display, profile_parts

log = logging.getLogger(__name__)
SEEDED = "profiles.seeded"


def seed_profiles(db: Database) -> None:
    """Load the built-in YAML profiles once, at the first start of a fresh state."""
    if db.get_setting(SEEDED):
        return
    for profile in load_profiles_dir(paths.profiles_src_dir()).values():
        if profile.name not in db.profile_names():
            db.profile_add(validated(profile))
    db.set_setting(SEEDED, "1")


def validated(profile: Profile) -> Profile:
    """The profile with its name, config and devices checked and normalised (the name is
    a key: a project's own profiles are "<project>/<name>", lxmgr.model.project)."""
    validate_profile_name(profile_parts(profile.name)[1])
    return Profile(profile.name, profile.description,
                   cfgmod.validate_config(profile.config), validate_devices(profile.devices))


def used_by(db: Database, name: str) -> list[str]:
    """Instances (stored names) whose profile list names this profile (key)."""
    return [spec.name for spec in db.instance_specs() if name in spec.profiles]


def check_deletable(db: Database, name: str) -> None:
    if profile_parts(name)[1] == "default":
        raise Forbidden("The 'default' profile cannot be deleted")
    db.profile_get(name)
    users = [display(u) for u in used_by(db, name)]
    if users:
        raise InvalidState(f"Profile '{name}' is currently in use by {', '.join(users)}")


def check_rename(db: Database, old: str, new: str) -> None:
    if profile_parts(old)[1] == "default":
        raise Forbidden("The 'default' profile cannot be renamed")
    if profile_parts(old)[0] != profile_parts(new)[0]:
        raise InvalidConfig("A profile cannot move to another project")
    validate_profile_name(profile_parts(new)[1])
    if new in db.profile_names():
        raise Conflict(f"Profile '{new}' already exists")
    if not new:
        raise InvalidConfig("Missing new profile name")
