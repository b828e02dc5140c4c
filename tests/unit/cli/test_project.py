"""`lxmgr project ...`: request paths and bodies, list/info output, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable

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
        "default,YES,YES,YES,YES,Default LXD project,2\nweb,NO,YES,YES,NO,Web team,0\n")
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
