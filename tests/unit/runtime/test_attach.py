"""ExecSpec.environment(): LXD's `lxc exec` defaults and how callers override them; the
reply for a command that cannot be executed (127 not found, 126 not executable)."""

from __future__ import annotations

import errno
import json
import os

import pytest

from lxmgr.runtime.attach import ExecSpec, _read_failure, describe, exec_failure
from lxmgr.runtime.plan import DEFAULT_PATH


def test_root_defaults() -> None:
    assert ExecSpec(["sh"]).environment() == {"PATH": DEFAULT_PATH, "HOME": "/root",
                                              "USER": "root", "LANG": "C.UTF-8"}


def test_pty_sets_term() -> None:
    assert ExecSpec(["sh"], pty=True).environment()["TERM"] == "xterm"
    assert "TERM" not in ExecSpec(["sh"]).environment()


def test_non_root_user() -> None:
    env = ExecSpec(["sh"], uid=1000, gid=1000).environment()
    assert env["HOME"] == "/"
    assert "USER" not in env
    assert env["PATH"] == DEFAULT_PATH


def test_caller_env_overrides() -> None:
    spec = ExecSpec(["sh"], env={"HOME": "/home/u", "TERM": "vt100", "FOO": "1"}, pty=True)
    env = spec.environment()
    assert env["HOME"] == "/home/u" and env["TERM"] == "vt100" and env["FOO"] == "1"
    assert ExecSpec(["sh"], uid=5, env={"USER": "u"}).environment()["USER"] == "u"


def test_environment_does_not_mutate_defaults() -> None:
    ExecSpec(["sh"], uid=1000).environment()
    assert ExecSpec(["sh"]).environment()["USER"] == "root"


# -- a command that cannot be executed ---------------------------------------------------------

def test_not_found_is_127_with_a_one_line_reason() -> None:
    err = FileNotFoundError(errno.ENOENT, "No such file or directory", b"/bin/nosuchcmd")
    assert exec_failure("nosuchcmd", err, exists=False) == {
        "ok": True, "exit": 127, "failed": "Command not found: nosuchcmd"}


def test_a_path_whose_interpreter_is_missing_is_127_and_says_so() -> None:
    err = FileNotFoundError(errno.ENOENT, "No such file or directory", "/tmp/s")
    assert exec_failure("/tmp/s", err, exists=True)["failed"] == (
        "Command not found: /tmp/s (its interpreter or loader is missing)")


@pytest.mark.parametrize(("code", "reason"), [(errno.EACCES, "Permission denied"),
                                              (errno.ENOEXEC, "Exec format error")])
def test_not_executable_is_126(code: int, reason: str) -> None:
    err = OSError(code, os.strerror(code), "/etc/hostname")
    assert exec_failure("/etc/hostname", err, exists=True) == {
        "ok": True, "exit": 126, "failed": f"Command not executable: /etc/hostname ({reason})"}


def test_command_names_are_shown_on_one_line_and_bounded() -> None:
    err = FileNotFoundError(errno.ENOENT, "No such file or directory")
    failed = exec_failure("bad\nname" + "x" * 500, err, exists=False)["failed"]
    assert "\n" not in failed and failed.startswith("Command not found: bad?name")
    assert len(failed) < 250 and failed.endswith("...")


def test_describe_has_no_python_reprs() -> None:
    assert describe(FileNotFoundError(errno.ENOENT, "No such file or directory",
                                      b"/bin/x")) == "No such file or directory"
    assert describe(ValueError("bad value")) == "bad value"
    assert describe(RuntimeError()) == "RuntimeError"


def _pipe_with(data: bytes) -> int:
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def test_eof_on_the_status_pipe_means_the_command_runs() -> None:
    assert _read_failure(_pipe_with(b"")) is None


def test_the_status_pipe_carries_the_reply() -> None:
    sent = {"ok": True, "exit": 127, "failed": "Command not found: x"}
    assert _read_failure(_pipe_with(json.dumps(sent).encode())) == sent
    sent = {"error": "Failed to change directory to '/x': No such file or directory",
            "status": 400}
    assert _read_failure(_pipe_with(json.dumps(sent).encode())) == sent


@pytest.mark.parametrize("data", [b"garbage", b"[]", b'{"exit": 0, "failed": "x"}',
                                  b'{"exit": 127, "failed": 5}', b'{"error": "x"}',
                                  b'{"exit": 127, "failed": "x", "pid": 1, "pty": true}' * 200])
def test_a_malformed_status_reply_is_a_generic_error(data: bytes) -> None:
    assert _read_failure(_pipe_with(data)) == {"error": "The command failed to start",
                                               "status": 500}
