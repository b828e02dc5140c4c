"""base: the driver registry, load() and the checked file writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxmgr.cgroups import DRIVERS, load
from lxmgr.cgroups.base import read_keyed, write_file
from lxmgr.cgroups.v1 import V1Driver
from lxmgr.cgroups.v2 import V2Driver
from lxmgr.errors import KernelError, NotSupported, UnknownDriver
from tests.unit.cgroups.conftest import FakeCgroupFs, v1_layout, v2_layout


def test_registry() -> None:
    assert DRIVERS == {"v1": V1Driver, "v2": V2Driver}


def test_load_by_layout_and_name(fakefs: FakeCgroupFs) -> None:
    hybrid = v1_layout(fakefs)
    drv = load(hybrid, "b")
    assert isinstance(drv, V1Driver) and drv.base == "b"
    assert isinstance(load("v2", "b", hybrid), V2Driver)  # the controller-less unified tree


def test_load_unknown() -> None:
    with pytest.raises(UnknownDriver, match="'v3'"):
        load("v3")


def test_v1_needs_controllers(fakefs: FakeCgroupFs) -> None:
    with pytest.raises(NotSupported):
        load("v1", "b", v2_layout(fakefs))


def test_write_file_reports_path(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("")
    assert write_file(str(target), "5") and target.read_text() == "5"
    assert not write_file(str(tmp_path / "missing"), "1", missing_ok=True)
    with pytest.raises(KernelError, match="missing"):
        write_file(str(tmp_path / "missing"), "1")
    with pytest.raises(KernelError, match="/dev/full"):
        write_file("/dev/full", "1")


def test_read_keyed(tmp_path: Path) -> None:
    (tmp_path / "events").write_text("populated 1\nfrozen 0\n")
    assert read_keyed(str(tmp_path / "events")) == {"populated": "1", "frozen": "0"}
    assert read_keyed(str(tmp_path / "none")) == {}
