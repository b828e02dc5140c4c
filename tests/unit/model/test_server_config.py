"""Server config keys (lxc config set KEY VALUE without an instance)."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.server_config import server_value, validate_server_config


def test_keys_and_defaults() -> None:
    assert validate_server_config({"images.auto_update_interval": 12,
                                   "images.auto_update_cached": False}) == {
        "images.auto_update_cached": "false", "images.auto_update_interval": "12"}
    assert server_value({}, "images.auto_update_interval") == "6"
    assert server_value({}, "images.remote_cache_expiry") == "10"


@pytest.mark.parametrize("config,message", [
    ({"core.bogus": "1"}, "^Unknown server config key 'core.bogus'$"),
    ({"core.http_address": ":8443"}, "^Unknown server config key 'core.http_address': did "
                                      "you mean 'core.https_address'\\?$"),
    ({"images.auto_update_interval": "soon"}, "images.auto_update_interval"),
    ({"images.auto_update_cached": "maybe"}, "images.auto_update_cached"),
    ({"images.remote_cache_expiry": "-1"}, "images.remote_cache_expiry"),
])
def test_bad_values(config: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        validate_server_config(config)
