"""The click-free fast path (lxmgr.cli.fast) agrees with the click CLI, or hands over to it.

Every argv the fast path takes is also run through click with an identical fake daemon:
same requests, same output, same exit status. Every argv it must not take (help, unknown
options, malformed values, other verbs) is checked to go to click.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from lxmgr import errors
from lxmgr.cli import fast, terminal
from lxmgr.cli.app import App
from lxmgr.cli.main import cli
from lxmgr.client import DaemonNotRunning
from tests.unit.cli.conftest import FakeClient
from tests.unit.cli.test_commands import C1, C2

FAST = [
    ["list"],
    ["list", "--format", "json"],
    ["list", "--format=json"],
    ["list", "-f", "yaml"],
    ["list", "-f", "csv", "-c", "nspPmu"],
    ["list", "--columns=n4", "web", "status=running"],
    ["list", "c", "-f", "csv", "-c", "n"],
    ["list", "-c", "nZ"],  # the body's error: same message from both paths
    ["start", "c1"],
    ["start", "c1", "db1"],
    ["stop", "c1"],
    ["stop", "c1", "db1", "--force", "--timeout", "10"],
    ["stop", "-f", "c1", "--timeout=3"],
    ["stop", "c1", "--timeout", "-1"],
    ["exec", "c1", "--", "true"],
    ["exec", "c1", "-T", "--", "sh", "-c", "echo hi"],
    ["exec", "c1", "-E", "A=1", "--env=B=2", "--user", "1000", "--cwd", "/srv", "--",
     "ls", "-la"],
    ["exec", "-t", "c1", "--group", "5", "--", "bash"],
    ["exec", "c1", "--force-noninteractive", "--", "--help"],  # after -- it is the command's
    ["config", "device", "add", "c1", "code", "disk", "source=/srv/code", "path=/code",
     "shift=true"],
    ["config", "device", "add", "c1", "d", "disk", "path=/x"],  # refused: no source
    ["config", "device", "add", "c1", "web", "disk", "source=/s", "path=/x"],  # exists
    ["config", "device", "remove", "c1", "web"],
    ["config", "device", "remove", "c1", "web", "nosuch"],
    # projects: --project before or after the verb (lxc's persistent flag), --all-projects
    ["--project", "web", "list"],
    ["list", "--project=web", "-f", "json"],
    ["--project=", "list"],  # empty: no override, as lxc's
    ["list", "--all-projects"],
    ["list", "--all-projects", "-c", "ne", "-f", "csv"],
    ["--project", "web", "list", "--all-projects"],  # lxc's refusal, from both paths
    ["start", "c1", "--project", "web"],
    ["stop", "--project", "web", "c1", "-f"],
    ["exec", "c1", "--project", "web", "--", "true"],
    ["exec", "--project=web", "c1", "--", "echo", "--project", "x"],
    ["config", "device", "remove", "--project", "web", "c1", "web"],
]

CLICK = [
    [],
    ["--version"],
    ["--debug", "list"],
    ["info", "c1"],
    ["list", "--help"],
    ["list", "-fjson"],  # click's attached short value: click decides
    ["list", "-f=json"],
    ["list", "--format", "xml"],
    ["list", "--bogus"],
    ["list", "--"],
    ["list", "-f"],
    ["start"],
    ["start", "-h"],
    ["start", "--force", "c1"],
    ["stop"],
    ["stop", "c1", "--timeout", "soon"],
    ["stop", "c1", "--timeout"],
    ["exec", "c1", "true"],  # no --
    ["exec", "c1", "--"],
    ["exec", "c1", "c2", "--", "true"],
    ["exec", "c1", "--user", "root", "--", "true"],
    ["exec", "c1", "--cwd", "--", "true"],
    ["exec", "c1", "-x", "--", "true"],
    ["exec", "--help", "--", "x"],
    ["config", "show", "c1"],
    ["config", "device", "list", "c1"],
    ["config", "device", "add", "c1", "code"],
    ["config", "device", "add", "c1", "code", "disk", "--help"],
    ["config", "device", "remove", "c1"],
    ["--project"],
    ["list", "--project"],
    ["--project", "web"],
    ["--project", "web", "info", "c1"],
    ["--project", "web", "list", "--help"],
    ["exec", "c1", "--project", "--", "true"],  # the value would be `--`: click's error
]

def _fake() -> FakeClient:
    fake = FakeClient()
    fake.answers[("GET", "/1.0/instances")] = [C2, C1]
    web = {"type": "disk", "source": "/srv/web", "path": "/web"}
    fake.answers[("GET", "/1.0/instances/c1")] = {**C1, "devices": {"web": web},
                                                  "expanded_devices": {"web": web}}
    return fake

def _exec_recorder(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import lxmgr.client.exec as client_exec

    seen: list[dict[str, Any]] = []

    def fake_run_exec(client: Any, name: str, body: dict[str, Any], **kwargs: Any) -> int:
        seen.append({"name": name, "body": body, "project": client.project, **kwargs})
        print("out")
        return 3

    monkeypatch.setattr(client_exec, "run_exec", fake_run_exec)
    return seen

def _click(argv: list[str], fake: FakeClient) -> tuple[int, str]:
    result = CliRunner().invoke(cli, argv, obj=App(client=fake))  # type: ignore[arg-type]
    return result.exit_code, result.output

def _fast(argv: list[str], fake: FakeClient, capsys: pytest.CaptureFixture[str]
          ) -> tuple[int, str]:
    runner = fast.fast_runner(argv)
    assert runner is not None, argv
    capsys.readouterr()
    status = fast.run_fast(runner, App(client=fake))  # type: ignore[arg-type]
    captured = capsys.readouterr()
    return status, captured.out + captured.err

@pytest.mark.parametrize("argv", FAST, ids=" ".join)
def test_fast_path_matches_click(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    seen = _exec_recorder(monkeypatch)
    slow_fake, fast_fake = _fake(), _fake()
    slow = _click(argv, slow_fake)
    fast_result = _fast(argv, fast_fake, capsys)
    assert fast_result == slow
    assert [vars(c) for c in fast_fake.calls] == [vars(c) for c in slow_fake.calls]
    if argv[0] == "exec":
        assert len(seen) == 2 and seen[0] == seen[1]

@pytest.mark.parametrize("argv", CLICK, ids=lambda a: " ".join(a) or "(none)")
def test_everything_else_goes_to_click(argv: list[str]) -> None:
    assert fast.fast_runner(argv) is None

def test_shell_completion_goes_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_LXMGR_COMPLETE", "bash_complete")
    assert fast.fast_runner(["list"]) is None

@pytest.mark.parametrize(("error", "message"), [
    (errors.NotFound("Instance 'c9' not found"), "Error: Instance 'c9' not found\n"),
    (DaemonNotRunning("/x/unix.socket", "No such file"),
     "Error: lxmgrd is not running (socket /x/unix.socket): start it with "
     "`lxmgr daemon start`\n"),
    (PermissionError(13, "Permission denied", "/x/unix.socket"),
     "Error: Permission denied: /x/unix.socket\n"),
])
def test_errors_are_the_same_line(error: BaseException, message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["list"], ["start", "c9"]):
        slow_fake, fast_fake = _fake(), _fake()
        for fake in (slow_fake, fast_fake):
            fake.answers[("GET", "/1.0/instances")] = error
            fake.answers[("PUT", "/1.0/instances/c9/state")] = error
        assert _click(argv, slow_fake) == (1, message)
        assert _fast(argv, fast_fake, capsys) == (1, message)

@pytest.mark.parametrize(("failed", "status"), [("Command not found: nosuchcmd", 127), (
    "Command not executable: /etc/hostname (Permission denied)", 126)])
def test_a_command_that_cannot_run_is_one_line_and_a_shell_status(
        failed: str, status: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import lxmgr.client.exec as client_exec

    def fake_run_exec(*_args: Any, **_kwargs: Any) -> int:
        raise client_exec.CommandFailed(failed, status)

    monkeypatch.setattr(client_exec, "run_exec", fake_run_exec)
    argv = ["exec", "c1", "--", "x"]
    assert _click(argv, _fake()) == _fast(argv, _fake(), capsys) == (status,
                                                                      f"Error: {failed}\n")


def test_several_names_all_tried(capsys: pytest.CaptureFixture[str]) -> None:
    slow_fake, fast_fake = _fake(), _fake()
    for fake in (slow_fake, fast_fake):
        fake.answers[("PUT", "/1.0/instances/c9/state")] = errors.NotFound("no c9")
    expected = (1, "Error: c9: no c9\nError: Failed to start c9\n")
    assert _click(["start", "c9", "c1"], slow_fake) == expected
    assert _fast(["start", "c9", "c1"], fast_fake, capsys) == expected
    assert slow_fake.mutations() == fast_fake.mutations() == [
        ("PUT", "/1.0/instances/c9/state"), ("PUT", "/1.0/instances/c1/state")]

@pytest.mark.parametrize("argv", [["list"], ["list", "-f", "csv", "-c", "n"], ["start", "c1"],
                                  ["exec", "c1", "--", "true"], ["--project", "db", "list"],
                                  ["config", "device", "remove", "c1", "web"]], ids=" ".join)
def test_the_current_project_on_both_paths(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from lxmgr.cli.remotes import set_current_project

    set_current_project("local", "web")
    seen = _exec_recorder(monkeypatch)
    slow_fake, fast_fake = _fake(), _fake()
    assert _fast(argv, fast_fake, capsys) == _click(argv, slow_fake)
    assert [vars(c) for c in fast_fake.calls] == [vars(c) for c in slow_fake.calls]
    expected = "db" if "--project" in argv else "web"
    projects = {c.project for c in fast_fake.calls} | {s["project"] for s in seen}
    assert projects == {expected}
    assert len(seen) == (2 if argv[0] == "exec" else 0) and seen[:1] == seen[1:]


def test_a_current_project_only_yaml_reads_goes_to_click(private_conf: Any) -> None:
    (private_conf / "remotes.yaml").write_text("remotes: {local: {project: web}}\n")
    assert fast.fast_runner(["list"]) is None
    assert fast.fast_runner(["--project", "web", "list"]) is not None


def test_formats_agree() -> None:
    assert fast.FORMATS == terminal.FORMATS

@pytest.mark.parametrize("argv", [["list"], ["config", "device", "add", "c1", "d", "disk",
                                            "source=/s", "path=/d"],
                                  ["list", "--project", "web", "--all-projects"]], ids=" ".join)
def test_fast_path_imports_no_click(argv: list[str]) -> None:
    """What `lxmgr list` imports when it runs (the daemon is not there: an error line), with
    a current project stored (read by the line scan, not yaml)."""
    from lxmgr.cli.remotes import set_current_project

    set_current_project("local", "web")
    code = ("import sys, os; os.environ['LXMGR_SOCKET'] = '/nonexistent/lxmgr.socket'\n"
            "from lxmgr.cli import fast\n"
            f"status = fast.run_fast(fast.fast_runner({argv!r}))\n"
            "print(status, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('click', 'rich', 'yaml', 'aiohttp')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "1 []"

def test_script_entry_point_is_the_fast_path() -> None:
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("lxmgr") == "lxmgr.cli.fast:main"

Checker = Callable[[list[str]], None]
