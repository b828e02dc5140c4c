"""Storage pool config validation: keys per driver, a close key suggested for a typo."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.instances.pools import validate_pool_config


def test_known_keys_are_kept_as_strings() -> None:
    assert validate_pool_config("btrfs", {"size": "1GiB", "source": "/srv/p"}) == {
        "size": "1GiB", "source": "/srv/p"}


@pytest.mark.parametrize(("driver", "key", "said"), [
    ("btrfs", "btrfs.mount_option", ": did you mean 'btrfs.mount_options'?"),
    ("dir", "sourc", ": did you mean 'source'?"),
    ("dir", "size", ""),  # btrfs's key, nothing close for dir
])
def test_unknown_key_is_refused_with_a_close_one(driver: str, key: str, said: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        validate_pool_config(driver, {key: "x"})
    assert str(err.value) == (f"Invalid storage pool config key '{key}' for driver "
                              f"'{driver}'{said}")
