"""linux.kernel_modules values: comma-separated module names, spaces around them ignored."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model import validate as v


@pytest.mark.parametrize("value,names", [
    ("", []), ("  ", []), ("overlay", ["overlay"]),
    ("overlay,br_netfilter", ["overlay", "br_netfilter"]),
    (" nf-nat , ip_tables", ["nf-nat", "ip_tables"]), ("x" * 55, ["x" * 55]),
])
def test_valid(value: str, names: list[str]) -> None:
    assert v.parse_kernel_modules(value) == names
    v.is_kernel_module_list(value)


@pytest.mark.parametrize("value,culprit", [
    ("-r", "-r"), ("overlay,,x", ""), ("a b", "a b"), ("../evil", "../evil"),
    ("over;lay", "over;lay"), ("x" * 56, "x" * 56), ("ov\nerlay", "ov\nerlay"),
])
def test_invalid(value: str, culprit: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        v.is_kernel_module_list(value)
    assert str(err.value).startswith(f"Invalid kernel module name '{culprit}'")
