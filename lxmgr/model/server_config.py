"""PURE server configuration (LXD's `lxc config set KEY VALUE` without an instance): which
keys exist, their validators and defaults. Imports only lxmgr.errors and lxmgr.model."""

from __future__ import annotations

from collections.abc import Mapping

from lxmgr.errors import InvalidConfig
from lxmgr.model import validate as v
from lxmgr.model.config import Key, to_config_value

_KEYS = [
    Key("images.auto_update_interval", v.optional(v.is_int_range(0, 24 * 365)), "6", True,
        "Hours between checks for newer builds of images from servers (0: never)"),
    Key("images.auto_update_cached", v.optional(v.is_bool), "true", True,
        "Keep images pulled for a launch (cached ones) up to date"),
    Key("images.remote_cache_expiry", v.optional(v.is_int_range(0, 36500)), "10", True,
        "Days an unused cached image is kept (0: forever)"),
]
SERVER_KEYS: dict[str, Key] = {key.name: key for key in _KEYS}


def validate_server_config(config: Mapping[str, object]) -> dict[str, str]:
    """The config normalised to strings; InvalidConfig names an unknown key or bad value."""
    out = {}
    for name in sorted(config):
        key = SERVER_KEYS.get(str(name))
        if key is None:
            raise InvalidConfig(f"Unknown server config key '{name}'")
        value = to_config_value(config[name])
        try:
            key.validator(value)
        except InvalidConfig as err:
            raise InvalidConfig(f"Invalid value for server config key '{name}': {err}") \
                from None
        out[str(name)] = value
    return out


def server_value(config: Mapping[str, str], name: str) -> str:
    """A key's value, or its default."""
    return config.get(name) or SERVER_KEYS[name].default or ""
