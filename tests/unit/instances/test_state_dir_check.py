"""Containers must reach their rootfs: the state dir is made searchable, a parent that is
not is named with its fix."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from lxmgr.instances.host import _check_state_dir


def test_own_dir_gets_0711_and_a_closed_parent_is_named(monkeypatch: pytest.MonkeyPatch) \
        -> None:
    with tempfile.TemporaryDirectory(prefix="lxmgr-statedir-") as top:
        os.chmod(top, 0o755)  # pytest's own tmp_path is 0700
        _check(Path(top), monkeypatch)


def _check(top: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = top / "closed"
    state = parent / "lxmgr"
    state.mkdir(parents=True)
    state.chmod(0o700)
    parent.chmod(0o755)
    monkeypatch.setenv("LXMGR_DIR", str(state))
    assert _check_state_dir(fix=True).ok
    assert state.stat().st_mode & 0o777 == 0o711
    parent.chmod(0o700)
    check = _check_state_dir(fix=True)
    assert not check.ok and check.fix == f"chmod o+x {parent}"
    assert "not searchable by others (mode 0o700)" in check.detail
    assert parent.stat().st_mode & 0o777 == 0o700  # someone else's: never changed
    os.chmod(parent, 0o755)
