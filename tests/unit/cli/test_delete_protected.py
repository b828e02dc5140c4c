"""`lxmgr delete` of an instance with security.protection.delete: refused before anything
is asked of the server, with or without --force (a running instance is not stopped)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result

from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]
REFUSED = ("Error: Failed deleting instance 'c1': Instance is protected (set "
           "security.protection.delete=false first)\n")


def instance(status: str, protect: str | None) -> dict:  # type: ignore[type-arg]
    config = {} if protect is None else {"security.protection.delete": protect}
    return {"name": "c1", "status": status, "expanded_config": config}


@pytest.mark.parametrize("status,args", [("Stopped", ()), ("Stopped", ("--force",)),
                                         ("Running", ("--force",)), ("Frozen", ("-f",))])
@pytest.mark.parametrize("value", ["true", "yes", "1", "on"])
def test_protected_is_refused(run: Run, fake: FakeClient, status: str, args: tuple[str, ...],
                              value: str) -> None:
    fake.answers[("GET", "/1.0/instances/c1")] = instance(status, value)
    result = run("delete", *args, "c1")
    assert result.exit_code == 1 and result.output == REFUSED
    assert fake.mutations() == []


def test_running_without_force_says_so_first(run: Run, fake: FakeClient) -> None:
    """As lxc: the running check comes first, protection is only reached with --force."""
    fake.answers[("GET", "/1.0/instances/c1")] = instance("Running", "true")
    result = run("delete", "c1")
    assert result.exit_code == 1 and "currently running" in result.output


@pytest.mark.parametrize("value", [None, "", "false", "no", "0"])
def test_unprotected_is_deleted(run: Run, fake: FakeClient, value: str | None) -> None:
    fake.answers[("GET", "/1.0/instances/c1")] = instance("Stopped", value)
    assert run("delete", "c1").exit_code == 0
    assert fake.mutations() == [("DELETE", "/1.0/instances/c1")]


def test_snapshots_are_not_protected(run: Run, fake: FakeClient) -> None:
    assert run("delete", "c1/snap0").exit_code == 0
    assert fake.mutations() == [("DELETE", "/1.0/instances/c1/snapshots/snap0")]
