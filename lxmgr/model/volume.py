"""PURE custom storage volume rules: names, the config keys a volume takes, references.

A custom volume (LXD's /1.0/storage-pools/POOL/volumes/custom/NAME) is a filesystem in a
pool that disk devices mount into instances (`pool` + `source=NAME`); a project with
features.storage.volumes has its own (volume_key). Must not import anything but
lxmgr.errors, other lxmgr.model modules and the stdlib; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxmgr.errors import InvalidConfig
from lxmgr.model import validate as v
from lxmgr.model.config import to_config_value
from lxmgr.model.project import VOLUME_SEPARATOR, check_key_project, join_key, split_key

VOLUME_TYPE = "custom"  # the only type the volume API creates (LXD refuses the others too)
CONTENT_TYPE = "filesystem"  # block volumes are VM disks: not here
# Volume names are path components under the pool: LXD only forbids '/' (storage/utils.go
# ValidVolumeName); we also keep them to characters safe in paths and URLs.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# key -> validator; `size` needs a pool whose driver has quotas (checked with the pool).
VOLUME_KEYS: dict[str, v.Validator] = {
    "size": v.optional(v.is_size),
}


def validate_volume_name(name: object) -> str:
    """1-63 letters, digits, '_', '.' or '-', starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        shown = name if isinstance(name, str) else repr(name)
        raise InvalidConfig(f"Invalid volume name '{shown}': use 1-63 letters, digits, '_', "
                            "'.' or '-', starting with a letter or digit")
    return name


# A project's own volumes (features.storage.volumes) are stored as "<project>+<volume>":
# '+' is in neither a volume's nor a project's name (lxmgr.model.project.validate_name),
# so the key is never ambiguous and stays a safe path component. Default's keep their name.


def volume_key(project: str, name: str) -> str:
    """The key of volume `name` of the project that owns the volumes."""
    return join_key(project, name, VOLUME_SEPARATOR)


def volume_parts(key: str) -> tuple[str, str]:
    """(project, volume) of a volume_key() result (a snapshot's "vol/snap" too)."""
    return split_key(key, VOLUME_SEPARATOR)


def validate_stored_volume_name(key: object) -> str:
    """A volume key: a valid volume name, after "<project>+" for a project's own."""
    if not isinstance(key, str):
        return validate_volume_name(key)
    project, name = volume_parts(key)
    validate_volume_name(name)
    check_key_project(project, key, "volume")
    return key


def validate_volume_config(config: Mapping[str, object]) -> dict[str, str]:
    """The config as strings; unknown keys (user.* excepted) and bad values refused."""
    if not isinstance(config, Mapping):
        raise InvalidConfig("Invalid volume config: must be a mapping of keys to values")
    out: dict[str, str] = {}
    for key, raw in config.items():
        key = str(key)
        value = to_config_value(raw)
        if key.startswith("user."):
            out[key] = value
            continue
        if key not in VOLUME_KEYS:
            raise InvalidConfig(f"Invalid volume config key '{key}'"
                                f"{v.did_you_mean(key, VOLUME_KEYS)}")
        try:
            VOLUME_KEYS[key](value)
        except (InvalidConfig, ValueError) as err:
            raise InvalidConfig(f"Invalid value for volume key '{key}': {err}") from None
        if value:
            out[key] = value
    return out


def split_volume_ref(ref: str) -> tuple[str, str | None]:
    """'data/snap0' -> ('data', 'snap0'); 'data' -> ('data', None) (LXD's "vol/snap")."""
    volume, sep, snapshot = ref.partition("/")
    if sep and (not snapshot or "/" in snapshot):
        raise InvalidConfig(f"Invalid volume snapshot reference '{ref}'")
    return volume, snapshot if sep else None
