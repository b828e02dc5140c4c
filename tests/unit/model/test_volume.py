"""Custom volume rules: names, config keys (size, user.*), "vol/snap" references."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.volume import split_volume_ref, validate_volume_config, validate_volume_name


@pytest.mark.parametrize("name", ["data", "d", "web-1.cache_2", "a" * 63])
def test_good_names(name: str) -> None:
    assert validate_volume_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "-x", "a/b", "a b", "a\n",
                                  "a" * 64, 5, None])
def test_bad_names(name: object) -> None:
    with pytest.raises(InvalidConfig, match=r"^Invalid volume name '"):
        validate_volume_name(name)


def test_config_keys_are_strings_and_user_keys_pass() -> None:
    assert validate_volume_config({"size": "1GiB", "user.n": 3, "user.b": True}) == {
        "size": "1GiB", "user.n": "3", "user.b": "true"}
    assert validate_volume_config({"size": ""}) == {}  # an empty value unsets the key


@pytest.mark.parametrize("config,message", [
    ({"sizes": "1GiB"}, r"^Invalid volume config key 'sizes': did you mean 'size'\?$"),
    ({"security.shifted": "true"}, r"^Invalid volume config key 'security.shifted'$"),
    ({"size": "big"}, r"^Invalid value for volume key 'size': "),
    ({"size": ["1"]}, r"Expected a string"),
])
def test_bad_config(config: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        validate_volume_config(config)


def test_refs() -> None:
    assert split_volume_ref("data") == ("data", None)
    assert split_volume_ref("data/snap0") == ("data", "snap0")
    for bad in ("data/", "data/a/b"):
        with pytest.raises(InvalidConfig, match="Invalid volume snapshot reference"):
            split_volume_ref(bad)
