"""exec into a running container: namespaces, cgroup, identity, environment, stdio, exit
status and the interactive pty mode."""

from __future__ import annotations

import os
import select
import time

import pytest

from lxmgr.errors import CommandFailed, Conflict, InvalidConfig, LxmgrError
from lxmgr.linux import libc
from tests.kernel.conftest import exec_out

pytestmark = pytest.mark.kernel


def test_exec_defaults_match_lxd(manager, container) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = exec_out(manager, container, ["sh", "-c", "echo $PATH; echo $HOME; "
                                                 "echo $USER; echo $LANG; id -u; pwd"])
    assert code == 0
    path, home, user, lang, uid, cwd = out.splitlines()
    assert "/usr/bin" in path and "/sbin" in path
    assert (home, user, lang, uid, cwd) == ("/root", "root", "C.UTF-8", "0", "/root")


def test_exec_joins_namespaces_and_cgroup(manager, container) -> None:  # type: ignore[no-untyped-def]
    pid = manager.state(container)["pid"]
    _, out, _ = exec_out(manager, container, ["sh", "-c", "for n in mnt uts ipc pid net user "
                                              "cgroup time; do readlink /proc/self/ns/$n; done"])
    expected = [os.readlink(f"/proc/{pid}/ns/{n}") for n in
                ("mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time")]
    assert out.split() == expected
    _, cg, _ = exec_out(manager, container, ["cat", "/proc/self/cgroup"])
    memory = next(line for line in cg.splitlines() if ":memory:" in line)
    assert memory.endswith(":/")  # the container's own cgroup root
    _, status, _ = exec_out(manager, container, ["grep", "-E", "^(Seccomp|CapBnd)",
                                                 "/proc/self/status"])
    with open(f"/proc/{pid}/status") as f:
        init_status = f.read()
    for line in status.splitlines():
        assert line in init_status


def test_exec_user_group_cwd_env(manager, container) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = exec_out(manager, container, ["sh", "-c", "id -u; id -g; pwd; echo $FOO"])
    assert code == 0
    code2 = manager.exec(container, ["sh", "-c", "id -u > /tmp/u; id -g >> /tmp/u; "
                                     "pwd >> /tmp/u; echo $FOO >> /tmp/u"],
                         uid=65534, gid=65534, cwd="/tmp", env={"FOO": "bar"})
    assert code2 == 0
    _, out, _ = exec_out(manager, container, ["cat", "/tmp/u"])
    assert out.split() == ["65534", "65534", "/tmp", "bar"]


def test_exec_streams_stdin_and_returns_status(manager, container) -> None:  # type: ignore[no-untyped-def]
    data = b"hello\n" * 10000
    code, out, err = exec_out(manager, container, ["sh", "-c", "cat; echo oops >&2; exit 7"],
                              stdin=data)
    assert code == 7 and out.encode() == data and err == "oops\n"
    code, _, _ = exec_out(manager, container, ["sh", "-c", "kill -9 $$"])
    assert code == 137


def test_exec_of_what_cannot_run(manager, container, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """As LXC's lxc_attach_run_command: 127 not found, 126 not executable, the reason in
    one line, nothing on the command's streams (the caller decides what to print)."""
    cases = [("/no/such/command", 127, "Command not found: /no/such/command"),
             ("nosuchcmd", 127, "Command not found: nosuchcmd"),
             ("/etc/hostname", 126, "Command not executable: /etc/hostname (Permission denied)"),
             ("/etc", 126, "Command not executable: /etc (Permission denied)")]
    for command, status, failed in cases:
        with open(tmp_path / "err", "w+b") as err:
            with pytest.raises(CommandFailed) as raised:
                manager.exec(container, [command], stdin=err.fileno(), stdout=err.fileno(),
                             stderr=err.fileno())
            assert (raised.value.exit_status, str(raised.value)) == (status, failed)
            assert err.read() == b""
    with pytest.raises(CommandFailed, match="^Command not found: nosuchcmd$"):
        manager.exec_pty(container, ["nosuchcmd"])
    with pytest.raises(LxmgrError, match="^Failed to change directory to '/nope': No such "
                                         "file or directory$"):
        manager.exec(container, ["true"], cwd="/nope")
    assert exec_out(manager, container, ["sh", "-c", "exit 127"]) == (127, "", "")


def test_exec_pty_with_window_size(manager, container) -> None:  # type: ignore[no-untyped-def]
    handle, master = manager.exec_pty(container, ["sh", "-c", "tty; stty size; read x; "
                                                  "stty size; exit 3"], rows=30, cols=100)
    try:
        out = b""
        deadline = time.monotonic() + 10
        while b"30 100" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                out += os.read(master, 4096)
        libc.set_winsize(master, 40, 120)
        os.write(master, b"go\n")
        while b"40 120" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
        assert manager.exec_wait(handle) == 3
    finally:
        os.close(master)
    text = out.decode()
    assert "/dev/pts/" in text and "30 100" in text and "40 120" in text


def test_exec_errors(manager, container) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig):
        manager.exec(container, [])
    with pytest.raises(InvalidConfig):
        manager.exec(container, ["true"], env={"A=B": "x"})
    manager.stop(container, force=True)
    with pytest.raises(Conflict, match="not running"):
        manager.exec(container, ["true"])
