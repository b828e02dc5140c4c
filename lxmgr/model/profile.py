"""Profiles: the Profile type and its LXD-compatible YAML form (parse, dump, load a directory).

Owns the YAML edge of the model: pyyaml is imported here only, and load_profiles_dir() is
the model's one I/O function (it reads *.yaml). Must not import any lxmgr layer but
lxmgr.errors and lxmgr.model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lxmgr.errors import InvalidConfig, NotFound
from lxmgr.model.config import validate_config
from lxmgr.model.devices import validate_devices
from lxmgr.model.validate import did_you_mean

# Fields `lxc profile show` prints that are server state, not profile content: ignored.
_IGNORED_FIELDS = frozenset({"used_by", "project"})
_FIELDS = frozenset({"name", "description", "config", "devices"})
_PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")


@dataclass
class Profile:
    """A named, reusable set of config keys and devices."""

    name: str
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The LXD wire/YAML form."""
        return {
            "name": self.name,
            "description": self.description,
            "config": dict(self.config),
            "devices": {name: dict(dev) for name, dev in self.devices.items()},
        }


def validate_profile_name(name: str) -> None:
    """1-63 letters, digits, '_', '.' or '-', not starting with '.' or '-'."""
    if not _PROFILE_NAME_RE.fullmatch(name):
        raise InvalidConfig(f"Invalid profile name '{name}'")


def build_profile(data: object, name_hint: str | None = None) -> Profile:
    """A validated Profile from an already-decoded mapping (YAML or JSON)."""
    if not isinstance(data, dict):
        raise InvalidConfig("Profile must be a mapping with name, description, config, devices")
    for key in data:
        if key not in _FIELDS and key not in _IGNORED_FIELDS:
            raise InvalidConfig(f"Unknown profile field '{key}'"
                                f"{did_you_mean(str(key), _FIELDS)}")
    name = data.get("name", name_hint)
    if not isinstance(name, str):
        raise InvalidConfig("Profile has no name")
    if name_hint is not None and name != name_hint:
        raise InvalidConfig(f"Profile name '{name}' does not match '{name_hint}'")
    validate_profile_name(name)
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise InvalidConfig(f"Invalid profile '{name}': description must be a string")
    config = data.get("config") or {}
    devices = data.get("devices") or {}
    if not isinstance(config, dict) or not isinstance(devices, dict):
        raise InvalidConfig(f"Invalid profile '{name}': config and devices must be mappings")
    return Profile(name, description, validate_config(config), validate_devices(devices))


def _yaml_reason(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if mark is not None and problem:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def parse_profile(text: str, name_hint: str | None = None, *, source: str | None = None) -> Profile:
    """Parse and validate LXD profile YAML; errors are one line naming source (or the name)."""
    if source is not None:
        label = f"profile file '{source}'"
    else:
        label = f"profile '{name_hint}'" if name_hint else "profile"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidConfig(f"Invalid YAML in {label}: {_yaml_reason(err)}") from err
    if data is None:  # an empty document is an empty profile
        data = {}
    try:
        return build_profile(data, name_hint)
    except InvalidConfig as err:
        if source is None:
            raise
        raise InvalidConfig(f"Invalid {label}: {err}") from err


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (cloud-init data, syscall lists) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_profile(profile: Profile) -> str:
    """LXD-style YAML for a profile (name, description, config, devices)."""
    return yaml.dump(profile.to_dict(), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True)


def load_profiles_dir(path: str | os.PathLike[str]) -> dict[str, Profile]:
    """Read every *.yaml in a directory; the file stem is the profile name."""
    directory = Path(path)
    if not directory.is_dir():
        raise NotFound(f"Profile directory '{directory}' does not exist")
    profiles: dict[str, Profile] = {}
    for file in sorted(directory.glob("*.yaml")):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidConfig(f"Failed to read profile file '{file}': {err}") from err
        profiles[file.stem] = parse_profile(text, file.stem, source=str(file))
    return profiles
