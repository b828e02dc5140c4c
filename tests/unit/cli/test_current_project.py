"""Where the current project of a remote is kept (the CLI's remotes.yaml, as lxc's
config.yml `remotes: NAME: project: P`), how the click-free line scan reads it back, and
what reaches a daemon (a real Client against a fake server) from the click CLI and the fast
path, REMOTE: prefixes included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from lxmgr import errors
from lxmgr.cli import fast
from lxmgr.cli.app import App, scan_project, stored_project
from lxmgr.cli.main import cli
from lxmgr.cli.remotes import config_path, current_project, set_current_project
from lxmgr.images.remotes import (
    add_remote,
    load_remotes,
    remove_remote,
    rename_remote,
    set_default_remote,
)
from tests.unit.client.fake_server import FakeServer, async_op, sync

# -- storage in remotes.yaml ------------------------------------------------------------------


def test_local_keeps_only_its_project(private_conf: Path) -> None:
    set_current_project("local", "web")
    assert yaml.safe_load(config_path().read_text()) == {
        "remotes": {"local": {"project": "web"}}}
    assert current_project("local") == "web"
    assert load_remotes(config_path())["local"].url == "unix://"  # still the built-in one
    set_default_remote(config_path(), "local")
    set_current_project("local", None)
    assert yaml.safe_load(config_path().read_text()) == {"remotes": {}}
    assert current_project("local") == ""


def test_a_server_remote_keeps_its_project_through_rename_and_remove(
        private_conf: Path) -> None:
    add_remote(config_path(), "prod", "unix:///run/prod.socket", protocol="lxd", public=False)
    set_current_project("prod", "web")
    assert current_project("prod") == "web" and current_project("local") == ""
    rename_remote(config_path(), "prod", "production")
    assert current_project("production") == "web"
    assert load_remotes(config_path())["production"].url == "unix:///run/prod.socket"
    remove_remote(config_path(), "production")
    assert current_project("production") == ""


def test_image_servers_and_unknown_remotes_have_no_project(private_conf: Path) -> None:
    with pytest.raises(errors.InvalidConfig, match="^Remote 'images' is an image server"):
        set_current_project("images", "web")
    with pytest.raises(errors.NotFound, match="^Remote 'nope' not found$"):
        set_current_project("nope", "web")


def test_a_project_that_is_not_a_name_is_refused(private_conf: Path) -> None:
    config_path().write_text("remotes:\n  local:\n    project: [a, b]\n")
    with pytest.raises(errors.InvalidConfig, match="project of remote 'local' is not a name"):
        current_project("local")


# -- the line scan (no yaml: the fast path runs without site-packages) ------------------------

# Names lxmgr may store (LXD's project names: no '/', space or quotes), some of which YAML
# writes quoted or could read as something else.
NAMES = ["web", "db-1", "under_score", "123", "1.5", "yes", "on", "null", "~", "true",
         "a:b", "x#y", "@at", "-dash", "é", "日本", "*x", "&anchor", "!tag", "{b}", "[l]",
         "%p", "`q", "a,b", "0x10", "1e3", ".hidden"]


@pytest.mark.parametrize("name", NAMES)
def test_scan_reads_what_is_written_or_says_it_cannot(private_conf: Path, name: str) -> None:
    add_remote(config_path(), "prod", "https://project.example.org:8443", protocol="lxd",
               public=False)
    set_current_project("prod", "other")
    set_current_project("local", name)
    data = config_path().read_bytes()
    assert scan_project(data, "local") in (name, None)  # never another name
    assert scan_project(data, "prod") in ("other", None)
    assert stored_project("local") == name  # the YAML parser when the scan cannot tell
    assert stored_project("prod") == "other"


@pytest.mark.parametrize("name", ["web", "db-1", "under_score", "Web.2", "123", "yes", "a:b",
                                  "0x10", "1.5"])
def test_scan_reads_common_names_itself(private_conf: Path, name: str) -> None:
    set_current_project("local", name)
    assert scan_project(config_path().read_bytes(), "local") == name


@pytest.mark.parametrize(("text", "expected"), [
    ("", ""),
    ("default-remote: prod\nremotes:\n  prod:\n    url: https://project.example\n", ""),
    ("remotes:\n  prod:\n    project: web\n", ""),  # another remote's
    ("remotes:\n  local:\n    project: web\n", "web"),
    ("remotes:\n  'local':\n    project: 'web'\n", "web"),
    ("# mine\nremotes:\n\n  local:\n    # the team's\n    project: web\n", "web"),
    ("remotes:\r\n  local:\r\n    project: web\r\n", "web"),
    ("remotes: {local: {project: web}}\n", None),
    ("remotes:\n  local: {project: web}\n", None),
    ("remotes:\n  local:\n    project: web # ours\n", None),
    ("remotes:\n    local:\n        project: web\n", None),
    ("remotes:\n  local:\n    project:\n", None),
    ("remotes:\n  local:\n    project: \"w\\u00e9b\"\n", None),
    ("remotes:\n  local:\n    project: !!str 12\n", None),
    ("remotes:\n  local:\n    project: &p web\n", None),
    ("remotes:\n  local:\n    project: 123\n", None),  # YAML reads a number
    ("remotes:\n  local:\n    project: 2024-01-01\n", None),  # and a date
    ("remotes:\n  local:\n    project: True\n", None),
    ("remotes:\n  local:\n    project: .inf\n", None),
    ("remotes:\n  local:\n    project: 'True'\n", "True"),
    ("project: web\n", ""),  # not a remote's
    ("other:\n  local:\n    project: web\n", None),
    (b"remotes:\n  local:\n    project: \xff\n", None),
])
def test_scan_of_hand_written_files(text: str | bytes, expected: str | None) -> None:
    data = text if isinstance(text, bytes) else text.encode()
    assert scan_project(data, "local") == expected


# -- what reaches the daemon ---------------------------------------------------------------


@pytest.fixture
def daemons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Two fake daemons: `local` (LXMGR_DIR's socket) and remote `other` (unix://)."""
    servers = {}
    for name in ("local", "other"):
        (tmp_path / name).mkdir()
        server = FakeServer(str(tmp_path / name / "unix.socket")).start()
        server.route("GET", "/1.0/instances")(lambda req: sync([]))
        server.route("GET", "/1.0/projects/web")(lambda req: sync({"name": "web"}))
        op = server.add_operation()
        server.finish(op["id"])
        server.route("PUT", "/1.0/instances/c1/state")(lambda req, op=op: async_op(op))
        servers[name] = server
    monkeypatch.delenv("LXMGR_SOCKET", raising=False)
    monkeypatch.setenv("LXMGR_DIR", str(tmp_path / "local"))
    add_remote(config_path(), "other", f"unix://{servers['other'].socket_path}",
               protocol="lxd", public=False)
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _click(*argv: str) -> None:
    app = App()
    result = CliRunner().invoke(cli, list(argv), obj=app)
    app.client.close()
    assert result.exit_code == 0, result.output


def _fast(*argv: str) -> None:
    runner = fast.fast_runner(list(argv))
    assert runner is not None, argv
    app = App()
    assert fast.run_fast(runner, app) == 0
    app.client.close()


def _projects(server: FakeServer) -> list[str | None]:
    seen = [r.query.get("project") for r in server.requests]
    server.requests.clear()
    return seen


def test_the_current_project_reaches_the_daemon(daemons: dict[str, FakeServer]) -> None:
    local, other = daemons["local"], daemons["other"]
    for run in (_click, _fast):
        run("list")
        run("start", "c1")
    assert _projects(local) == [None] * 6  # list; start's PUT and its operation's wait
    _click("project", "switch", "web")
    assert _projects(local) == [None]  # GET /1.0/projects/web: a project is in none
    for run in (_click, _fast):
        run("list")
        run("start", "c1")  # PUT, then the operation's wait
        run("--project", "db", "list")
        run("list", "--project=db")
    assert _projects(local) == ["web", "web", "web", "db", "db"] * 2
    assert _projects(other) == []


def test_switch_on_another_remote(daemons: dict[str, FakeServer],
                                  private_conf: Path) -> None:
    local, other = daemons["local"], daemons["other"]
    _click("project", "switch", "other:web")
    assert yaml.safe_load(config_path().read_text())["remotes"]["other"]["project"] == "web"
    _click("list", "other:")
    _click("list")
    assert _projects(other) == [None, "web"]  # the switch's GET, then the list
    assert _projects(local) == [None]
    _fast("list")
    assert _projects(local) == [None]


def test_a_project_the_scan_cannot_read_goes_to_click(daemons: dict[str, FakeServer],
                                                      private_conf: Path) -> None:
    config_path().write_text("remotes: {local: {project: web}}\n")
    assert fast.fast_runner(["list"]) is None
    assert fast.fast_runner(["--project", "db", "list"]) is not None  # the file is not read
    _click("list")
    assert _projects(daemons["local"]) == ["web"]
