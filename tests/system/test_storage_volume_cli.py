"""A shared custom volume through the CLI and a real daemon, as a user runs it: create it,
attach it to two running containers, write in one and read in the other, see delete refused
in one line while attached, detach, snapshot/restore, delete."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def test_share_a_volume_between_two_containers(daemon) -> None:  # type: ignore[no-untyped-def]
    cli = daemon.cli
    assert cli("storage", "volume", "create", "default", "shared").stdout == \
        "Storage volume shared created\n"
    try:
        for name in ("a1", "b1"):
            cli("launch", "debian", name)
            cli("storage", "volume", "attach", "default", "shared", name, "/srv/shared")
        cli("exec", "a1", "--", "sh", "-c", "echo hello > /srv/shared/note")
        assert cli("exec", "b1", "--", "cat", "/srv/shared/note").stdout == "hello\n"
        assert cli("exec", "b1", "--", "stat", "-c", "%U", "/srv/shared/note").stdout == \
            "root\n"
        listed = cli("storage", "volume", "list", "default", "-f", "csv").stdout
        assert "custom,shared,,filesystem,2" in listed.splitlines()
        refused = cli("storage", "volume", "delete", "default", "shared", check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            "Error: The storage volume is still in use"]
        for name in ("a1", "b1"):
            cli("storage", "volume", "detach", "default", "shared", name)
        gone = cli("exec", "a1", "--", "mountpoint", "-q", "/srv/shared", check=False)
        assert gone.returncode == 32  # util-linux mountpoint: "not a mountpoint"
        assert cli("storage", "volume", "snapshot", "default", "shared").stdout == \
            "Snapshot shared/snap0 created\n"
        cli("storage", "volume", "attach", "default", "shared", "a1", "/srv/shared")
        cli("exec", "a1", "--", "rm", "/srv/shared/note")
        cli("storage", "volume", "detach", "default", "shared", "a1")
        cli("storage", "volume", "restore", "default", "shared", "snap0")
        cli("storage", "volume", "attach", "default", "shared", "b1", "/mnt")
        assert cli("exec", "b1", "--", "cat", "/mnt/note").stdout == "hello\n"
        cli("storage", "volume", "detach", "default", "shared", "b1")
    finally:
        cli("delete", "--force", "a1", "b1", check=False)
    assert cli("storage", "volume", "delete", "default", "shared").stdout == \
        "Storage volume shared deleted\n"
    assert cli("storage", "volume", "list", "default", "-f", "csv").stdout.strip() == ""
