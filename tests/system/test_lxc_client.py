"""LXD's own `lxc` client (Debian's lxd-client; skipped when not installed) against a real
lxmgrd over its unix socket: launch, list, exec, snapshot, restore, copy, move, export,
import, stop, delete. Its config lives in a private LXD_CONF; no LXD daemon is involved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system,
              pytest.mark.skipif(shutil.which("lxc") is None, reason="lxc is not installed")]


@pytest.fixture
def lxc(daemon, tmp_path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "LXD_CONF": str(tmp_path / "lxdconf")}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["lxc", *args], env=env, capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"lxc {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    run("remote", "add", "lxm", f"unix://{daemon.socket}")
    return run


def test_lxc_drives_lxmgr(lxc, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lxc("launch", "lxm:debian", "lxm:lc1")
    rows = json.loads(lxc("list", "lxm:", "--format", "json").stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("lc1", "Running")]
    assert lxc("exec", "lxm:lc1", "--", "sh", "-c", "echo hi; exit 3", check=False
               ).returncode == 3
    assert lxc("exec", "lxm:lc1", "--", "hostname").stdout.strip() == "lc1"
    lxc("exec", "lxm:lc1", "--", "sh", "-c", "echo one > /root/f")
    pushed = tmp_path / "pushed"
    pushed.write_text("from the host\n")
    lxc("file", "push", str(pushed), "lxm:lc1/root/pushed", "--mode", "0600")
    assert lxc("exec", "lxm:lc1", "--", "stat", "-c", "%a %s", "/root/pushed").stdout == \
        "600 14\n"
    lxc("file", "pull", "lxm:lc1/etc/hostname", str(tmp_path / "hostname"))
    assert (tmp_path / "hostname").read_text() == "lc1\n"
    lxc("snapshot", "lxm:lc1", "s0")
    lxc("exec", "lxm:lc1", "--", "sh", "-c", "echo two > /root/f")
    lxc("restore", "lxm:lc1", "s0")
    assert lxc("exec", "lxm:lc1", "--", "cat", "/root/f").stdout == "one\n"
    assert "lc1" in lxc("info", "lxm:lc1").stdout
    lxc("copy", "lxm:lc1", "lxm:lc2")
    lxc("move", "lxm:lc2", "lxm:lc3")
    backup = tmp_path / "lc1.tar"
    lxc("export", "lxm:lc1", str(backup), "--compression", "none")
    lxc("delete", "lxm:lc1", "--force")
    lxc("import", "lxm:", str(backup))
    lxc("start", "lxm:lc1")
    assert lxc("exec", "lxm:lc1", "--", "cat", "/root/f").stdout == "one\n"
    lxc("stop", "lxm:lc1", "--force")
    lxc("delete", "lxm:lc1")
    lxc("delete", "lxm:lc3")
    assert json.loads(lxc("list", "lxm:", "--format", "json").stdout) == []
    assert "default" in lxc("storage", "info", "lxm:default").stdout
