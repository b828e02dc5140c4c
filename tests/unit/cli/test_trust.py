"""`lxmgr config trust ...` against the fake client: restricted certificates and tokens (add
--restricted --projects), the list's columns, show and edit (PUT), one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from lxmgr import errors
from lxmgr.api.certificate import generate_certificate
from lxmgr.cli.commands.trust import format_cert_date, parse_certificate_yaml
from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]
CERTS = "/1.0/certificates"
FP = "3f2a9c1b" + "0" * 56


def _cert(name: str, fp: str, restricted: bool = False,
          projects: list[str] | None = None) -> dict[str, Any]:
    pem = generate_certificate(f"{name}-cn", [], client=True)[0].decode()
    return {"name": name, "type": "client", "restricted": restricted,
            "projects": projects or [], "certificate": pem, "fingerprint": fp}


@pytest.fixture(scope="module")
def panel() -> dict[str, Any]:
    return _cert("panel", FP, True, ["web", "ci"])


def _one_line_error(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {message}\n"


def test_cert_dates_as_go_prints_them() -> None:
    assert format_cert_date(datetime(2026, 3, 5, 0, 7, tzinfo=UTC)) == \
        "Mar 5, 2026 at 12:07am (UTC)"
    assert format_cert_date(datetime(2035, 12, 31, 13, 4, tzinfo=UTC)) == \
        "Dec 31, 2035 at 1:04pm (UTC)"
    assert format_cert_date(datetime(2030, 1, 1, 12, 0, tzinfo=UTC)) == \
        "Jan 1, 2030 at 12:00pm (UTC)"


def test_list_shows_restriction_and_projects(run: Run, fake: FakeClient,
                                             panel: dict[str, Any]) -> None:
    laptop = _cert("laptop", "a1" * 32)
    fake.answers[("GET", CERTS)] = [panel, laptop]
    result = run("config", "trust", "list")
    assert result.exit_code == 0, result.output
    assert fake.last("GET", CERTS).params == {"recursion": 1}
    lines = result.output.splitlines()
    assert [h.strip() for h in lines[1].split("|")[1:-1]] == [
        "TYPE", "NAME", "COMMON NAME", "FINGERPRINT", "ISSUE DATE", "EXPIRY DATE",
        "RESTRICTED", "PROJECTS"]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines
            if line.startswith("|")][1:]
    # Sorted by type then name, as lxc; the projects one a line, sorted (incus).
    assert rows[0][:4] == ["client", "laptop", "laptop-cn", "a1a1a1a1a1a1"]
    assert rows[0][6:] == ["no", ""]
    assert rows[1][:4] == ["client", "panel", "panel-cn", "3f2a9c1b0000"]
    assert rows[1][6:] == ["yes", "ci"] and rows[2][6:] == ["", "web"]
    assert rows[1][4].endswith("(UTC)") and " at " in rows[1][5]

    csv = run("config", "trust", "list", "-f", "csv").output.splitlines()
    assert csv[0].startswith("client,laptop,laptop-cn,a1a1a1a1a1a1,")
    assert csv[0].endswith(",no,")
    assert csv[1].startswith("client,panel,") and csv[1].endswith(',yes,"ci')
    assert csv[2] == 'web"'
    assert json.loads(run("config", "trust", "list", "-f", "json").output) == [panel, laptop]
    [shown, _] = yaml.safe_load(run("config", "trust", "list", "-f", "yaml").output)
    assert (shown["restricted"], shown["projects"]) == (True, ["web", "ci"])


def test_list_keeps_a_certificate_it_cannot_read(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", CERTS)] = [{"name": "odd", "type": "client", "certificate": "junk",
                                     "fingerprint": FP, "restricted": False, "projects": []}]
    assert run("config", "trust", "list", "-f", "csv").output == \
        "client,odd,,3f2a9c1b0000,,,no,\n"


def test_add_restricted_token(run: Run, fake: FakeClient) -> None:
    fake.answers[("POST", CERTS)] = {"id": "op-1", "metadata": {"token": "VE9LRU4="}}
    result = run("config", "trust", "add", "--name", "panel", "--restricted",
                 "--projects", "web, ci,,")
    assert result.exit_code == 0, result.output
    assert result.output == "Client panel certificate add token:\nVE9LRU4=\n"
    call = fake.last("POST", CERTS)
    assert call.body == {"name": "panel", "token": True, "restricted": True,
                         "projects": ["web", "ci"]}
    assert call.project is None  # --projects is not the global --project


def test_add_plain_token_is_unrestricted(run: Run, fake: FakeClient) -> None:
    fake.answers[("POST", CERTS)] = {"metadata": {"token": "VE9LRU4="}}
    assert run("config", "trust", "add", "--name", "laptop").exit_code == 0
    assert fake.last("POST", CERTS).body == {"name": "laptop", "token": True,
                                             "restricted": False, "projects": []}
    # Restricted to no project (lxc allows it: such a client reaches no project).
    assert run("config", "trust", "add", "--name", "none", "--restricted").exit_code == 0
    assert fake.last("POST", CERTS).body["restricted"] is True
    assert fake.last("POST", CERTS).body["projects"] == []


def test_add_restricted_certificate_file(run: Run, fake: FakeClient, tmp_path: Path,
                                         panel: dict[str, Any]) -> None:
    crt = tmp_path / "ci.crt"
    crt.write_text(panel["certificate"])
    result = run("config", "trust", "add", str(crt), "--restricted", "--projects", "ci")
    assert result.exit_code == 0, result.output
    assert fake.last("POST", CERTS).body == {
        "name": "ci", "type": "client", "certificate": panel["certificate"],
        "restricted": True, "projects": ["ci"]}


def test_add_refusals_are_one_line(run: Run, fake: FakeClient) -> None:
    _one_line_error(run("config", "trust", "add", "--name", "p", "--projects", "web"),
                    "Projects can only be specified for restricted certificates: add "
                    "--restricted")
    _one_line_error(run("config", "trust", "add", "--restricted", "--projects", "web"),
                    "Give --name for the client the token is for")
    assert fake.mutations() == []
    fake.answers[("POST", CERTS)] = errors.NotFound("Project 'nope' not found")
    _one_line_error(run("config", "trust", "add", "--name", "p", "--restricted",
                        "--projects", "nope"), "Project 'nope' not found")


def test_show(run: Run, fake: FakeClient, panel: dict[str, Any]) -> None:
    fake.answers[("GET", f"{CERTS}/3f2a9c1b")] = panel
    result = run("config", "trust", "show", "3f2a9c1b")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "name: panel\ntype: client\nrestricted: true\nprojects:\n- web\n- ci\n"
        "certificate: |\n  -----BEGIN CERTIFICATE-----\n")
    assert yaml.safe_load(result.output) == panel


def test_edit_from_stdin_puts_with_the_etag(run: Run, fake: FakeClient,
                                            panel: dict[str, Any]) -> None:
    path = f"{CERTS}/3f2a9c1b"
    fake.answers[("GET", path)] = panel
    shown = run("config", "trust", "show", "3f2a9c1b").output
    edited = shown.replace("- ci\n", "- ci\n- db\n").replace("name: panel", "name: ui")
    result = run("config", "trust", "edit", "3f2a9c1b", input=edited)
    assert result.exit_code == 0, result.output
    put = fake.last("PUT", path)
    assert put.body == {"name": "ui", "type": "client", "restricted": True,
                        "projects": ["web", "ci", "db"], "certificate": panel["certificate"]}
    assert put.headers == {"If-Match": "etag-1"}
    assert run("config", "trust", "edit", "3f2a9c1b",
               input="name: ui\nrestricted: false\n").exit_code == 0
    assert fake.last("PUT", path).body == {"name": "ui", "type": "", "restricted": False,
                                           "projects": [], "certificate": ""}


def test_edit_in_the_editor(run: Run, fake: FakeClient, panel: dict[str, Any],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    import lxmgr.cli.commands.config as config_module

    seen: list[str] = []

    def editor(_app: Any, text: str, what: str) -> str:
        seen.extend([text, what])
        return text.replace("restricted: true", "restricted: false").replace(
            "projects:\n- web\n- ci\n", "projects: []\n")

    monkeypatch.setattr(config_module, "edit_text", editor)
    fake.answers[("GET", f"{CERTS}/3f2a9c1b")] = panel
    result = run("config", "trust", "edit", "3f2a9c1b")
    assert result.exit_code == 0, result.output
    assert seen[0].startswith("### This is a YAML representation of the certificate.\n")
    assert "\nname: panel\n" in seen[0] and seen[1] == "certificate '3f2a9c1b'"
    body = fake.last("PUT", f"{CERTS}/3f2a9c1b").body
    assert (body["restricted"], body["projects"]) == (False, [])


@pytest.mark.parametrize(("text", "message"), [
    ("- a\n", "Invalid YAML for certificate 'fp': expected a mapping"),
    ("name: [\n", "Invalid YAML for certificate 'fp' at line 2"),
    ("restricted: maybe\n", "Invalid 'restricted' in certificate 'fp': expected true or false"),
    ("restricted: true\nprojects: web\n",
     "Invalid 'projects' in certificate 'fp': expected a list"),
    ("restricted: true\nprojects: [1]\n",
     "Invalid 'projects' in certificate 'fp': expected a list of project names"),
    ("projects: [web]\n", "Projects can only be specified for restricted certificates: set "
     "'restricted: true' or remove 'projects'"),
    ("project: [web]\n", "Unknown key 'project' in certificate 'fp'"),
], ids=["list", "syntax", "bool", "projects", "names", "unrestricted", "unknown"])
def test_parse_certificate_yaml_refusals(text: str, message: str) -> None:
    with pytest.raises(errors.InvalidConfig) as err:
        parse_certificate_yaml(text, "fp")
    assert str(err.value).startswith(message)


def test_edit_refusals_are_one_line(run: Run, fake: FakeClient,
                                    panel: dict[str, Any]) -> None:
    fake.answers[("GET", f"{CERTS}/3f2a9c1b")] = panel
    _one_line_error(run("config", "trust", "edit", "3f2a9c1b", input="projects: [web]\n"),
                    "Projects can only be specified for restricted certificates: set "
                    "'restricted: true' or remove 'projects'")
    fake.answers[("PUT", f"{CERTS}/3f2a9c1b")] = errors.NotFound("Project 'nope' not found")
    _one_line_error(run("config", "trust", "edit", "3f2a9c1b",
                        input="restricted: true\nprojects: [nope]\n"),
                    "Project 'nope' not found")
    fake.answers[("GET", f"{CERTS}/ffff")] = errors.NotFound("Certificate not found")
    _one_line_error(run("config", "trust", "show", "ffff"), "Certificate not found")
    _one_line_error(run("config", "trust", "show", "local:"), "Missing certificate fingerprint")
    _one_line_error(run("config", "trust", "edit", "local:"), "Missing certificate fingerprint")


def test_remove_quotes_the_fingerprint(run: Run, fake: FakeClient) -> None:
    assert run("config", "trust", "remove", "3f2a9c1b").exit_code == 0
    assert fake.mutations() == [("DELETE", f"{CERTS}/3f2a9c1b")]
