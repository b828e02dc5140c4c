"""One lxmgr CLI managing another host's lxmgrd over HTTPS: `remote add NAME TOKEN` (the token
from `lxmgr config trust add` there), then REMOTE:NAME in the verbs, `remote switch`, and
the refusals (reused token, untrusted client, mixed remotes). The "other host" is a real
lxmgrd on this machine listening on 127.0.0.1; the client's own `local` daemon does not
exist, so nothing can silently go there."""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def remote_cli(daemon, tmp_path):  # type: ignore[no-untyped-def]
    port = _free_port()
    daemon.cli("config", "set", "core.https_address", f"127.0.0.1:{port}")
    env = {**daemon.env, "LXMGR_CONF": str(tmp_path / "conf"),
           "LXMGR_DIR": str(tmp_path / "no-local-daemon")}

    def cli(*args: str, input: str | None = None, check: bool = True,
            conf: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([daemon.launcher, *args],
                              env={**env, "LXMGR_CONF": conf} if conf else env, input=input,
                              capture_output=True, text=True, timeout=180)
        if check and proc.returncode != 0:
            raise AssertionError(f"lxmgr {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    cli.port = port  # type: ignore[attr-defined]
    return cli


def _token(daemon: Any, name: str) -> str:
    return str(daemon.cli("config", "trust", "add", "--name", name).stdout.splitlines()[-1])


def _refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert all(word in lines[0] for word in words), lines[0]


def test_a_remote_server_over_https(daemon, remote_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = remote_cli
    token = _token(daemon, "laptop")
    assert "now trusted" in cli("remote", "add", "prod", token).stdout
    # Another client (its own certificate) cannot reuse the token.
    _refused(cli("remote", "add", "again", token, check=False, conf=str(tmp_path / "other")),
             "token")
    listed = json.loads(cli("remote", "list", "--format", "json").stdout)
    prod = next(r for r in listed if r["name"] == "prod")
    assert prod["protocol"] == "lxd" and prod["url"] == f"https://127.0.0.1:{cli.port}"
    assert (tmp_path / "conf" / "servercerts" / "prod.crt").exists()

    assert "debian" in cli("image", "list", "prod:").stdout
    assert "debian" in cli("image", "info", "prod:debian").stdout
    cli("launch", "prod:debian", "prod:rc1")
    rows = json.loads(cli("list", "prod:", "--format", "json").stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("rc1", "Running")]
    assert cli("exec", "prod:rc1", "--", "hostname").stdout.strip() == "rc1"
    assert cli("exec", "prod:rc1", "--", "sh", "-c", "exit 3", check=False).returncode == 3
    assert cli("exec", "prod:rc1", "--", "cat", input="over tls\n").stdout == "over tls\n"
    # A pty session: one websocket read and written at once through the TLS bridge.
    tty = cli("exec", "-t", "prod:rc1", "--", "sh", "-c", "tty; read x; echo got $x",
              input="line\n").stdout
    assert "/dev/pts/" in tty and "got line" in tty
    pushed = tmp_path / "pushed"
    pushed.write_text("from the client\n")
    cli("file", "push", str(pushed), "prod:rc1/root/pushed")
    cli("file", "pull", "prod:rc1/root/pushed", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "from the client\n"
    cli("config", "set", "prod:rc1", "user.where=remote")
    assert cli("config", "get", "prod:rc1", "user.where").stdout.strip() == "remote"
    assert "rc1" in cli("info", "prod:rc1").stdout
    trusted = json.loads(cli("config", "trust", "list", "prod:", "--format", "json").stdout)
    assert [c["name"] for c in trusted] == ["laptop"]
    _refused(cli("copy", "prod:rc1", "local:rc2", check=False), "one remote")
    _refused(cli("launch", "prod:debian", "rc9", check=False), "prod")
    _refused(cli("list", "nowhere:", check=False), "nowhere")

    cli("remote", "switch", "prod")
    assert cli("remote", "get-default").stdout.strip() == "prod"
    assert [r["name"] for r in json.loads(cli("list", "--format", "json").stdout)] == ["rc1"]
    assert cli("exec", "rc1", "--", "cat", "/etc/hostname").stdout == "rc1\n"
    cli("stop", "rc1", "--force")
    cli("delete", "rc1")
    assert json.loads(cli("list", "--format", "json").stdout) == []
    cli("remote", "switch", "local")
    _refused(cli("list", check=False), "lxmgrd is not running")

    # The server forgets the client: every call is refused in one line.
    fingerprints = [c["fingerprint"] for c in
                    daemon.api("GET", "/1.0/certificates?recursion=1")["metadata"]]
    daemon.cli("config", "trust", "remove", fingerprints[0])
    _refused(cli("list", "prod:", check=False), "not trusted")
    cli("remote", "remove", "prod")
    assert not (tmp_path / "conf" / "servercerts" / "prod.crt").exists()


def test_remote_add_refuses_bad_input(daemon, remote_cli) -> None:  # type: ignore[no-untyped-def]
    cli = remote_cli
    _refused(cli("remote", "add", "Bad_Name", "127.0.0.1", "--token", "x", check=False),
             "Bad_Name")
    _refused(cli("remote", "add", "p1", "--token", "bm90IGEgdG9rZW4=", check=False),
             "token")
    # No token and no --accept-certificate, not a terminal: refused, nothing stored.
    _refused(cli("remote", "add", "p2", f"127.0.0.1:{cli.port}", check=False),
             "--accept-certificate")
    # Accepted certificate but the client is not trusted: refused, nothing stored.
    _refused(cli("remote", "add", "p3", f"127.0.0.1:{cli.port}", "--accept-certificate",
                 check=False), "--token")
    port = _free_port()
    _refused(cli("remote", "add", "p4", f"127.0.0.1:{port}", "--accept-certificate",
                 check=False), "Cannot reach")
    names = [r["name"] for r in json.loads(cli("remote", "list", "--format", "json").stdout)]
    assert not {"p1", "p2", "p3", "p4"} & set(names)
    _refused(cli("remote", "switch", "images", check=False), "image server")
