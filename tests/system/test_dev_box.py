"""`lxmgr dev up` walked as a user walks it: a host user with a code checkout in their home
and an ssh key runs `lxmgr dev up dev1` (through sudo: SUDO_USER), then `ssh dev1.lxmgr` as
themselves, edits on the host and sees it inside with their uid, builds inside and finds the
output on the host owned by them, sudo works without a password; `dev shell`, `dev down`.

The host user is made for the test (useradd, home under /tmp) and removed after. The box is
on a hermetic test bridge (no NAT, no upstream DNS). ssh runs as that user in a private mount
namespace where /etc/hosts is the daemon's hosts file (LXMGR_HOSTS_FILE): the machine's own
/etc/hosts is never written by tests."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lxmgr.linux import consts as c
from lxmgr.linux import libc
from tests.private_state import link_cached_image
from tests.system.conftest import running_daemon

pytestmark = [pytest.mark.kernel, pytest.mark.system]


@dataclass
class HostUser:
    name: str
    uid: int
    gid: int
    home: Path
    key: Path


def _free_uid(start: int = 23000) -> int:
    used = {p.pw_uid for p in pwd.getpwall()}
    return next(u for u in range(start, start + 1000) if u not in used and u not in
                {g for g in used})


@pytest.fixture
def host_user() -> Iterator[HostUser]:
    tag = uuid.uuid4().hex[:6]
    name, uid = f"lxdev{tag}", _free_uid()
    base = Path(f"/tmp/lxdev-{tag}")
    home = base / "home" / name
    home.mkdir(parents=True)
    base.chmod(0o755)
    (base / "home").chmod(0o755)
    subprocess.run(["useradd", "-u", str(uid), "-U", "-M", "-d", str(home), "-s", "/bin/bash",
                    name], check=True)
    try:
        gid = pwd.getpwnam(name).pw_gid
        (home / ".ssh").mkdir(mode=0o700)
        key = home / ".ssh" / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        (home / "code").mkdir()
        (home / "code" / "main.c").write_text("int main(void) { return 0; }\n")
        for path in [home, *home.rglob("*")]:
            os.chown(path, uid, gid, follow_symlinks=False)
        yield HostUser(name, uid, gid, home, key)
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def devd(host_user: HostUser) -> Iterator:  # type: ignore[type-arg]
    """A daemon whose default profile puts eth0 on a hermetic test bridge."""
    with running_daemon("lxdv") as d:
        d.env["LXMGR_HOSTS_FILE"] = f"{d.root}/hosts"
        d.env["LXMGR_LXCFS"] = ""  # lxmgrd's own lxcfs, as on a user's host (stopped at exit)
        d.stop()
        d.start()
        link_cached_image(d.root, "debian-dev")
        net = f"lxdv{uuid.uuid4().hex[:6]}"
        d.cli("network", "create", net, "ipv4.address=auto", "ipv4.nat=false")
        d.cli("profile", "device", "add", "default", "eth0", "nic", f"network={net}",
              "name=eth0")
        try:
            yield d
        finally:
            for url in d.api("GET", "/1.0/instances")["metadata"]:
                d.cli("delete", url.rsplit("/", 1)[-1], "--force", check=False)
            d.cli("profile", "device", "remove", "default", "eth0", check=False)
            d.cli("network", "delete", net, check=False)


def _with_hosts(hosts: str, user: HostUser | None = None):  # type: ignore[no-untyped-def]
    """preexec_fn: a private mount namespace where /etc/hosts is the daemon's hosts file,
    then (with user) drop to the user, as their own login would be."""
    def setup() -> None:
        libc.unshare(c.CLONE_NEWNS)
        libc.mount(None, "/", None, c.MS_REC | c.MS_PRIVATE, None)
        libc.mount(hosts, "/etc/hosts", None, c.MS_BIND, None)
        if user is not None:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
    return setup


def _dev_up(devd, user: HostUser, *args: str) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def, type-arg]
    """`sudo lxmgr dev up ...` as the user would run it (SUDO_USER), resolving names
    through the daemon's hosts file."""
    hosts = f"{devd.root}/hosts"
    if not os.path.exists(hosts):
        Path(hosts).write_text("127.0.0.1\tlocalhost\n")
    return subprocess.run([*devd.cli_argv, "dev", "up", *args],
                          env={**devd.env, "SUDO_USER": user.name},
                          preexec_fn=_with_hosts(hosts), capture_output=True, text=True,
                          timeout=300, check=False)


def _ssh(user: HostUser, hosts: str, target: str, command: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        ["ssh", "-i", str(user.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
         target, command],
        preexec_fn=_with_hosts(hosts, user), capture_output=True, text=True,
        env={"HOME": str(user.home), "PATH": os.environ["PATH"], "USER": user.name},
        timeout=60, check=False)


def _wait_for_name(hosts: str, name: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while name not in Path(hosts).read_text():
        assert time.monotonic() < deadline, f"{name} not in {hosts} after {timeout} s"
        time.sleep(0.1)


def test_dev_up_then_ssh_as_yourself(devd, host_user: HostUser) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    up = _dev_up(devd, host_user, "dev1", "-c", "limits.memory=512MiB")
    print(f"dev up: {time.monotonic() - started:.2f} s\n{up.stdout}")
    assert up.returncode == 0, up.stderr
    # The namespace's /etc/hosts was bound before the daemon replaced the file (by rename,
    # as on a real host), so this CLI may not have seen the name yet: either line is right.
    assert "Ready: ssh dev1.lxmgr" in up.stdout or "Ready: ssh 10." in up.stdout, up.stdout
    hosts = f"{devd.root}/hosts"
    _wait_for_name(hosts, "dev1.lxmgr")
    run = _ssh(host_user, hosts, "dev1.lxmgr",
               "id -un; id -u; pwd; cat code/main.c; free -m | awk '/^Mem:/ {print \"mem\", $2}'; "
               "sudo -n id -u; echo built > code/out.o")
    print(f"dev up to a first ssh: {time.monotonic() - started:.2f} s")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:3] == [host_user.name, str(host_user.uid), str(host_user.home)], lines
    assert "int main" in run.stdout and lines[-1] == "0"  # sudo -n: no password asked
    assert "mem 512" in lines  # free -m shows the box's limit (lxcfs)
    out = host_user.home / "code" / "out.o"
    assert out.read_text() == "built\n"
    assert (out.stat().st_uid, out.stat().st_gid) == (host_user.uid, host_user.gid)
    # Edit on the host, see it inside with the user's uid.
    (host_user.home / "code" / "main.c").write_text("int main(void) { return 1; }\n")
    seen = devd.cli("exec", "dev1", "--", "stat", "-c", "%u %U", f"{host_user.home}/code/main.c")
    assert seen.stdout.split() == [str(host_user.uid), host_user.name]
    # Again: idempotent, the box comes back after down, still the user's.
    devd.cli("dev", "down", "dev1")
    again = _dev_up(devd, host_user, "dev1")
    assert "Ready: ssh dev1.lxmgr" in again.stdout, again.stdout + again.stderr
    config = devd.api("GET", "/1.0/instances/dev1")["metadata"]["config"]
    assert config["boot.autostart"] == "true" and config["user.lxmgr.dev"] == host_user.name
    shell = devd.cli("dev", "shell", "dev1", input="id -un\n")
    assert host_user.name in shell.stdout
    devd.cli("dev", "down", "dev1", "--rm")
    assert devd.api("GET", "/1.0/instances")["metadata"] == []
    assert (host_user.home / "code" / "main.c").exists()


def test_dev_up_refuses_root_and_unknown_users(devd) -> None:  # type: ignore[no-untyped-def]
    root = devd.cli("dev", "up", "dev2", env={"SUDO_USER": "root"}, check=False)
    assert root.returncode == 1 and "not root" in root.stderr
    nobody = devd.cli("dev", "up", "dev2", "--user", "no-such-user-x", check=False)
    assert nobody.returncode == 1 and "User 'no-such-user-x' not found" in nobody.stderr
    assert devd.api("GET", "/1.0/instances")["metadata"] == []


def test_desktop_sockets_reach_the_host(devd, host_user: HostUser) -> None:  # type: ignore[no-untyped-def]
    """A Wayland-like socket in the user's runtime dir is reachable from the box, as the user,
    and login shells are told where it is."""
    import socket
    import threading

    runtime = host_user.home.parent.parent / "run"
    runtime.mkdir(mode=0o700)
    os.chown(runtime, host_user.uid, host_user.gid)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(runtime / "wayland-0"))
    os.chown(runtime / "wayland-0", host_user.uid, host_user.gid)
    server.listen(1)
    server.settimeout(60)
    got: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
            with conn:
                got.append(conn.recv(100))
        except OSError:
            pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        up = subprocess.run([*devd.cli_argv, "dev", "up", "dev3"],
                            env={**devd.env, "SUDO_USER": host_user.name,
                                 "XDG_RUNTIME_DIR": str(runtime)},
                            capture_output=True, text=True, timeout=300, check=False)
        assert up.returncode == 0, up.stderr
        devices = devd.api("GET", "/1.0/instances/dev3")["metadata"]["devices"]
        assert devices["gui-wayland"]["path"] == "/mnt/.lxmgr-gui/wayland-0"
        profile = devd.cli("exec", "dev3", "--", "cat", "/etc/profile.d/lxmgr-gui.sh").stdout
        assert profile == "export WAYLAND_DISPLAY=/mnt/.lxmgr-gui/wayland-0\n"
        perl = ("use Socket; socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die; "
                "connect($s, pack_sockaddr_un($ENV{WAYLAND_DISPLAY})) or die \"$!\"; "
                "syswrite($s, q{hello from the box});")
        run = devd.cli("exec", "dev3", "--user", str(host_user.uid), "--group",
                       str(host_user.gid), "--", "sh", "-c",
                       f". /etc/profile.d/lxmgr-gui.sh && perl -e '{perl}'", check=False)
        assert run.returncode == 0, run.stderr
        thread.join(10)
        assert got == [b"hello from the box"]
    finally:
        server.close()
