"""Backups and publish through the CLI against a real lxmgrd: export, delete, import, boots
with the same content and snapshots; publish a snapshot and launch from it."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def sh(daemon, name: str, script: str) -> str:  # type: ignore[no-untyped-def]
    return daemon.cli("exec", name, "-T", "--", "sh", "-c", script).stdout


def test_export_import_publish(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "bx1")
    sh(daemon, "bx1", "echo first > /srv/data; sync")
    daemon.cli("snapshot", "bx1", "s0")
    sh(daemon, "bx1", "echo second > /srv/data; sync")
    target = tmp_path / "bx1.tar"
    out = daemon.cli("export", "bx1", str(target), "--compression", "none").stdout
    assert str(target) in out and target.stat().st_size > 0
    assert daemon.api("GET", "/1.0/instances/bx1/backups")["metadata"] == []  # cleaned up
    daemon.cli("delete", "-f", "bx1")
    assert "bx1" in daemon.cli("import", str(target)).stdout
    daemon.cli("start", "bx1")
    assert sh(daemon, "bx1", "cat /srv/data; hostname") == "second\nbx1\n"
    assert "| s0" in daemon.cli("info", "bx1").stdout
    daemon.cli("publish", "bx1/s0", "--alias", "from-s0")
    daemon.cli("launch", "from-s0", "bx2")
    assert sh(daemon, "bx2", "cat /srv/data; hostname") == "first\nbx2\n"
    bad = daemon.cli("import", str(target), check=False)  # bx1 exists
    assert bad.returncode == 1 and "already exists" in bad.stderr
    missing = daemon.cli("export", "nosuch", str(tmp_path / "x.tar"), check=False)
    assert missing.returncode == 1 and "nosuch" in missing.stderr
    assert not (tmp_path / "x.tar").exists()
    daemon.cli("delete", "-f", "bx1", "bx2")
