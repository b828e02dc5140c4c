"""core.https_address: HOST:PORT forms LXD accepts, and what is refused."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.server_config import parse_listen_address, validate_server_config


@pytest.mark.parametrize(("value", "expected"), [
    (":8443", ("", 8443)), ("127.0.0.1:9000", ("127.0.0.1", 9000)), ("[::]:8443", ("::", 8443)),
    ("[::1]", ("::1", 8443)), ("lxd.example.org", ("lxd.example.org", 8443)),
])
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(value) == expected


@pytest.mark.parametrize("value", [":", ":0", "host:70000", "a:b", "[zz]:1", "a b:1", "::1"])
def test_bad_listen_addresses(value: str) -> None:
    with pytest.raises(InvalidConfig):
        parse_listen_address(value)


def test_server_config_key() -> None:
    assert validate_server_config({"core.https_address": ":8443"}) == {
        "core.https_address": ":8443"}
    assert validate_server_config({"core.https_address": ""}) == {"core.https_address": ""}
    with pytest.raises(InvalidConfig, match="core.https_address"):
        validate_server_config({"core.https_address": "x:y"})
