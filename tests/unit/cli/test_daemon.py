"""`lxmgr daemon` without a daemon: status, stop with no pid file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from lxmgr.cli.commands import daemon


def test_paths_follow_lxmgr_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    assert daemon.pid_file() == tmp_path / "lxmgrd.pid"
    assert daemon.log_file() == tmp_path / "logs" / "lxmgrd.log"
    assert daemon.daemon_argv()[1:] == ["-m", "lxmgr.daemon"]


def test_status_and_stop_when_stopped(run: Callable[..., Result], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path))
    (tmp_path / "lxmgrd.pid").write_text("999999999\n")  # stale
    assert run("daemon", "status").output == "stopped\n"
    result = run("daemon", "stop")
    assert result.exit_code == 0 and result.output == "lxmgrd is not running\n"
    assert not (tmp_path / "lxmgrd.pid").exists()
