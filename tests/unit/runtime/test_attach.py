"""ExecSpec.environment(): LXD's `lxc exec` defaults and how callers override them."""

from __future__ import annotations

from lxmgr.runtime.attach import ExecSpec
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
