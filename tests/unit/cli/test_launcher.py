"""The `lxmgr` launcher: Python without site for the fast path, site loaded for click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lxmgr.cli import launcher

REPO = str(Path(__file__).resolve().parents[3])


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LXMGR_SOCKET": "/nonexistent/lxmgr-test.socket"}
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_written_launcher_runs_the_fast_path_without_site(tmp_path: Path) -> None:
    script = launcher.write(tmp_path / "lxmgr")
    assert script.stat().st_mode & 0o777 == 0o755
    text = script.read_text()
    assert text.startswith(f"#!{sys.executable} -SP\n")
    assert repr(REPO) in text
    result = _run(script, "list")
    assert result.returncode == 1
    assert result.stderr == ("Error: lxmgrd is not running (socket /nonexistent/lxmgr-test."
                             "socket): start it with `lxmgr daemon start`\n")
    # The same body under -X importtime: neither site nor click nor a .pth hook ran.
    trace = subprocess.run([sys.executable, "-S", "-X", "importtime", str(script), "list"],
                           env={**os.environ, "LXMGR_SOCKET": "/nonexistent/x.socket"},
                           capture_output=True, text=True, timeout=60).stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in trace.splitlines()
                if line.startswith("import time:")}
    assert "lxmgr.cli.fast" in imported
    assert not imported & {"site", "click", "typing", "rich", "yaml"}


def test_other_verbs_load_site_and_click(tmp_path: Path) -> None:
    script = launcher.write(tmp_path / "lxmgr")
    version = _run(script, "--version")
    assert version.returncode == 0 and version.stdout.strip() == launcher.lxmgr.__version__
    bad = _run(script, "list", "--format", "xml")
    assert bad.returncode == 2 and "'xml' is not one of" in bad.stderr
    assert "Usage: lxmgr" in _run(script, "--help").stdout


def test_write_replaces_atomically_and_main_reports(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "lxmgr"
    target.write_text("pip's console script")
    assert launcher.main([str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert target.read_text().startswith("#!")
    assert [p.name for p in tmp_path.iterdir()] == ["lxmgr"]  # no temp file left
    assert launcher.main(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("usage: ")
    missing = tmp_path / "missing" / "lxmgr"
    assert launcher.main([str(missing)]) == 1
    assert capsys.readouterr().err == (f"Error: Cannot write {missing}: No such file or "
                                       "directory\n")


def test_interpreter_path_with_spaces_is_refused() -> None:
    with pytest.raises(ValueError, match="interpreter"):
        launcher.render("/opt/my python/bin/python3")
