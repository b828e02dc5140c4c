"""Profile changes as a service (LXD's /1.0/profiles, lxd/profiles.go and profiles_utils.go):
create, replace, merge, rename and delete a profile, each announced once as LXD's
profile-* lifecycle event (lxd/lifecycle/profile.go) by the service that made it.

A replaced profile must leave every instance using it valid (config keys, idmap and
raw.idmap changes, the project's limits), and its live keys reach the running users at once,
each under that instance's lock, as LXD's doProfileUpdate updates every instance using it.
A rename rewrites the users' profile lists under their locks, so an instance update running
meanwhile cannot save its old list over it.

Keys: a project with features.profiles has its own profiles, stored as "<project>/<name>"
(lxmgr.model.project); the events name the profile without its project, in the project of
the request being served (EventBus.changed). Synchronous: the daemon calls it from worker
threads. Imports nothing from the daemon.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from lxmgr.errors import NotFound
from lxmgr.instances import profiles as profiles_mod
from lxmgr.instances.db import Database
from lxmgr.instances.events import EventBus
from lxmgr.instances.locks import InstanceLocks
from lxmgr.model import config as cfgmod
from lxmgr.model.instance import InstanceSpec
from lxmgr.model.profile import Profile
from lxmgr.model.project import profile_parts

log = logging.getLogger(__name__)
Config = dict[str, str]
Devices = dict[str, dict[str, str]]
# Manager.expanded: an instance's effective config and devices (NotFound: a missing profile)
Expand = Callable[[InstanceSpec], tuple[Config, Devices]]
# a check of an instance's effective config going from old to new (idmap, raw.idmap)
CheckChange = Callable[[InstanceSpec, Config, Config], None]


class ProfileService:
    """The profiles in db and the changes to them.

    events announces each change; locks are the instances' locks (a live update and a
    rename hold the users'); expanded resolves an instance's effective config;
    check_limits refuses a profile breaking its projects' limits or restrictions
    (lxmgr.instances.project_limits.check_profile); check_change refuses an effective
    config change an instance cannot follow; apply_live pushes the live keys of an
    effective config to an instance if it runs (Manager.apply_live)."""

    def __init__(self, db: Database, events: EventBus, locks: InstanceLocks, *,
                 expanded: Expand, check_limits: Callable[[Profile], None],
                 check_change: CheckChange,
                 apply_live: Callable[[str, Config], None]) -> None:
        self.db = db
        self.events = events
        self.locks = locks
        self.expanded = expanded
        self.check_limits = check_limits
        self.check_change = check_change
        self.apply_live = apply_live
        # one profile change at a time: a rename or delete cannot cross an update's checks
        self._lock = threading.RLock()

    # -- reads -------------------------------------------------------------------------------

    def all(self) -> dict[str, Profile]:
        """Every profile by key (of every project)."""
        return self.db.profiles()

    def get(self, key: str) -> Profile:
        return self.db.profile_get(key)

    def used_by(self, key: str) -> list[str]:
        """Stored names of the instances whose profile list names the profile."""
        return profiles_mod.used_by(self.db, key)

    # -- changes -----------------------------------------------------------------------------

    def create(self, profile: Profile) -> None:
        profile = profiles_mod.validated(profile)
        with self._lock:
            self.check_limits(profile)
            self.db.profile_add(profile)
        self._announce("profile-created", profile.name)

    def update(self, profile: Profile) -> None:
        """Replace a profile (LXD's PUT); every instance using it must stay valid, and the
        running ones get the live keys at once."""
        profile = profiles_mod.validated(profile)
        with self._lock:
            self.db.profile_get(profile.name)
            self.check_limits(profile)
            users = [self.db.instance_get(n) for n in self.used_by(profile.name)]
            known = self.db.profiles() | {profile.name: profile}
            for spec in users:
                expanded, _ = cfgmod.expand([known[p] for p in spec.profiles], spec.config,
                                            spec.devices)
                cfgmod.validate_config(expanded, allow_volatile=True)
                self.check_change(spec, self.expanded(spec)[0], expanded)
            self.db.profile_save(profile)
        self._announce("profile-updated", profile.name)
        for spec in users:
            self._apply_live(spec.name)

    def patch(self, key: str, description: str | None, config: dict[str, Any],
              devices: dict[str, Any]) -> None:
        """Merge into a profile (LXD's PATCH): the given keys and devices replace theirs."""
        with self._lock:
            old = self.db.profile_get(key)
            self.update(Profile(key, old.description if description is None else description,
                                {**old.config, **config}, {**old.devices, **devices}))

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            self.db.profile_get(old)
            profiles_mod.check_rename(self.db, old, new)
            names: list[str] = []
            while True:  # until no instance started using it before its lock was taken
                with self.locks.hold(*names):
                    users = self.used_by(old)
                    if set(users) <= set(names):
                        self.db.profile_rename(old, new,
                                               [self.db.instance_get(n) for n in users])
                        break
                names = users
        self._announce("profile-renamed", new, old_name=profile_parts(old)[1])

    def delete(self, key: str) -> None:
        with self._lock:
            profiles_mod.check_deletable(self.db, key)
            self.db.profile_remove(key)
        self._announce("profile-deleted", key)

    # -- helpers -----------------------------------------------------------------------------

    def _apply_live(self, name: str) -> None:
        """The live keys of instance name's effective config, under its lock (an instance
        deleted meanwhile has nothing to apply)."""
        with self.locks.hold(name):
            try:
                spec = self.db.instance_get(name)
            except NotFound:
                return
            self.apply_live(name, self.expanded(spec)[0])

    def _announce(self, action: str, key: str, **context: Any) -> None:
        self.events.changed("profiles", action, profile_parts(key)[1], **context)
