"""$LXMGR_DEFAULT_NETWORK: what a fresh daemon creates (lxmgrbr0 as shipped, none, or a test
daemon's own hermetic bridge)."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.instances.networks import DEFAULT_CONFIG, parse_default_network


def test_unset_is_the_shipped_lxmgrbr0() -> None:
    assert parse_default_network(None) == ("lxmgrbr0", DEFAULT_CONFIG)
    assert parse_default_network("") == ("lxmgrbr0", DEFAULT_CONFIG)


def test_none_creates_nothing() -> None:
    assert parse_default_network("none") is None


def test_a_name_and_overrides() -> None:
    name, config = parse_default_network("lxt0ab1 ipv4.nat=false dns.upstream=none")  # type: ignore[misc]
    assert name == "lxt0ab1"
    assert config == {**DEFAULT_CONFIG, "ipv4.nat": "false", "dns.upstream": "none"}


@pytest.mark.parametrize(("text", "culprit"), [
    ("lxt0 ipv4.nat", "'ipv4.nat': expected KEY=VALUE"),
    ("lxt0 ipv4.nta=false", "'ipv4.nta'"),
    ("lxt0 ipv4.nat=maybe", "ipv4.nat"),
    ("-bad", "'-bad'"),
])
def test_bad_settings_name_the_culprit(text: str, culprit: str) -> None:
    with pytest.raises(InvalidConfig, match="LXMGR_DEFAULT_NETWORK|network name") as caught:
        parse_default_network(text)
    assert culprit in str(caught.value)
