"""PURE rules of LXD projects: names, the config key registry, defaults and feature changes.

A project groups instances, and (per `features.*`) its own images, profiles, custom storage
volumes and networks; what a feature leaves off is shared with the `default` project
(LXD 5.0 doc/projects.md, lxd/project/project.go). The registry mirrors LXD 5.0's
projectValidateConfig (lxd/api_project.go): keys lxmgr applies are validated and stored;
keys LXD has but lxmgr does not apply yet are refused with NotSupported naming them, never
stored and silently ignored. Imports only lxmgr.errors, lxmgr.model.validate and .units
(and urllib.parse).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from lxmgr.errors import InvalidConfig, NotSupported
from lxmgr.model import project_limits, validate
from lxmgr.model.units import parse_bool

DEFAULT = "default"
DEFAULT_DESCRIPTION = "Default LXD project"

# The four features of LXD 5.0 (lxd/api_project.go projectFeatures).
FEATURES = ("features.images", "features.profiles", "features.storage.volumes",
            "features.networks")
# What POST /1.0/projects sets when the request leaves a feature out: LXD 5.0's
# projectFeaturesDefaults (images, profiles, storage.volumes on; networks off).
FEATURE_DEFAULTS = {"features.images": "true", "features.profiles": "true",
                    "features.storage.volumes": "true"}

# Keys lxmgr applies. features.* decide where a project's objects live; they are fixed at
# creation (or while the project is empty), which is all a feature needs to be honoured.
KEYS: dict[str, validate.Validator] = {
    **{key: validate.optional(validate.is_bool) for key in FEATURES},
    # limits.* and restricted* (lxmgr.model.project_limits, applied by
    # lxmgr.instances.project_limits on every create, copy, import and update).
    **project_limits.KEYS,
}

# Keys of LXD 5.0's registry that lxmgr does not apply yet: refused by name.
NOT_IMPLEMENTED = (
    "backups.compression_algorithm", "images.auto_update_cached",
    "images.auto_update_interval", "images.compression_algorithm",
    "images.default_architecture", "images.remote_cache_expiry",
    "limits.virtual-machines", "limits.networks",
    "restricted.backups", "restricted.snapshots", "restricted.cluster.target",
    "restricted.networks.uplinks", "restricted.networks.subnets", "restricted.networks.zones",
    "restricted.devices.pci", "restricted.devices.proxy",
)
NOT_IMPLEMENTED_PREFIXES = ("restricted.virtual-machines.",)

# LXD 5.0 projectValidateName: characters that break URLs or shell quoting.
_NAME_RULES = (("/", "Project names may not contain slashes"),
               (" ", "Project names may not contain spaces"),
               ("'", "Project names may not contain quotes"),
               ('"', "Project names may not contain quotes"))


# Stricter than LXD, which takes any other character: a project's name becomes part of its
# instances' stored names, so of paths, cgroup names and DNS names.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_name(name: str) -> None:
    """InvalidConfig unless name is a valid project name (LXD's projectValidateName, and
    1-63 letters, digits, '_', '.' or '-', starting with a letter or digit)."""
    if not name:
        raise InvalidConfig("No name provided")
    for char, message in _NAME_RULES:
        if char in name:
            raise InvalidConfig(message)
    if name == "*":
        raise InvalidConfig("Reserved project name")
    if name in (".", ".."):
        raise InvalidConfig(f"Invalid project name '{name}'")
    if not _NAME_RE.fullmatch(name):
        raise InvalidConfig(f"Invalid project name '{name}': use 1-63 letters, digits, '_', "
                            "'.' or '-', starting with a letter or digit")


def validate_config(config: Mapping[str, str]) -> None:
    """InvalidConfig for unknown keys or bad values, NotSupported for LXD keys lxmgr does
    not apply yet; `user.*` keys are free, as in LXD."""
    pending = sorted(key for key in config
                     if key in NOT_IMPLEMENTED or key.startswith(NOT_IMPLEMENTED_PREFIXES))
    if pending:
        raise NotSupported(f"Project configuration keys not supported yet: {', '.join(pending)}")
    for key, value in config.items():
        if not isinstance(value, str):
            raise InvalidConfig(f"Invalid project configuration key '{key}' value: "
                                "expected a string")
        if key.startswith("user."):
            continue
        validator = KEYS.get(key)
        if validator is None:
            raise InvalidConfig(f"Invalid project configuration key '{key}'"
                                + validate.did_you_mean(key, KEYS))
        try:
            validator(value)
        except (InvalidConfig, ValueError) as err:
            raise InvalidConfig(f"Invalid project configuration key '{key}' value: {err}") \
                from None


def create_config(config: Mapping[str, str]) -> dict[str, str]:
    """A new project's config: the request's, with LXD's default features where unset."""
    validate_config(config)
    return {**{k: v for k, v in FEATURE_DEFAULTS.items() if k not in config}, **config}


def default_config() -> dict[str, str]:
    """The default project's config: every feature on (LXD's default project owns the
    server's images, profiles, volumes and networks)."""
    return {key: "true" for key in FEATURES}


def has_feature(config: Mapping[str, str], feature: str) -> bool:
    """Whether a project with this config owns its own objects of `feature`."""
    value = config.get(feature, "")
    return bool(value) and parse_bool(value)


def changed_keys(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Keys whose value differs between two configs (absent counts as a change)."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def check_update(name: str, old: Mapping[str, str], new: Mapping[str, str],
                 empty: bool) -> None:
    """The rules of LXD 5.0's projectChange: features of the default project never change,
    those of another project only while it is empty; then the new config is validated."""
    features = [k for k in changed_keys(old, new) if k in FEATURES]
    if features and name == DEFAULT:
        raise InvalidConfig("You can't change the features of the default project")
    if features and not empty:
        raise InvalidConfig("Features can only be changed on empty projects")
    validate_config(new)


# -- where a project's objects live ----------------------------------------------------------

# LXD prefixes the names of a non-default project's instances with "<project>_" wherever
# they are keyed by one name (on disk, cgroups, the database), and leaves `default`'s alone
# (lxd/project/project.go Instance, InstanceParts). Instance names cannot contain "_"
# (lxmgr.model.instance), so the last "_" splits the two even when a project name has one.
SEPARATOR = "_"


def storage_name(project: str, instance: str) -> str:
    """The name an instance of `project` is stored under: unchanged in `default`."""
    return instance if project in ("", DEFAULT) else f"{project}{SEPARATOR}{instance}"


def storage_parts(stored: str) -> tuple[str, str]:
    """(project, instance) of a storage_name() result."""
    project, sep, instance = stored.rpartition(SEPARATOR)
    return (project, instance) if sep else (DEFAULT, stored)


def display(stored: str) -> str:
    """The name a client knows a stored instance by (without its project)."""
    return storage_parts(stored)[1]


def owner(project: str, config: Mapping[str, str], feature: str) -> str:
    """The project whose objects of `feature` a project uses: its own when the feature is
    on, else `default`'s (LXD's ProfileProjectFromRecord, NetworkProjectFromRecord,
    StorageVolumeProjectFromRecord; images alike)."""
    if feature not in FEATURES:
        raise ValueError(f"Unknown project feature '{feature}'")
    return project if project == DEFAULT or has_feature(config, feature) else DEFAULT


# Profiles are keyed by one name in the state database: a project's own profiles as
# "<project>/<profile>", default's unchanged. Neither a profile name nor a project name may
# contain "/" (lxmgr.model.profile, validate_name above), so the key is never ambiguous.
PROFILE_SEPARATOR = "/"
VOLUME_SEPARATOR = "+"  # a project's own custom volumes (lxmgr.model.volume.volume_key)


def join_key(owner_project: str, name: str, separator: str) -> str:
    """The key of object `name` of the project that owns such objects: "<project>
    <separator><name>", `name` alone in default. The separator is in no project name."""
    return name if owner_project in ("", DEFAULT) else f"{owner_project}{separator}{name}"


def split_key(key: str, separator: str) -> tuple[str, str]:
    """(owner project, name) of a join_key() result."""
    project, sep, name = key.partition(separator)
    return (project, name) if sep else (DEFAULT, key)


def check_key_project(project: str, key: str, what: str) -> None:
    """InvalidConfig naming the whole key when its project part is no project name."""
    if project != DEFAULT:
        try:
            validate_name(project)
        except InvalidConfig:
            raise InvalidConfig(f"Invalid {what} name '{key}'") from None


def profile_key(owner_project: str, profile: str) -> str:
    """The key of `profile` of the project that owns the profiles (see owner())."""
    return join_key(owner_project, profile, PROFILE_SEPARATOR)


def profile_parts(key: str) -> tuple[str, str]:
    """(owner project, profile name) of a profile_key() result."""
    return split_key(key, PROFILE_SEPARATOR)


_DNS_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


def dns_name(stored: str) -> str | None:
    """The DNS name of an instance: its name in `default`, "<name>.<project>" elsewhere
    (LXD's project.DNS, used for the dnsmasq host entries); None when the project's name
    is no DNS label (project names may hold characters DNS names may not)."""
    project, instance = storage_parts(stored)
    if project == DEFAULT:
        return instance
    return f"{instance}.{project}" if _DNS_LABEL.fullmatch(project) else None


def shown(project: str, message: str) -> str:
    """A message as a client of `project` reads it: stored names ("<project>_web",
    "<project>/small") back to the names the client gave, where quoted."""
    if project in ("", DEFAULT):
        return message
    for separator in (SEPARATOR, PROFILE_SEPARATOR, VOLUME_SEPARATOR):
        message = message.replace(f"'{project}{separator}", "'")
    return message


def url_suffix(project: str) -> str:
    """The query string LXD appends to an object's URL outside `default` (lxd/shared/api
    URL.Project: `?project=NAME`, nothing for default)."""
    return "" if project in ("", DEFAULT) else f"?project={quote(project, safe='')}"


def profile_url(key: str) -> str:
    """/1.0/profiles/NAME[?project=P] of a profile key."""
    project, name = profile_parts(key)
    return f"/1.0/profiles/{name}{url_suffix(project)}"


def instance_url(stored: str, tail: str = "") -> str:
    """/1.0/instances/NAME[tail][?project=P] of a stored instance name."""
    project, instance = storage_parts(stored)
    return f"/1.0/instances/{instance}{tail}{url_suffix(project)}"
