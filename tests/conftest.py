"""Test tiers (see README): unit by default; kernel and system tests need root, else skip."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.iter_markers(name=m) for m in ("kernel", "system")):
            item.add_marker(pytest.mark.unit)
        elif os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root"))
