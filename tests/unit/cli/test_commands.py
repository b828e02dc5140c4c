"""Verbs map to the right LXD API calls and bodies; output formats; one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from click.testing import Result

from lxmgr import errors
from lxmgr.cli.main import COMMANDS, cli
from lxmgr.client import DaemonNotRunning
from lxmgr.model.instance import validate_instance_name
from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]

C1 = {
    "name": "c1", "status": "Running", "status_code": 103, "type": "container",
    "ephemeral": False, "profiles": ["default", "web"], "architecture": "x86_64",
    "config": {"limits.memory": "1GiB"}, "devices": {},
    "expanded_config": {"limits.memory": "1GiB", "limits.cpu": "2"}, "expanded_devices": {},
    "created_at": "2026-01-02T03:04:05Z", "last_used_at": "2026-01-03T00:00:00Z",
    "stateful": False, "description": "",
    "state": {"status": "Running", "pid": 4242, "processes": 12,
              "cpu": {"usage": 5_000_000_000}, "memory": {"usage": 50 * 1024 * 1024},
              "network": {"eth0": {"addresses": [
                  {"family": "inet", "address": "10.0.3.5", "netmask": "24", "scope": "global"},
                  {"family": "inet6", "address": "fe80::1", "netmask": "64", "scope": "link"},
              ]}, "lo": {"addresses": [{"family": "inet", "address": "127.0.0.1",
                                        "scope": "local"}]}}},
    "snapshots": None,
}
C2 = {**C1, "name": "db1", "status": "Stopped", "ephemeral": True, "profiles": ["default"],
      "state": {"status": "Stopped", "pid": 0}}


def test_version(run: Run) -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.output.strip() == "0.1.0"


def _all_commands() -> list[list[str]]:
    import click

    paths: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])

    walk(cli, [])
    return paths


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p) or "lxmgr")
def test_every_help_has_an_example(run: Run, path: list[str]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output and "lxmgr " in result.output.split("Examples:")[1]


def test_verb_list_is_complete() -> None:
    assert set(COMMANDS) == {"launch", "init", "start", "stop", "restart", "pause", "resume",
                             "delete", "list", "info", "exec", "shell", "console", "config",
                             "profile", "network", "project", "image", "operation", "daemon",
                             "doctor", "snapshot", "restore", "copy", "move", "rename", "storage",
                             "remote", "publish", "export", "import", "monitor", "file",
                             "dev"}


def test_storage_verbs(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/storage-pools")] = [
        {"name": "default", "driver": "overlay", "config": {"source": "/var/lib/x"},
         "description": "", "used_by": ["/1.0/instances/c1"], "status": "Created"}]
    table = run("storage", "list").output
    assert "| default | overlay | /var/lib/x |" in table
    assert run("storage", "create", "fast", "btrfs", "size=2GiB").exit_code == 0
    assert fake.last("POST", "/1.0/storage-pools").body == {
        "name": "fast", "driver": "btrfs", "description": "", "config": {"size": "2GiB"}}
    bad = run("storage", "create", "x", "zfs")
    assert bad.exit_code == 2 and "zfs" in bad.output
    assert run("storage", "set", "fast", "size=3GiB").exit_code == 1
    assert run("storage", "delete", "fast").exit_code == 0
    assert fake.mutations()[-1] == ("DELETE", "/1.0/storage-pools/fast")


def test_snapshot_verbs(run: Run, fake: FakeClient) -> None:
    snaps = "/1.0/instances/c1/snapshots"
    fake.answers[("GET", snaps)] = [f"{snaps}/nightly"]
    assert run("snapshot", "c1").exit_code == 0
    assert fake.last("POST", snaps).body == {}
    assert run("snapshot", "c1", "nightly", "--reuse", "--no-expiry").exit_code == 0
    assert fake.mutations()[-2:] == [("DELETE", f"{snaps}/nightly"), ("POST", snaps)]
    assert fake.calls[-1].body == {"name": "nightly", "expires_at": "0001-01-01T00:00:00Z"}
    assert run("restore", "c1", "snap0").exit_code == 0
    assert fake.last("PUT", "/1.0/instances/c1").body == {"restore": "snap0"}
    assert run("delete", "c1/snap0").exit_code == 0
    assert fake.mutations()[-1] == ("DELETE", f"{snaps}/snap0")


def test_copy_and_move(run: Run, fake: FakeClient) -> None:
    assert run("copy", "c1/snap0", "c2", "--instance-only", "-c", "user.a=1", "-p", "x",
               "--start").exit_code == 0
    assert fake.last("POST", "/1.0/instances").body == {
        "name": "c2", "source": {"type": "copy", "source": "c1/snap0", "instance_only": True},
        "start": True, "config": {"user.a": "1"}, "profiles": ["x"]}
    bad = run("copy", "c1", "9bad")
    assert bad.exit_code == 1 and "Invalid instance name '9bad'" in bad.output
    assert run("move", "c1", "c3").exit_code == 0
    assert fake.last("POST", "/1.0/instances/c1").body == {"name": "c3"}
    assert run("rename", "c3", "c4").exit_code == 0


def test_launch_is_create_then_start(run: Run, fake: FakeClient) -> None:
    result = run("launch", "debian", "web1", "-p", "default", "-p", "web",
                 "-c", "limits.memory=1GiB", "--ephemeral", "-s", "fast")
    assert result.exit_code == 0, result.output
    assert result.output == "Creating web1\nStarting web1\n"
    assert fake.mutations() == [("POST", "/1.0/instances"), ("PUT", "/1.0/instances/web1/state")]
    body = fake.last("POST", "/1.0/instances").body
    assert body["name"] == "web1" and body["source"] == {"type": "image", "alias": "debian"}
    assert body["profiles"] == ["default", "web"]
    assert body["config"] == {"limits.memory": "1GiB"}
    assert body["ephemeral"] is True and body["start"] is False
    assert body["devices"] == {"root": {"type": "disk", "path": "/", "pool": "fast"}}
    assert fake.last("PUT", "/1.0/instances/web1/state").body == {
        "action": "start", "timeout": -1, "force": False, "stateful": False}


def test_init_generates_a_name_and_does_not_start(run: Run, fake: FakeClient) -> None:
    result = run("init", "debian")
    assert result.exit_code == 0, result.output
    name = fake.last("POST", "/1.0/instances").body["name"]
    validate_instance_name(name)
    assert result.output == f"Creating {name}\n"
    assert "profiles" not in fake.last("POST", "/1.0/instances").body  # server default
    assert fake.mutations() == [("POST", "/1.0/instances")]


def test_init_rejects_a_bad_name_before_calling(run: Run, fake: FakeClient) -> None:
    result = run("init", "debian", "1bad")
    assert result.exit_code == 1
    assert result.output.startswith("Error: Invalid instance name '1bad'")
    assert result.output.count("\n") == 1 and fake.calls == []


@pytest.mark.parametrize(("args", "action", "timeout", "force"), [
    (["start", "c1", "c2"], "start", -1, False),
    (["stop", "c1", "c2", "--force", "--timeout", "10"], "stop", 10, True),
    (["restart", "c1", "c2", "-f"], "restart", -1, True),
    (["pause", "c1", "c2"], "freeze", -1, False),
    (["resume", "c1", "c2"], "unfreeze", -1, False),
])
def test_state_verbs(run: Run, fake: FakeClient, args: list[str], action: str, timeout: int,
                     force: bool) -> None:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert fake.mutations() == [("PUT", "/1.0/instances/c1/state"),
                                ("PUT", "/1.0/instances/c2/state")]
    assert fake.calls[-1].body == {"action": action, "timeout": timeout, "force": force,
                                   "stateful": False}


def test_delete_running_needs_force(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances/c1")] = C1
    result = run("delete", "c1")
    assert result.exit_code == 1
    assert result.output == ("Error: The instance 'c1' is currently running, stop it first or "
                             "pass --force\n")
    assert fake.mutations() == []
    result = run("delete", "-f", "c1")
    assert result.exit_code == 0
    assert fake.mutations() == [("PUT", "/1.0/instances/c1/state"),
                                ("DELETE", "/1.0/instances/c1")]
    assert fake.calls[-2].body["force"] is True


def test_list_table(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = [C2, C1]
    result = run("list")
    assert result.exit_code == 0, result.output
    assert fake.calls[0].params == {"recursion": 2}
    lines = result.output.splitlines()
    assert lines[0].startswith("+------+")
    assert [h.strip() for h in lines[1].split("|")[1:-1]] == [
        "NAME", "STATE", "IPV4", "IPV6", "TYPE", "SNAPSHOTS"]
    assert lines[1].startswith("| NAME |  STATE  |       IPV4      |")
    assert "| c1   | RUNNING | 10.0.3.5 (eth0) |" in result.output  # lo and link scope hidden
    assert "CONTAINER (EPHEMERAL)" in result.output
    assert result.output.index("c1") < result.output.index("db1")  # sorted by name


def test_list_columns_and_filters(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = [C1, C2]
    result = run("list", "--format", "csv", "-c", "nspPmu")
    assert result.output.splitlines()[0] == 'c1,RUNNING,4242,"default'
    assert "web\",50.00MiB,5s" in result.output
    assert run("list", "status=stopped", "-f", "csv", "-c", "n").output == "db1\n"
    assert run("list", "c", "-f", "csv", "-c", "n").output == "c1\n"
    assert run("list", "limits.cpu=2", "-f", "csv", "-c", "n").output == "c1\ndb1\n"
    bad = run("list", "-c", "nZ")
    assert bad.exit_code == 1 and bad.output.startswith("Error: Unknown column 'Z'")


def test_list_json_and_yaml(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = [C1]
    assert json.loads(run("list", "--format", "json").output) == [C1]
    assert yaml.safe_load(run("list", "--format", "yaml").output) == [C1]


def test_info(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances/c1")] = C1
    fake.answers[("GET", "/1.0/instances/c1/state")] = C1["state"]
    result = run("info", "c1")
    assert result.exit_code == 0, result.output
    for line in ("Name: c1", "Status: RUNNING", "PID: 4242", "Created: 2026/01/02 03:04 UTC",
                 "Profiles: default, web", "  Processes: 12 (unlimited)",
                 "    CPU usage (in seconds): 5.00 (limit 2 CPUs)",
                 "    Memory (current): 50.00MiB (limit 1GiB)",
                 "      IP address: 10.0.3.5/24 (global)"):
        assert line in result.output.splitlines()


def test_not_found_is_one_line(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances/nope")] = errors.NotFound("Instance 'nope' not found")
    result = run("info", "nope")
    assert result.exit_code == 1
    assert result.output == "Error: Instance 'nope' not found\n"


def test_daemon_not_running_hint(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = DaemonNotRunning("/x/unix.socket", "No such file")
    result = run("list")
    assert result.exit_code == 1
    assert result.output == ("Error: lxmgrd is not running (socket /x/unix.socket): start it "
                             "with `lxmgr daemon start`\n")


def test_debug_shows_the_traceback(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances")] = errors.Conflict("busy")
    result = run("--debug", "list")
    assert isinstance(result.exception, errors.Conflict)


def _exec_recorder(monkeypatch: pytest.MonkeyPatch, status: int) -> list[dict[str, Any]]:
    import lxmgr.client.exec as client_exec

    seen: list[dict[str, Any]] = []

    def fake_run_exec(client: Any, name: str, body: dict[str, Any], **kwargs: Any) -> int:
        seen.append({"name": name, "body": body, **kwargs})
        return status

    monkeypatch.setattr(client_exec, "run_exec", fake_run_exec)
    return seen


def test_exec_passes_options_and_exit_status(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _exec_recorder(monkeypatch, 7)
    result = run("exec", "c1", "-E", "A=1", "--user", "1000", "--cwd", "/srv", "--",
                 "ls", "-la")
    assert result.exit_code == 7
    body = seen[0]["body"]
    assert seen[0]["name"] == "c1"
    assert body["command"] == ["ls", "-la"] and body["environment"] == {"A": "1"}
    assert body["interactive"] is False  # CliRunner's stdio is not a terminal
    assert body["user"] == 1000 and body["cwd"] == "/srv" and "group" not in body


def test_exec_force_pty(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _exec_recorder(monkeypatch, 0)
    assert run("exec", "-t", "c1", "--", "bash").exit_code == 0
    body = seen[0]["body"]
    assert body["interactive"] is True and "TERM" in body["environment"]
    assert body["width"] and body["height"]


def test_shell_is_su_login(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _exec_recorder(monkeypatch, 0)
    assert run("shell", "c1").exit_code == 0
    assert seen[0]["body"]["command"] == ["su", "-l"]


def test_console_show_log(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances/c1/console")] = b"systemd booting\n"
    result = run("console", "c1", "--show-log")
    assert result.exit_code == 0 and result.output == "systemd booting\n"


def test_config_set_get_unset_show(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances/c1")] = C1
    assert run("config", "set", "c1", "limits.cpu=2", "user.a=b").exit_code == 0
    assert fake.last("PATCH", "/1.0/instances/c1").body == {
        "config": {"limits.cpu": "2", "user.a": "b"}}
    assert run("config", "set", "c1", "limits.cpu", "3").exit_code == 0
    assert fake.last("PATCH", "/1.0/instances/c1").body == {"config": {"limits.cpu": "3"}}
    assert run("config", "get", "c1", "limits.memory").output == "1GiB\n"
    assert run("config", "get", "c1", "limits.cpu").output == "\n"
    assert run("config", "get", "c1", "limits.cpu", "--expanded").output == "2\n"
    assert run("config", "unset", "c1", "limits.memory").exit_code == 0
    put = fake.last("PUT", "/1.0/instances/c1")
    assert put.body["config"] == {} and put.headers == {"If-Match": "etag-1"}
    assert set(put.body) == {"architecture", "config", "devices", "ephemeral", "profiles",
                             "stateful", "description"}
    missing = run("config", "unset", "c1", "nope")
    assert missing.output == "Error: Can't unset key 'nope', it's not currently set\n"
    shown = yaml.safe_load(run("config", "show", "c1", "--expanded").output)
    assert shown["config"] == C1["expanded_config"] and "state" not in shown


def test_config_edit_from_stdin(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances/c1")] = C1
    result = run("config", "edit", "c1", input="config:\n  limits.cpu: '4'\nprofiles: [x]\n"
                                               "status: ignored\n")
    assert result.exit_code == 0, result.output
    assert fake.last("PUT", "/1.0/instances/c1").body == {"config": {"limits.cpu": "4"},
                                                         "profiles": ["x"]}
    bad = run("config", "edit", "c1", input="config: [\n")
    assert bad.exit_code == 1 and bad.output.startswith("Error: Invalid YAML for instance 'c1'")


def test_profile_verbs(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/instances/c1")] = C1
    fake.answers[("GET", "/1.0/profiles/web")] = {
        "name": "web", "description": "Web", "config": {"limits.cpu": "2"}, "devices": {},
        "used_by": ["/1.0/instances/c1"]}
    assert run("profile", "assign", "c1", "default,small").exit_code == 0
    assert fake.last("PATCH", "/1.0/instances/c1").body == {"profiles": ["default", "small"]}
    assert run("profile", "add", "c1", "extra").exit_code == 0
    assert fake.last("PATCH", "/1.0/instances/c1").body == {
        "profiles": ["default", "web", "extra"]}
    assert run("profile", "remove", "c1", "web").exit_code == 0
    assert fake.last("PATCH", "/1.0/instances/c1").body == {"profiles": ["default"]}
    assert run("profile", "add", "c1", "web").output.startswith("Error: Profile 'web' is")
    assert run("profile", "set", "web", "limits.memory=1GiB").exit_code == 0
    assert fake.last("PATCH", "/1.0/profiles/web").body == {"config": {"limits.memory": "1GiB"}}
    assert run("profile", "unset", "web", "limits.cpu").exit_code == 0
    assert fake.last("PUT", "/1.0/profiles/web").body == {"description": "Web", "config": {},
                                                         "devices": {}}
    assert run("profile", "get", "web", "limits.cpu").output == "2\n"
    assert run("profile", "copy", "web", "web2").exit_code == 0
    assert fake.last("POST", "/1.0/profiles").body["name"] == "web2"
    assert run("profile", "delete", "web2").exit_code == 0
    assert ("DELETE", "/1.0/profiles/web2") in fake.mutations()


def test_profile_create_and_edit_validate(run: Run, fake: FakeClient) -> None:
    result = run("profile", "create", "web", "--description", "Web servers", input="")
    assert result.exit_code == 0, result.output
    assert fake.last("POST", "/1.0/profiles").body == {
        "name": "web", "description": "Web servers", "config": {}, "devices": {}}
    fake.answers[("GET", "/1.0/profiles/web")] = {"name": "web", "config": {}, "devices": {}}
    bad = run("profile", "edit", "web", input="config:\n  limits.bogus: '1'\n")
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert "limits.bogus" in bad.output
    good = run("profile", "edit", "web", input="config:\n  limits.memory: 1GiB\n")
    assert good.exit_code == 0, good.output
    assert fake.last("PUT", "/1.0/profiles/web").body["config"] == {"limits.memory": "1GiB"}


def test_profile_list(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/profiles")] = [
        {"name": "default", "description": "Default", "used_by": ["/1.0/instances/c1"]}]
    result = run("profile", "list", "-f", "csv")
    assert result.output == "default,Default,1\n"


def test_image_verbs(run: Run, fake: FakeClient) -> None:
    fake.answers[("POST", "/1.0/images")] = {"fingerprint": "abc123"}
    result = run("image", "build", "debian", "--alias", "bookworm")
    assert result.exit_code == 0 and result.output == "Image built: abc123\n"
    assert fake.last("POST", "/1.0/images").body == {
        "source": {"type": "recipe", "name": "debian"},
        "aliases": [{"name": "bookworm", "description": ""}]}
    assert run("image", "alias", "create", "stable", "abc123", "-d", "x").exit_code == 0
    assert fake.last("POST", "/1.0/images/aliases").body == {
        "name": "stable", "target": "abc123", "description": "x"}
    assert run("image", "alias", "delete", "stable").exit_code == 0
    assert ("DELETE", "/1.0/images/aliases/stable") in fake.mutations()
    fake.answers[("GET", "/1.0/images/aliases/debian")] = {"name": "debian", "target": "f00d"}
    fake.answers[("GET", "/1.0/images/aliases/f00d")] = errors.NotFound("no alias")
    assert run("image", "delete", "debian", "f00d").exit_code == 0
    assert fake.mutations()[-2:] == [("DELETE", "/1.0/images/f00d"),
                                     ("DELETE", "/1.0/images/f00d")]


def test_image_list_and_info(run: Run, fake: FakeClient) -> None:
    img = {"fingerprint": "f" * 64, "aliases": [{"name": "debian"}], "public": False,
           "properties": {"description": "Debian bookworm"}, "architecture": "x86_64",
           "type": "container", "size": 300 * 1024 * 1024,
           "uploaded_at": "2026-01-02T03:04:05Z"}
    fake.answers[("GET", "/1.0/images")] = [img]
    result = run("image", "list", "-f", "csv")
    assert result.output == ("debian,ffffffffffff,no,Debian bookworm,x86_64,CONTAINER,"
                             "300.00MiB,2026/01/02 03:04 UTC\n")
    fake.answers[("GET", "/1.0/images/aliases/debian")] = {"target": "f" * 64}
    fake.answers[("GET", "/1.0/images/" + "f" * 64)] = img
    info = run("image", "info", "debian").output
    assert f"Fingerprint: {'f' * 64}" in info and "    - debian" in info


def test_operation_verbs(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/operations")] = {"running": [
        {"id": "op1", "class": "task", "description": "Creating instance", "status": "Running",
         "may_cancel": True, "created_at": "2026-01-02T03:04:05Z"}]}
    result = run("operation", "list", "-f", "csv")
    assert result.output == "op1,TASK,Creating instance,RUNNING,YES,2026/01/02 03:04 UTC\n"
    assert run("operation", "delete", "op1").exit_code == 0
    assert fake.mutations() == [("DELETE", "/1.0/operations/op1")]


def test_server_config(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0")] = {"config": {"images.auto_update_interval": "12"}}
    assert run("config", "get", "images.auto_update_interval").output == "12\n"
    assert "images.auto_update_interval: '12'" in run("config", "show").output
    assert run("config", "set", "images.auto_update_cached", "false").exit_code == 0
    assert fake.last("PATCH", "/1.0").body == {"config": {"images.auto_update_cached": "false"}}
    assert run("config", "unset", "images.auto_update_interval").exit_code == 0
    assert fake.last("PUT", "/1.0").body == {"config": {}}
    bad = run("config", "set", "web1")
    assert bad.exit_code == 1 and "KEY=VALUE" in bad.output


def test_publish(run: Run, fake: FakeClient) -> None:
    assert run("publish", "c1/snap0", "--alias", "base", "description=v1").exit_code == 0
    assert fake.last("POST", "/1.0/images").body == {
        "source": {"type": "snapshot", "name": "c1/snap0"}, "public": False,
        "aliases": [{"name": "base", "description": ""}], "properties": {"description": "v1"}}


def test_image_edit_from_stdin(run: Run, fake: FakeClient) -> None:
    fp = "a" * 64
    fake.answers[("GET", "/1.0/images/aliases/deb")] = {"target": fp}
    fake.answers[("GET", f"/1.0/images/{fp}")] = {"fingerprint": fp, "properties": {
        "os": "debian"}, "public": False, "auto_update": False}
    result = run("image", "edit", "deb",
                 input="properties: {os: debian, description: base}\nauto_update: true\n")
    assert result.exit_code == 0, result.output
    assert fake.last("PUT", f"/1.0/images/{fp}").body == {
        "properties": {"os": "debian", "description": "base"}, "public": False,
        "auto_update": True}
    bad = run("image", "edit", "deb", input="properties: [1]\n")
    assert bad.exit_code == 1 and "properties" in bad.output
