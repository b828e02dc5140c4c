"""LXD's own `lxc` client (Debian's lxd-client; skipped when not installed) against a real
lxmgrd over its unix socket: launch, list, exec, snapshot, restore, copy, move, export,
import, stop, delete. Its config lives in a private LXD_CONF; no LXD daemon is involved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system,
              pytest.mark.skipif(shutil.which("lxc") is None, reason="lxc is not installed")]


def lxc_runner(conf: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`lxc ARGS...` with its config in conf (made here: lxc 5.0 does not create it for
    `remote add`); a failure raises with lxc's message unless check=False."""
    conf.mkdir(exist_ok=True)
    env = {**os.environ, "LXD_CONF": str(conf)}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["lxc", *args], env=env, capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"lxc {' '.join(args)}: {proc.stderr.strip()}")
        return proc
    return run


@pytest.fixture
def lxc(daemon, tmp_path):  # type: ignore[no-untyped-def]
    run = lxc_runner(tmp_path / "lxdconf")

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


def test_lxc_over_https_with_a_trust_token(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """lxc remote add NAME TOKEN (the token from lxmgr config trust add), then launch, list
    and exec (over wss) through the TLS listener."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    daemon.cli("config", "set", "core.https_address", f"127.0.0.1:{port}")
    token = daemon.cli("config", "trust", "add", "--name", "lxc-test").stdout.splitlines()[-1]
    env = {**os.environ, "LXD_CONF": str(tmp_path / "lxdconf")}

    def lxc(*args: str) -> str:
        proc = subprocess.run(["lxc", *args], env=env, capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"lxc {' '.join(args)}: {proc.stderr.strip()}"
        return proc.stdout

    lxc("remote", "add", "lxh", token)
    lxc("launch", "lxh:debian", "lxh:tl1")
    assert lxc("exec", "lxh:tl1", "--", "hostname").strip() == "tl1"
    assert [r["name"] for r in json.loads(lxc("list", "lxh:", "--format", "json"))] == ["tl1"]
    lxc("delete", "lxh:tl1", "--force")
    certs = daemon.api("GET", "/1.0/certificates?recursion=1")["metadata"]
    assert [c["name"] for c in certs] == ["lxc-test"]


def test_lxc_lists_and_revokes_trust_tokens(lxc, daemon) -> None:  # type: ignore[no-untyped-def]
    """lxc config trust add / list-tokens / revoke-token read the token operations."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    daemon.cli("config", "set", "core.https_address", f"127.0.0.1:{port}")
    lxc("remote", "switch", "lxm")  # lxc 5.0.2 reads a lone `lxm:` as the certificate file
    lxc("config", "trust", "add", "--name", "tok-a")
    lxc("config", "trust", "add", "--name", "tok-b")
    rows = lxc("config", "trust", "list-tokens", "lxm:", "--format", "csv").stdout
    assert sorted(line.split(",")[0] for line in rows.splitlines()) == ["tok-a", "tok-b"]
    lxc("config", "trust", "revoke-token", "lxm:tok-a")
    rows = lxc("config", "trust", "list-tokens", "lxm:", "--format", "csv").stdout
    assert [line.split(",")[0] for line in rows.splitlines()] == ["tok-b"]
    assert [t["name"] for t in daemon.api("GET", "/1.0/certificates?recursion=1")[
        "metadata"]] == []


def test_lxc_shares_a_host_directory(lxc, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The dev-VM user's first step as an LXD user types it: `lxc config device add ... disk`
    with shift=true on a running container, then removed; a bad one is refused by name."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.c").write_text("int main(void) { return 0; }\n")
    os.chown(code / "main.c", 1000, 1000)
    lxc("launch", "lxm:debian", "lxm:ld1")
    lxc("config", "device", "add", "lxm:ld1", "code", "disk", f"source={code}", "path=/code",
        "shift=true")
    assert lxc("exec", "lxm:ld1", "--", "stat", "-c", "%u", "/code/main.c").stdout == "1000\n"
    assert "shift: \"true\"" in lxc("config", "device", "show", "lxm:ld1").stdout
    bad = lxc("config", "device", "add", "lxm:ld1", "bad", "disk", "source=/nonexistent",
              "path=/x", check=False)
    assert bad.returncode != 0 and "Missing source path '/nonexistent'" in bad.stderr
    lxc("config", "device", "remove", "lxm:ld1", "code")
    assert lxc("exec", "lxm:ld1", "--", "test", "-e", "/code/main.c", check=False
               ).returncode == 1
    lxc("delete", "lxm:ld1", "--force")
