"""`--all-projects` where lxc 5.0 has it: `lxmgr list` (PROJECT column first, lxc's `e`) and
`lxmgr storage volume list`; refused beside --project, as lxc's list."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result

from tests.unit.cli.conftest import FakeClient
from tests.unit.cli.test_commands import C1, C2

Run = Callable[..., Result]

IN_WEB = {**C1, "name": "a1", "project": "web"}
IN_DEFAULT = [{**C1, "project": "default"}, {**C2, "project": "default"}]
POOL_VOLUMES = "/1.0/storage-pools/default/volumes"


def test_list_all_projects_asks_for_all_and_shows_the_project_first(
        run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = [IN_WEB, *IN_DEFAULT]
    result = run("list", "--all-projects", "-f", "csv")
    assert result.exit_code == 0, result.output
    call = fake.last("GET", "/1.0/instances")
    assert call.params == {"recursion": 2, "all-projects": True}
    assert [line.split(",")[:2] for line in result.output.splitlines()] == [
        ["default", "c1"], ["default", "db1"], ["web", "a1"]]
    table = run("list", "--all-projects").output.splitlines()
    assert [h.strip() for h in table[1].split("|")[1:-1]] == [
        "PROJECT", "NAME", "STATE", "IPV4", "IPV6", "TYPE", "SNAPSHOTS"]


def test_list_all_projects_keeps_chosen_columns(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = [IN_WEB, *IN_DEFAULT]
    assert run("list", "--all-projects", "-c", "n", "-f", "csv").output == "c1\ndb1\na1\n"
    assert run("list", "-c", "ne", "-f", "csv").output.splitlines()[-1] == "a1,web"


def test_list_without_all_projects_asks_for_the_current_one(
        run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = IN_DEFAULT
    assert run("list").exit_code == 0
    assert fake.last("GET", "/1.0/instances").params == {"recursion": 2}


@pytest.mark.parametrize("argv", [
    ["--project", "web", "list", "--all-projects"],
    ["list", "--all-projects", "--project=web"],
    ["storage", "volume", "list", "default", "--all-projects", "--project", "web"],
], ids=" ".join)
def test_all_projects_and_project_conflict(run: Run, fake: FakeClient,
                                           argv: list[str]) -> None:
    result = run(*argv)
    assert (result.exit_code, result.output) == (
        1, "Error: Can't specify --project with --all-projects\n")
    assert fake.calls == []


def test_storage_volume_list_all_projects(run: Run, fake: FakeClient) -> None:
    data = {"name": "data", "type": "custom", "description": "", "content_type": "filesystem",
            "used_by": [], "project": "web"}
    fake.answers[("GET", POOL_VOLUMES)] = [data]
    result = run("storage", "volume", "list", "default", "--all-projects", "-f", "csv")
    assert result.exit_code == 0, result.output
    assert fake.last("GET", POOL_VOLUMES).params == {"recursion": 1, "all-projects": True}
    assert result.output == "web,custom,data,,filesystem,0\n"
    assert run("storage", "volume", "list", "default", "-f", "csv").output == \
        "custom,data,,filesystem,0\n"
    assert fake.last("GET", POOL_VOLUMES).params == {"recursion": 1}
    table = run("storage", "volume", "list", "default", "--all-projects").output
    assert [h.strip() for h in table.splitlines()[1].split("|")[1:-1]] == [
        "PROJECT", "TYPE", "NAME", "DESCRIPTION", "CONTENT-TYPE", "USED BY"]


def test_help_names_the_flag(run: Run) -> None:
    assert "--all-projects" in run("list", "--help").output
    assert "--all-projects" in run("storage", "volume", "list", "--help").output
