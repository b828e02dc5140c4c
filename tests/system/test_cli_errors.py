"""What a user reads when something cannot be done, through the real CLI and a real lxmgrd:
one line on stderr, a meaningful exit status, nothing left behind.

exec of a command that cannot run (127 not found, 126 not executable, as LXC and a shell),
on the click-free fast path, through click (a `local:` name) and with a pty; a misspelt
config key answered with the close one; an image that exists nowhere and an image server
that cannot be reached (a remote on a closed 127.0.0.1 port: nothing leaves this host)."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.system]


def _one_line(proc: subprocess.CompletedProcess[str], status: int, line: str) -> None:
    assert (proc.returncode, proc.stderr, proc.stdout) == (status, f"Error: {line}\n", "")


def test_exec_of_what_cannot_run(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "ex1")
    for prefix in ((), ("-T",), ("-t",)):  # fast path, fast path without pty, pty
        for name in ("ex1", "local:ex1"):  # the fast path, click (a remote name)
            _one_line(daemon.cli("exec", *prefix, name, "--", "nosuchcmd", check=False),
                      127, "Command not found: nosuchcmd")
            _one_line(daemon.cli("exec", *prefix, name, "--", "/etc/hostname", check=False),
                      126, "Command not executable: /etc/hostname (Permission denied)")
    # A command that runs and exits 127 itself is not an error of ours.
    run = daemon.cli("exec", "ex1", "--", "sh", "-c", "echo own >&2; exit 127", check=False)
    assert (run.returncode, run.stderr) == (127, "own\n")
    _one_line(daemon.cli("exec", "ex1", "--cwd", "/nope", "--", "true", check=False), 1,
              "Failed to change directory to '/nope': No such file or directory")
    # The API: a finished operation with LXD's return code, and why.
    op = daemon.api("POST", "/1.0/instances/ex1/exec", {"command": ["nosuchcmd"]})
    done = daemon.api("GET", f"{op['operation']}/wait?timeout=30")["metadata"]
    assert done["status"] == "Success"
    assert done["metadata"] == {"return": 127, "error": "Command not found: nosuchcmd"}


def test_a_misspelt_config_key_gets_the_close_one(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("init", "debian", "cfg1")
    _one_line(daemon.cli("config", "set", "cfg1", "limits.memroy", "1GiB", check=False), 1,
              "Unknown config key 'limits.memroy': did you mean 'limits.memory'?")
    _one_line(daemon.cli("profile", "set", "default", "limits.memroy=1GiB", check=False), 1,
              "Unknown config key 'limits.memroy': did you mean 'limits.memory'?")
    _one_line(daemon.cli("network", "create", "nt0", "ipv4.adress=10.9.9.1/24", check=False),
              1, "Unknown network config key 'ipv4.adress': did you mean 'ipv4.address'?")
    assert "limits" not in daemon.cli("config", "show", "cfg1").stdout


def test_image_errors_say_what_to_do(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {**daemon.env, "LXMGR_CONF": str(tmp_path / "conf")}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([daemon.launcher, *args], env=env, capture_output=True,
                                  text=True, timeout=120)

        assert cli("remote", "add", "dead", f"http://127.0.0.1:{port}").returncode == 0
        unreachable = (f"Image server 127.0.0.1:{port} is unreachable (Connection refused): "
                       "without it, use a local recipe (debian, debian-dev), `lxmgr image "
                       "import`, or a reachable remote")
        for args in (("launch", "dead:debian/12", "web3"), ("init", "dead:debian/12", "web3")):
            proc = cli(*args)
            assert (proc.returncode, proc.stderr) == (1, f"Error: {unreachable}\n")
        _one_line(cli("image", "copy", "dead:debian/12", "local:"), 1, unreachable)
        _one_line(cli("image", "list", "dead:"), 1, unreachable)
    for args in (("launch", "nosuch", "web3"), ("init", "nosuch", "web3")):
        proc = daemon.cli(*args, check=False)
        assert proc.returncode == 1 and re.fullmatch(
            r"Error: Image 'nosuch' not found: local images and recipes are (.+, )?debian"
            r"(, .+)?; or use a remote \(ubuntu:24\.04, images:debian/12\)\n", proc.stderr), \
            proc.stderr
    for args in (("info",), ("delete",), ("export", str(tmp_path / "x"))):
        proc = daemon.cli("image", args[0], "nosuch", *args[1:], check=False)
        assert proc.returncode == 1 and re.fullmatch(
            r"Error: Image 'nosuch' not found: local images are .*debian.*\n", proc.stderr), \
            proc.stderr
    assert daemon.api("GET", "/1.0/instances")["metadata"] == []
