"""The parsers units.py gained for the config model: booleans and bit rates."""

from __future__ import annotations

import pytest

from lxmgr.errors import InvalidConfig
from lxmgr.model.units import parse_bit_rate, parse_bool


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("True", True), ("1", True), ("yes", True), ("on", True),
    ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False),
])
def test_parse_bool(value: str, expected: bool) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["", "2", "y", "enabled"])
def test_parse_bool_rejects(value: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid boolean"):
        parse_bool(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("100Mbit", 100_000_000), ("1Gbit", 10**9), ("10kbit", 10_000), ("1Mibit", 2**20),
    ("1.5Mbit", 1_500_000), ("8bit", 8),
])
def test_parse_bit_rate(value: str, expected: int) -> None:
    assert parse_bit_rate(value) == expected


@pytest.mark.parametrize("value", ["100", "100MB", "Mbit", "-1Mbit"])
def test_parse_bit_rate_rejects(value: str) -> None:
    with pytest.raises(InvalidConfig, match="Invalid bit rate"):
        parse_bit_rate(value)
