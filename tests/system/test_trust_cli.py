"""Restricted certificates through the real CLI on a real lxmgrd: `config trust add
--restricted --projects team` prints a token, another CLI (its own certificate and config)
joins with it by `remote add`, and its certificate is restricted to team: `config trust list`
and `show` say so, the client works in team only, `config trust edit` widens and then lifts
the restriction. No containers are created."""

from __future__ import annotations

import csv
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.system.conftest import Daemon, running_daemon

pytestmark = [pytest.mark.system]

Cli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with running_daemon("lxmt", link_image=False) as d:
        yield d


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _client(daemon: Daemon, tmp_path: Path) -> Cli:
    """The CLI of another machine: its own config and certificate, no local daemon."""
    env = {**daemon.env, "LXMGR_CONF": str(tmp_path / "conf"),
           "LXMGR_DIR": str(tmp_path / "no-local-daemon")}

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([daemon.launcher, *args], env=env, capture_output=True,
                              text=True, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(f"lxmgr {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    return cli


def _csv(proc: subprocess.CompletedProcess[str]) -> list[list[str]]:
    return list(csv.reader(proc.stdout.splitlines()))


def _refused(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [f"Error: {message}"], proc.stderr


def test_restricted_token_from_the_cli(daemon: Daemon, tmp_path: Path) -> None:
    port = _free_port()
    daemon.cli("config", "set", "core.https_address", f"127.0.0.1:{port}")
    for name in ("team", "other"):
        daemon.cli("project", "create", name)
    _refused(daemon.cli("config", "trust", "add", "--name", "x", "--restricted",
                        "--projects", "nope", check=False), "Project 'nope' not found")
    _refused(daemon.cli("config", "trust", "add", "--name", "x", "--projects", "team",
                        check=False),
             "Projects can only be specified for restricted certificates: add --restricted")
    added = daemon.cli("config", "trust", "add", "--name", "panel", "--restricted",
                       "--projects", "team").stdout.splitlines()
    assert added[0] == "Client panel certificate add token:"
    client = _client(daemon, tmp_path)
    assert "now trusted" in client("remote", "add", "prod", added[1]).stdout

    [cells] = _csv(daemon.cli("config", "trust", "list", "--format", "csv"))
    assert cells[:2] == ["client", "panel"] and cells[6:] == ["yes", "team"]
    assert cells[2] and cells[4].endswith("(UTC)") and cells[5].endswith("(UTC)")
    table = daemon.cli("config", "trust", "list").stdout
    assert "| RESTRICTED | PROJECTS |" in table and "| yes        | team     |" in table
    fingerprint = cells[3]
    shown = yaml.safe_load(daemon.cli("config", "trust", "show", fingerprint).stdout)
    assert (shown["name"], shown["restricted"], shown["projects"]) == ("panel", True, ["team"])
    assert shown["fingerprint"].startswith(fingerprint)

    # The client works in team only, and sees only its own certificate.
    assert [row[0] for row in _csv(client("project", "list", "prod:", "-f", "csv"))] == ["team"]
    assert client("--project", "team", "list", "prod:").returncode == 0
    restricted = "not authorized (this client's certificate is restricted to some projects)"
    _refused(client("--project", "other", "list", "prod:", check=False),
             f"https://127.0.0.1:{port} refused GET /1.0/instances: {restricted}")
    _refused(client("project", "create", "prod:mine", check=False),
             f"https://127.0.0.1:{port} refused POST /1.0/projects: {restricted}")
    [mine] = _csv(client("config", "trust", "list", "prod:", "--format", "csv"))
    assert mine == cells

    # An admin widens it with edit (YAML on stdin, as LXD's own test does with sed), then
    # lifts the restriction.
    text = daemon.cli("config", "trust", "show", fingerprint).stdout
    daemon.cli("config", "trust", "edit", fingerprint, input=text.replace(
        "- team\n", "- team\n- other\n"))
    assert client("--project", "other", "list", "prod:").returncode == 0
    _refused(daemon.cli("config", "trust", "edit", fingerprint, check=False,
                        input=text.replace("restricted: true", "restricted: false")),
             "Projects can only be specified for restricted certificates: set "
             "'restricted: true' or remove 'projects'")
    daemon.cli("config", "trust", "edit", fingerprint,
               input="name: panel\nrestricted: false\nprojects: []\n")
    [cells] = _csv(daemon.cli("config", "trust", "list", "--format", "csv"))
    assert cells[6:] == ["no", ""]
    assert client("project", "create", "prod:mine").returncode == 0
    client("remote", "remove", "prod")
