"""security.protection.delete on a real daemon: the API answers as LXD 5.0 does (DELETE is an
operation that fails with "Instance is protected", status_code 400), `lxmgr delete` and
`lxmgr delete --force` refuse and leave the instance as it was (running stays running), a
profile can set it, the instance's own config can unset it, and a stopped ephemeral instance
still goes (LXD's onStop deletes it with force)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.system.conftest import Daemon

pytestmark = [pytest.mark.kernel, pytest.mark.system]

PROTECTED = "Instance is protected"


def unprotect_all(daemon: Daemon) -> None:
    """So that the fixture's cleanup can delete everything, even after a failure."""
    for url in daemon.api("GET", "/1.0/instances", check=False)["metadata"]:
        daemon.api("PATCH", url, {"config": {"security.protection.delete": "false"}},
                   check=False)


def api_delete(daemon: Daemon, name: str, force: bool = False) -> dict:  # type: ignore[type-arg]
    """DELETE /1.0/instances/NAME and the finished operation."""
    resp = daemon.api("DELETE", f"/1.0/instances/{name}" + ("?force=1" if force else ""))
    assert resp["type"] == "async", resp
    return daemon.api("GET", f"{resp['operation']}/wait?timeout=60")["metadata"]


def status(daemon: Daemon, name: str) -> str:
    return str(daemon.api("GET", f"/1.0/instances/{name}")["metadata"]["status"])


def test_protected_instance_is_not_deleted(daemon: Daemon) -> None:
    try:
        daemon.cli("init", "debian", "p1", "-c", "security.protection.delete=true")
        op = api_delete(daemon, "p1")
        assert (op["status"], op["status_code"], op["err"]) == ("Failure", 400, PROTECTED)
        assert status(daemon, "p1") == "Stopped"
        cli = daemon.cli("delete", "p1", check=False)
        assert cli.returncode == 1 and cli.stdout == ""
        assert cli.stderr == (f"Error: Failed deleting instance 'p1': {PROTECTED} (set "
                              "security.protection.delete=false first)\n")

        daemon.cli("start", "p1")
        cli = daemon.cli("delete", "--force", "p1", check=False)
        assert cli.returncode == 1 and PROTECTED in cli.stderr
        assert status(daemon, "p1") == "Running"  # refused before the stop
        op = api_delete(daemon, "p1", force=True)
        assert (op["status_code"], op["err"]) == (400, PROTECTED)
        assert status(daemon, "p1") == "Running"
        failed = [op for op in daemon.api("GET", "/1.0/operations?recursion=1")["metadata"]
                  .get("failure", []) if op["description"] == "Deleting instance p1"]
        assert len(failed) == 2  # the API's two: the CLI refused before asking

        # The instance's own config overrides a profile that protects it.
        daemon.cli("profile", "create", "guard")
        daemon.cli("profile", "set", "guard", "security.protection.delete=true")
        daemon.cli("init", "debian", "p2", "-p", "default", "-p", "guard")
        assert api_delete(daemon, "p2")["err"] == PROTECTED
        daemon.cli("config", "set", "p2", "security.protection.delete=false")
        daemon.cli("delete", "p2")

        daemon.cli("config", "set", "p1", "security.protection.delete=false")
        daemon.cli("delete", "--force", "p1")
        assert daemon.api("GET", "/1.0/instances")["metadata"] == []
    finally:
        unprotect_all(daemon)


def test_stopped_ephemeral_goes_even_when_protected(daemon: Daemon) -> None:
    """LXD 5.0 deletes a stopped ephemeral instance with force=true (driver_lxc.go onStop),
    which protection does not stop."""
    try:
        daemon.cli("launch", "debian", "e1", "--ephemeral", "-c",
                   "security.protection.delete=true")
        daemon.cli("stop", "--force", "e1")
        assert daemon.api("GET", "/1.0/instances")["metadata"] == []
    finally:
        unprotect_all(daemon)


@pytest.mark.skipif(shutil.which("lxc") is None, reason="lxc is not installed")
def test_lxc_client_shows_lxd_message(daemon: Daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """LXD's own client reads the failed operation as it reads LXD's."""
    env = {**os.environ, "LXD_CONF": str(tmp_path / "lxdconf")}
    (tmp_path / "lxdconf").mkdir()

    def lxc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["lxc", *args], env=env, capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL)

    try:
        assert lxc("remote", "add", "lxm", f"unix://{daemon.socket}").returncode == 0
        daemon.cli("init", "debian", "p3", "-c", "security.protection.delete=true")
        proc = lxc("delete", "lxm:p3")
        assert proc.returncode == 1
        assert proc.stderr.strip().endswith(PROTECTED), proc.stderr
        assert status(daemon, "p3") == "Stopped"
    finally:
        unprotect_all(daemon)
