"""The supervisor's state.json is a cache of its GET_STATE answer: when it cannot be written
(a full disk) the stale file goes, so readers ask the supervisor, and the command that
changed the state does not fail for it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from lxmgr.supervisor.monitor import Monitor


def _monitor(state_file: Path, status: str) -> SimpleNamespace:
    return SimpleNamespace(cfg=SimpleNamespace(state_file=str(state_file)),
                           state=lambda: {"status": status})


def test_state_written(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    Monitor._write_state(_monitor(path, "Frozen"))  # type: ignore[arg-type]
    assert json.loads(path.read_text()) == {"status": "Frozen"}


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_unwritable_state_removes_the_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"status": "Running"}))
    # state.json.tmp -> /dev/full: every write fails with ENOSPC, as on a full disk.
    os.symlink("/dev/full", tmp_path / "state.json.tmp")
    Monitor._write_state(_monitor(path, "Frozen"))  # type: ignore[arg-type]
    assert not path.exists()
