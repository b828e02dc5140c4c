"""PURE server configuration (LXD's `lxc config set KEY VALUE` without an instance): which
keys exist, their validators and defaults. Imports only lxmgr.errors and lxmgr.model."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from lxmgr.errors import InvalidConfig
from lxmgr.model import validate as v
from lxmgr.model.config import Key, to_config_value

DEFAULT_HTTPS_PORT = 8443


def parse_listen_address(value: str) -> tuple[str, int]:
    """`:8443`, `127.0.0.1:8443`, `[::]:8443`, `host` (port 8443) -> (host, port); an empty
    host means every address. InvalidConfig for anything else."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.%a-z]+)\](?::(\d+))?|([^:\[\]]*)(?::(\d+))?", value)
    if not match or value == "":
        raise InvalidConfig(f"Invalid listen address '{value}': expected HOST:PORT")
    host = match.group(1) or match.group(3) or ""
    port = int(match.group(2) or match.group(4) or DEFAULT_HTTPS_PORT)
    if match.group(1):
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise InvalidConfig(f"Invalid IPv6 address '{host}'") from None
    elif host and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host):
        raise InvalidConfig(f"Invalid listen host '{host}'")
    if not 1 <= port <= 65535:
        raise InvalidConfig(f"Invalid port {port}: out of range [1, 65535]")
    return host, port


def is_listen_address(value: str) -> None:
    """A HOST:PORT to listen on (see parse_listen_address)."""
    parse_listen_address(value)


_KEYS = [
    Key("core.https_address", v.optional(is_listen_address), None, True,
        "Address to serve the API over HTTPS on (`:8443`, `127.0.0.1:8443`, `[::]:8443`)"),
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
            raise InvalidConfig(f"Unknown server config key '{name}'"
                                f"{v.did_you_mean(str(name), SERVER_KEYS)}")
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
