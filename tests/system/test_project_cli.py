"""The current project through the real `lxmgr` CLI (the launcher: fast path and click) and a
real lxmgrd: `project switch` checks the project exists and keeps it in the CLI's own
remotes.yaml (a private LXMGR_CONF), `project list` marks it, --project overrides it for one
command before or after the verb, rename follows it and delete goes back to `default`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.kernel, pytest.mark.system]

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _current(cli: Cli, *options: str) -> list[str]:
    rows = cli(*options, "project", "list", "-f", "csv").stdout.splitlines()
    return [row.split(",")[0] for row in rows if row.split(",")[0].endswith(" (current)")]


def test_switch_list_rename_delete(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "conf"

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return daemon.cli(*args, check=check, env={"LXMGR_CONF": str(conf)})

    assert _current(cli) == ["default (current)"]
    cli("project", "create", "swp", "-d", "switched")
    try:
        missing = cli("project", "switch", "nosuch", check=False)
        assert (missing.returncode, missing.stderr) == (
            1, "Error: Project 'nosuch' not found\n")
        assert not (conf / "remotes.yaml").exists()

        assert cli("project", "switch", "swp").stdout == ""
        assert yaml.safe_load((conf / "remotes.yaml").read_text()) == {
            "remotes": {"local": {"project": "swp"}}}
        assert _current(cli) == ["swp (current)"]
        assert _current(cli, "--project", "default") == ["default (current)"]
        assert _current(cli, "--project=default") == ["default (current)"]
        listed = cli("project", "list", "--project", "default", "-f", "csv").stdout
        assert "default (current)," in listed and "swp,YES" in listed

        # Later commands work in it: a profile made now is swp's, not default's.
        cli("profile", "create", "swp-only")
        assert "swp-only" in cli("profile", "list", "-f", "csv").stdout
        assert "swp-only" not in cli("--project", "default", "profile", "list").stdout
        assert "swp-only" not in cli("profile", "list", "--project=default").stdout
        assert cli("list", "-f", "json").stdout == "[]\n"  # the fast path, in swp
        cli("profile", "delete", "swp-only")

        cli("project", "rename", "swp", "swp2")
        assert _current(cli) == ["swp2 (current)"]
        cli("project", "delete", "swp2")
        assert _current(cli) == ["default (current)"]
        assert yaml.safe_load((conf / "remotes.yaml").read_text()) == {"remotes": {}}
    finally:
        for name in ("swp", "swp2"):
            cli("project", "delete", name, check=False)
