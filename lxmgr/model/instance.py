"""PURE instance types: name rules, generated names, LXD status codes and InstanceSpec.

Owns what an instance *is* (its stored definition), not its lifecycle. Must not import
anything but lxmgr.errors, other lxmgr.model modules and the stdlib; no I/O.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxmgr.errors import InvalidConfig
from lxmgr.model.project import DEFAULT, storage_parts
from lxmgr.model.project import validate_name as validate_project_name

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")


def validate_instance_name(name: str) -> None:
    """LXD's rule: 1-63 ASCII letters, digits or '-', starting with a letter, not ending in '-'."""
    if not isinstance(name, str) or not name:
        raise InvalidConfig("Invalid instance name '': must not be empty")
    if len(name) > 63:
        raise InvalidConfig(f"Invalid instance name '{name}': longer than 63 characters")
    if not _NAME_RE.fullmatch(name):
        raise InvalidConfig(f"Invalid instance name '{name}': use ASCII letters, digits and "
                            "hyphens, starting with a letter")
    if name.endswith("-"):
        raise InvalidConfig(f"Invalid instance name '{name}': must not end with a hyphen")


def validate_stored_name(name: str) -> None:
    """The name an instance is stored under: a valid instance name, prefixed with
    "<project>_" outside the default project (lxmgr.model.project.storage_name)."""
    project, instance = storage_parts(name) if isinstance(name, str) else ("", name)
    validate_instance_name(instance)
    if project != DEFAULT:
        validate_project_name(project)


_ADJECTIVES = (
    "able", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "daring", "eager",
    "fair", "fast", "fine", "fond", "free", "fresh", "gentle", "glad", "golden", "grand",
    "happy", "hardy", "honest", "humble", "jolly", "keen", "kind", "lively", "loyal", "lucky",
    "merry", "mighty", "modest", "neat", "noble", "patient", "polite", "proud", "quick",
    "quiet", "rapid", "ready", "sharp", "shiny", "smart", "steady", "sunny", "swift", "tidy",
    "upbeat", "vivid", "warm", "wise", "witty", "zesty",
)
_NOUNS = (
    "badger", "beaver", "bison", "bobcat", "condor", "coyote", "crane", "dingo", "dolphin",
    "eagle", "falcon", "ferret", "finch", "fox", "gecko", "gibbon", "heron", "ibex", "jackal",
    "jaguar", "koala", "lemur", "lynx", "magpie", "marmot", "marten", "mink", "moose",
    "narwhal", "ocelot", "osprey", "otter", "owl", "panda", "pelican", "puffin", "quail",
    "rabbit", "raven", "robin", "salmon", "seal", "shrew", "sparrow", "stoat", "swan", "tapir",
    "tiger", "toucan", "turtle", "walrus", "weasel", "wombat", "wren", "yak", "zebra",
)


def generate_name(rng: random.Random | None = None) -> str:
    """An LXD-like adjective-noun name such as 'brave-otter' (pass rng for determinism)."""
    chooser = rng or random.SystemRandom()
    return f"{chooser.choice(_ADJECTIVES)}-{chooser.choice(_NOUNS)}"


class InstanceStatus(enum.IntEnum):
    """LXD's shared/api StatusCode values, used for instances and operations alike."""

    OPERATION_CREATED = 100
    STARTED = 101
    STOPPED = 102
    RUNNING = 103
    CANCELLING = 104
    PENDING = 105
    STARTING = 106
    STOPPING = 107
    ABORTING = 108
    FREEZING = 109
    FROZEN = 110
    THAWED = 111
    ERROR = 112
    READY = 113
    SUCCESS = 200
    FAILURE = 400
    CANCELLED = 401

    def __str__(self) -> str:
        return _STATUS_NAMES[self]

    @property
    def label(self) -> str:
        """LXD's display name: 'Running', 'Operation created', ..."""
        return _STATUS_NAMES[self]

    @property
    def is_final(self) -> bool:
        """True for end states of an operation (Success, Failure, Cancelled)."""
        return self.value >= 200

    @classmethod
    def from_label(cls, label: str) -> InstanceStatus:
        """The status whose LXD display name is label; raise InvalidConfig otherwise."""
        for status, name in _STATUS_NAMES.items():
            if name == label:
                return status
        raise InvalidConfig(f"Unknown status '{label}'")


_STATUS_NAMES = {
    status: status.name.replace("_", " ").capitalize() for status in InstanceStatus
}


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise InvalidConfig(f"Invalid instance spec: missing '{key}'")
    if not isinstance(data[key], kind):
        raise InvalidConfig(f"Invalid instance spec: '{key}' has the wrong type")
    return data[key]


def _str_map(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidConfig(f"Invalid instance spec: {what} must map strings to strings")
    return dict(value)


@dataclass
class InstanceSpec:
    """An instance's stored definition: what to build it from and its own config and devices.

    config and devices are the instance's local values (before expand()); from_dict checks
    their shape only, the caller validates them with validate_config/validate_devices.
    """

    name: str
    image_fingerprint: str
    profiles: list[str] = field(default_factory=lambda: ["default"])
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    ephemeral: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    storage_driver: str = "dir"
    description: str = ""
    storage_pool: str = ""  # "" for instances made before named pools: the driver's own

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-safe dict (created_at as ISO 8601)."""
        return {
            "name": self.name,
            "description": self.description,
            "image_fingerprint": self.image_fingerprint,
            "profiles": list(self.profiles),
            "config": dict(self.config),
            "devices": {name: dict(dev) for name, dev in self.devices.items()},
            "ephemeral": self.ephemeral,
            "created_at": self.created_at.isoformat(),
            "storage_driver": self.storage_driver,
            "storage_pool": self.storage_pool,
        }

    @classmethod
    def from_dict(cls, data: object) -> InstanceSpec:
        """Rebuild a spec written by to_dict; raise InvalidConfig on a malformed one."""
        if not isinstance(data, dict):
            raise InvalidConfig("Invalid instance spec: not a mapping")
        name = _require(data, "name", str)
        validate_stored_name(name)
        profiles = _require(data, "profiles", list)
        if not all(isinstance(p, str) for p in profiles):
            raise InvalidConfig("Invalid instance spec: profiles must be strings")
        devices_raw = _require(data, "devices", dict)
        devices = {str(k): _str_map(dev, f"device '{k}'") for k, dev in devices_raw.items()}
        try:
            created_at = datetime.fromisoformat(_require(data, "created_at", str))
        except ValueError as err:
            raise InvalidConfig("Invalid instance spec: bad 'created_at'") from err
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        return cls(
            name=name,
            image_fingerprint=_require(data, "image_fingerprint", str),
            profiles=list(profiles),
            config=_str_map(_require(data, "config", dict), "config"),
            devices=devices,
            ephemeral=_require(data, "ephemeral", bool),
            created_at=created_at,
            storage_driver=_require(data, "storage_driver", str),
            description=str(data.get("description", "")),
            storage_pool=str(data.get("storage_pool", "")),
        )
