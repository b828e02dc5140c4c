"""The dev-VM user's first step, verbatim through the CLI and a real daemon: share a host
checkout with a running container, see it owned by the right user inside, keep it across a
restart and a daemon restart, remove it; bad disks are one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def test_share_a_checkout_live(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code = tmp_path / "code"
    code.mkdir()
    (code / "README").write_text("hello\n")
    os.chown(code / "README", 1000, 1000)
    daemon.cli("launch", "debian", "web1")
    out = daemon.cli("config", "device", "add", "web1", "code", "disk", f"source={code}",
                     "path=/code", "shift=true").stdout
    assert out.strip() == "Device code added to web1"
    run = daemon.cli("exec", "web1", "--", "stat", "-c", "%u %n", "/code/README").stdout
    assert run.split() == ["1000", "/code/README"]
    daemon.cli("exec", "web1", "--", "sh", "-c", "echo from-inside > /code/new")
    assert (code / "new").read_text() == "from-inside\n"
    assert "code" in daemon.cli("config", "device", "list", "web1").stdout
    daemon.cli("restart", "web1")
    assert daemon.cli("exec", "web1", "--", "cat", "/code/README").stdout == "hello\n"
    daemon.stop()  # supervisors and their mounts outlive the daemon
    daemon.start()
    assert daemon.cli("exec", "web1", "--", "cat", "/code/README").stdout == "hello\n"
    daemon.cli("config", "device", "remove", "web1", "code")
    gone = daemon.cli("exec", "web1", "--", "mountpoint", "-q", "/code", check=False)
    assert gone.returncode == 32  # util-linux mountpoint: "not a mountpoint"
    assert (code / "README").exists()


@pytest.mark.parametrize("keys,message", [
    (("source=/nonexistent/dir", "path=/x"), "Missing source path '/nonexistent/dir'"),
    (("source=relative", "path=/x"), "'source'"),
    (("source=/srv", "path=/proc/x"), "can't be under /proc"),
    (("source=/srv", "path=/x", "shift=maybe"), "'shift'"),
])
def test_bad_disk_is_one_line(daemon, keys, message) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("init", "debian", "w2")
    proc = daemon.cli("config", "device", "add", "w2", "bad", "disk", *keys, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert "bad" not in daemon.cli("config", "device", "list", "w2").stdout
