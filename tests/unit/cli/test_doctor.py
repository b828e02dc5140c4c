"""`lxmgr doctor`: one line per check, a fix under each failure, exit 1 on any failure."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import Result

from lxmgr import errors
from lxmgr.client import DaemonNotRunning
from tests.unit.cli.conftest import FakeClient

Run = Callable[..., Result]

OK = [{"name": "bridge lxmgrbr0", "ok": True, "detail": "up, 10.99.0.1/24", "fix": ""},
      {"name": "ip_forward", "ok": True, "detail": "enabled", "fix": ""}]
FORWARD_DROP = {"name": "FORWARD policy", "ok": False,
                "detail": "iptables FORWARD policy is DROP (Docker?)",
                "fix": "iptables -I DOCKER-USER -i lxmgrbr0 -j ACCEPT"}


def test_all_ok(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/doctor")] = OK
    result = run("doctor")
    assert result.exit_code == 0, result.output
    assert result.output == ("[ OK ] bridge lxmgrbr0: up, 10.99.0.1/24\n"
                             "[ OK ] ip_forward: enabled\n")
    assert [(c.method, c.path) for c in fake.calls] == [("GET", "/1.0/doctor")]


def test_a_failure_prints_its_fix_and_exits_1(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/doctor")] = [*OK, FORWARD_DROP]
    result = run("doctor")
    assert result.exit_code == 1
    assert result.output.splitlines()[-2:] == [
        "[FAIL] FORWARD policy: iptables FORWARD policy is DROP (Docker?)",
        "       fix: iptables -I DOCKER-USER -i lxmgrbr0 -j ACCEPT"]


def test_daemon_not_running_is_the_first_finding(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/doctor")] = DaemonNotRunning("/x/unix.socket", "No such file")
    result = run("doctor")
    assert result.exit_code == 1
    assert result.output == ("[FAIL] lxmgrd: not running (socket /x/unix.socket)\n"
                             "       fix: start it with `lxmgr daemon start`\n")


def test_other_errors_stay_one_line(run: Run, fake: FakeClient) -> None:
    fake.answers[("GET", "/1.0/doctor")] = errors.NotFound("Not found")
    result = run("doctor")
    assert result.exit_code == 1 and result.output == "Error: Not found\n"
