"""`lxmgr project ...`: request paths and bodies, list/info output, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from lxmgr import errors
from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]

DEFAULT = {"name": "default", "description": "Default LXD project",
           "config": {"features.images": "true", "features.profiles": "true",
                      "features.storage.volumes": "true", "features.networks": "true"},
           "used_by": ["/1.0/profiles/default", "/1.0/instances/web1"]}
WEB = {"name": "web", "description": "Web team",
       "config": {"features.images": "false", "features.profiles": "true",
                  "features.storage.volumes": "true"}, "used_by": []}
PATH = "/1.0/projects/web"


def test_list_table_and_formats(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/projects")] = [WEB, DEFAULT]
    result = run("project", "list")
    assert result.exit_code == 0, result.output
    assert fake.last("GET", "/1.0/projects").params == {"recursion": 1}
    lines = result.output.splitlines()
    assert [h.strip() for h in lines[1].split("|")[1:-1]] == [
        "NAME", "IMAGES", "PROFILES", "STORAGE VOLUMES", "NETWORKS", "DESCRIPTION", "USED BY"]
    assert result.output.index("default") < result.output.index("web")
    assert run("project", "list", "-f", "csv").output == (
        "default (current),YES,YES,YES,YES,Default LXD project,2\n"
        "web,NO,YES,YES,NO,Web team,0\n")
    assert json.loads(run("project", "list", "-f", "json").output) == [DEFAULT, WEB]


def test_show(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = WEB
    shown = yaml.safe_load(run("project", "show", "web").output)
    assert shown == WEB


def test_create_with_keys_and_stdin(run: Run, fake: FakeClient) -> None:
    result = run("project", "create", "web", "features.images=false", "--description",
                 "Web team", input="")
    assert result.exit_code == 0, result.output
    assert result.output == "Project web created\n"
    assert fake.last("POST", "/1.0/projects").body == {
        "name": "web", "description": "Web team", "config": {"features.images": "false"}}
    text = "description: From yaml\nconfig:\n  features.networks: true\n  user.a: 1\n"
    assert run("project", "create", "web", "user.a=2", input=text).exit_code == 0
    assert fake.last("POST", "/1.0/projects").body == {
        "name": "web", "description": "From yaml",
        "config": {"features.networks": "true", "user.a": "2"}}


def test_set_unset_get_edit(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = WEB
    assert run("project", "set", "web", "user.team=a").exit_code == 0
    assert fake.last("PATCH", PATH).body == {"config": {"user.team": "a"}}
    assert run("project", "unset", "web", "features.images").exit_code == 0
    put = fake.last("PUT", PATH)
    assert put.body == {"description": "Web team", "config": {
        "features.profiles": "true", "features.storage.volumes": "true"}}
    assert put.headers == {"If-Match": "etag-1"}
    bad = run("project", "unset", "web", "user.nosuch")
    assert bad.exit_code == 1
    assert "Can't unset key 'user.nosuch', it's not currently set" in bad.output
    assert run("project", "get", "web", "features.images").output == "false\n"
    edited = run("project", "edit", "web", input="description: New\nconfig: {}\n")
    assert edited.exit_code == 0, edited.output
    assert fake.last("PUT", PATH).body == {"description": "New", "config": {}}


def test_rename_delete_info(run: Run, fake: FakeClient) -> None:
    result = run("project", "rename", "web", "www")
    assert result.exit_code == 0 and result.output == "Project web renamed to www\n"
    assert fake.last("POST", PATH).body == {"name": "www"}
    assert run("project", "delete", "web").output == "Project web deleted\n"
    assert fake.mutations()[-1] == ("DELETE", PATH)
    fake.answers[("GET", "/1.0/projects/default/state")] = {"resources": {
        "instances": {"Limit": -1, "Usage": 2}, "networks": {"Limit": 3, "Usage": 1}}}
    table = run("project", "info", "default").output
    assert "| INSTANCES | UNLIMITED | 2     |" in table
    assert "| NETWORKS  | 3         | 1     |" in table


def test_errors_are_one_line(run: Run, fake: FakeClient) -> None:
    fake.answers[("DELETE", "/1.0/projects/default")] = errors.Forbidden(
        "The 'default' project cannot be deleted")
    result = run("project", "delete", "default")
    assert result.exit_code == 1
    assert result.output == "Error: The 'default' project cannot be deleted\n"


# -- the current project (`project switch`, --project) ------------------------------------


def _stored(conf: Path) -> Any:
    return yaml.safe_load((conf / "remotes.yaml").read_text())


def test_switch_stores_the_project_of_local(run: Run, fake: FakeClient,
                                            private_conf: Path) -> None:
    fake.answers[("GET", PATH)] = WEB
    result = run("project", "switch", "web")
    assert result.exit_code == 0 and result.output == ""
    assert fake.calls[-1].method == "GET" and fake.calls[-1].path == PATH
    assert _stored(private_conf) == {"remotes": {"local": {"project": "web"}}}
    assert run("project", "switch", "default").exit_code == 0
    assert _stored(private_conf) == {"remotes": {"local": {"project": "default"}}}


def test_switch_to_a_missing_project_is_one_line(run: Run, fake: FakeClient,
                                                 private_conf: Path) -> None:
    fake.answers[("GET", "/1.0/projects/nope")] = errors.NotFound("Project 'nope' not found")
    result = run("project", "switch", "nope")
    assert (result.exit_code, result.output) == (1, "Error: Project 'nope' not found\n")
    assert not (private_conf / "remotes.yaml").exists()


def test_later_commands_use_the_current_project(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", PATH)] = WEB
    assert run("list").exit_code == 0
    assert fake.calls[-1].project is None  # nothing switched: the server's default
    assert run("project", "switch", "web").exit_code == 0
    for argv in (["list"], ["start", "c1"], ["profile", "list"]):
        assert run(*argv).exit_code == 0, argv
        assert fake.calls[-1].project == "web", argv


@pytest.mark.parametrize("argv", [
    ["--project", "db", "list"], ["--project=db", "list"], ["list", "--project", "db"],
    ["list", "-f", "json", "--project=db"], ["start", "--project", "db", "c1"],
    ["config", "set", "c1", "--project", "db", "user.a=1"],
], ids=" ".join)
def test_project_option_before_or_after_the_verb(run: Run, fake: FakeClient,
                                                 argv: list[str]) -> None:
    fake.answers[("GET", PATH)] = WEB
    assert run("project", "switch", "web").exit_code == 0
    result = run(*argv)
    assert result.exit_code == 0, result.output
    assert fake.calls and all(c.project == "db" for c in fake.calls[1:]), fake.calls


def test_project_option_default_is_sent_and_stored_default_is_not(
        run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/projects/default")] = DEFAULT
    assert run("project", "switch", "default").exit_code == 0
    assert run("list").exit_code == 0
    assert fake.calls[-1].project is None  # lxc sends a remote's `default` as no project
    assert run("--project", "default", "list").exit_code == 0
    assert fake.calls[-1].project == "default"  # but an override always


def test_project_option_stops_before_the_command(run: Run, fake: FakeClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import lxmgr.client.exec as client_exec

    seen: list[dict[str, Any]] = []

    def fake_run_exec(client: Any, name: str, body: dict[str, Any], **_: Any) -> int:
        seen.append({"project": client.project, "command": body["command"]})
        return 0

    monkeypatch.setattr(client_exec, "run_exec", fake_run_exec)
    result = run("exec", "c1", "--project", "db", "--", "tool", "--project", "x")
    assert result.exit_code == 0, result.output
    assert seen == [{"project": "db", "command": ["tool", "--project", "x"]}]


@pytest.mark.parametrize("argv", [["list", "--project"], ["--project"],
                                  ["exec", "c1", "--project", "--", "true"]], ids=" ".join)
def test_project_option_without_its_value(run: Run, argv: list[str]) -> None:
    result = run(*argv)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == "Error: Option '--project' requires an argument."


def test_hoist_globals() -> None:
    from lxmgr.cli.main import hoist_globals

    assert hoist_globals(["list", "-f", "json", "--project", "p"]) == [
        "--project", "p", "list", "-f", "json"]
    assert hoist_globals(["exec", "c1", "--project=p", "--", "x", "--project", "q"]) == [
        "--project=p", "exec", "c1", "--", "x", "--project", "q"]
    assert hoist_globals(["--debug", "list"]) == ["--debug", "list"]
    assert hoist_globals(["list", "--projects"]) == ["list", "--projects"]


def test_list_marks_the_current_project(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/projects")] = [WEB, DEFAULT]
    fake.answers[("GET", PATH)] = WEB
    names = lambda result: [line.split(",")[0] for line in result.output.splitlines()]  # noqa: E731
    assert names(run("project", "list", "-f", "csv")) == ["default (current)", "web"]
    assert run("project", "switch", "web").exit_code == 0
    assert names(run("project", "list", "-f", "csv")) == ["default", "web (current)"]
    assert names(run("--project", "default", "project", "list", "-f", "csv")) == [
        "default (current)", "web"]
    # json keeps the objects as the server sent them
    assert json.loads(run("project", "list", "-f", "json").output) == [DEFAULT, WEB]


def test_delete_of_the_current_project_goes_back_to_default(
        run: Run, fake: FakeClient, private_conf: Path) -> None:
    fake.answers[("GET", PATH)] = WEB
    assert run("project", "switch", "web").exit_code == 0
    assert run("project", "delete", "other").exit_code == 0
    assert _stored(private_conf) == {"remotes": {"local": {"project": "web"}}}
    assert run("project", "delete", "web").exit_code == 0
    assert _stored(private_conf) == {"remotes": {}}
    assert run("list").exit_code == 0 and fake.calls[-1].project is None


def test_rename_of_the_current_project_follows_it(run: Run, fake: FakeClient,
                                                  private_conf: Path) -> None:
    fake.answers[("GET", PATH)] = WEB
    assert run("project", "switch", "web").exit_code == 0
    assert run("project", "rename", "other", "x").exit_code == 0
    assert _stored(private_conf) == {"remotes": {"local": {"project": "web"}}}
    assert run("project", "rename", "web", "www").exit_code == 0
    assert fake.last("POST", PATH).project is None  # and so its operation's wait
    assert _stored(private_conf) == {"remotes": {"local": {"project": "www"}}}
    fake.answers[("POST", "/1.0/projects/www")] = errors.Conflict("Name 'taken' in use")
    failed = run("project", "rename", "www", "taken")
    assert failed.exit_code == 1
    assert _stored(private_conf) == {"remotes": {"local": {"project": "www"}}}


def test_project_help_names_switch_and_the_option(run: Run) -> None:
    assert "switch" in run("project", "--help").output
    assert "--project NAME" in run("--help").output
    assert "Make NAME the current project" in run("project", "switch", "--help").output
