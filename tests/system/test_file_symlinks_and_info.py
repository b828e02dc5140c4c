"""Two things a user hit, through the installed CLI against a real lxmgrd and a booted
container: `lxmgr file pull` of symlinks (the file's content for `-` and for a local path,
relative and absolute targets, never leaving the container; symlinks inside a -r tree kept
as symlinks, as lxc does) and `lxmgr info` (real CPU time of a busy container, the limits
beside the usage)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import uuid

import pytest

from lxmgr.cli.terminal import format_size

pytestmark = [pytest.mark.kernel, pytest.mark.system]

TREE = """set -e
mkdir -p /srv/t/dir "$MARKER_DIR"
echo data > /srv/t/f
echo in-dir > /srv/t/dir/g
ln -s f /srv/t/rel
ln -s /srv/t/f /srv/t/abs
ln -s ../../etc/os-release /srv/t/up
ln -s rel /srv/t/chain
ln -s dir /srv/t/dirlink
ln -s /nowhere /srv/t/dangling
echo container-side > "$MARKER_DIR/marker"
ln -s "../../../../../../../../..$MARKER_DIR/marker" /srv/t/escape
"""


def booted(daemon, name: str) -> None:  # type: ignore[no-untyped-def]
    """Wait for systemd's boot to finish: systemd-tmpfiles empties /tmp on its way. Right
    after the launch systemctl may find no manager to ask yet (it prints nothing): ask again."""
    import time

    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        state = daemon.cli("exec", name, "--", "timeout", "60", "systemctl",
                           "is-system-running", "--wait", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.1)
    assert state in ("running", "degraded"), state


def test_file_pull_follows_symlinks(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "f1")
    booted(daemon, "f1")
    # A host file the escape link would reach if it were resolved on the host.
    host_dir = tmp_path / f"host-{uuid.uuid4().hex[:8]}"
    host_dir.mkdir()
    (host_dir / "marker").write_text("HOST-SECRET\n")
    daemon.cli("exec", "f1", "--env", f"MARKER_DIR={host_dir}", "--", "sh", "-c", TREE)
    real = daemon.cli("exec", "f1", "--", "cat", "/usr/lib/os-release").stdout
    assert "PRETTY_NAME=" in real

    # The --help example: /etc/os-release is a relative symlink to ../usr/lib/os-release.
    assert daemon.cli("file", "pull", "f1/etc/os-release", "-").stdout == real
    out = tmp_path / "out"
    out.mkdir()
    daemon.cli("file", "pull", "f1/etc/os-release", str(out / "os-release"))
    assert_regular(out / "os-release", real)
    daemon.cli("file", "pull", "f1/etc/os-release", str(out))  # into a directory
    assert_regular(out / "os-release", real)

    for link, content in (("rel", "data\n"), ("abs", "data\n"), ("chain", "data\n"),
                          ("up", real), ("escape", "container-side\n")):
        assert daemon.cli("file", "pull", f"f1/srv/t/{link}", "-").stdout == content, link
        daemon.cli("file", "pull", f"f1/srv/t/{link}", str(out / link))
        assert_regular(out / link, content)

    gone = daemon.cli("file", "pull", "f1/srv/t/dangling", str(out / "dangling"), check=False)
    assert (gone.returncode, gone.stderr) == (1, "Error: Symlink '/srv/t/dangling' leads to "
                                                 "'/nowhere', which does not exist in 'f1'\n")
    assert not os.path.lexists(out / "dangling")
    is_dir = daemon.cli("file", "pull", "f1/srv/t/dirlink", str(out / "d"), check=False)
    assert (is_dir.returncode, is_dir.stderr) == (1, "Error: '/srv/t/dirlink' is a "
                                                     "directory (use -r)\n")
    daemon.cli("file", "pull", "-r", "f1/srv/t/dirlink", str(out / "d"))
    assert (out / "d" / "g").read_text() == "in-dir\n" and not (out / "d").is_symlink()
    to_stdout = daemon.cli("file", "pull", "f1/srv/t", "-", check=False)
    assert to_stdout.returncode == 1 and "is a directory" in to_stdout.stderr

    # -r: the tree's symlinks come back as symlinks with their targets, as lxc's
    # recursivePullFile makes them; nothing is written through them.
    daemon.cli("file", "pull", "-r", "f1/srv/t", str(tmp_path / "tree"))
    tree = tmp_path / "tree"
    assert (tree / "f").read_text() == "data\n" and not (tree / "f").is_symlink()
    assert (tree / "dir" / "g").read_text() == "in-dir\n"
    for link, target in (("rel", "f"), ("abs", "/srv/t/f"), ("up", "../../etc/os-release"),
                         ("dirlink", "dir"), ("dangling", "/nowhere")):
        assert os.readlink(tree / link) == target, link
    assert (host_dir / "marker").read_text() == "HOST-SECRET\n"


def assert_regular(path, content: str) -> None:  # type: ignore[no-untyped-def]
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file"
    assert path.read_text() == content


# Burns one second of CPU time as the kernel counts it for this shell (utime + stime of
# /proc/self/stat, in 1/100 s ticks), however busy the host is.
BUSY = """while :; do
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut st _ < /proc/$$/stat
  [ $((ut + st)) -ge 100 ] && break
done"""


def test_info_shows_cpu_time_and_limits(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.cli("launch", "debian", "i1", "-c", "limits.memory=256MiB",
               "-c", "limits.processes=300", "-c", "limits.cpu=1")
    daemon.cli("exec", "i1", "--", "timeout", "60", "sh", "-c", BUSY)
    state = daemon.api("GET", "/1.0/instances/i1/state")["metadata"]
    assert state["cpu"]["usage"] > 1_000_000_000  # ns, as LXD's
    assert state["memory"]["total"] == 256 << 20  # the effective limit (instances_state_total)
    assert 0 < state["memory"]["usage"] <= 256 << 20
    assert 0 < state["processes"] <= 300

    info = daemon.cli("info", "i1").stdout
    cpu = re.search(r"^    CPU usage \(in seconds\): ([0-9.]+) \(limit 1 CPU\)$", info, re.M)
    assert cpu is not None, info
    assert float(cpu[1]) > 0.5
    assert re.search(r"^  Processes: \d+ \(limit 300\)$", info, re.M), info
    assert re.search(r"^    Memory \(current\): [0-9.]+[KMG]iB \(limit 256\.00MiB\)$", info,
                     re.M), info

    daemon.cli("config", "unset", "i1", "limits.processes")
    daemon.cli("config", "set", "i1", "limits.memory=50%")
    info = daemon.cli("info", "i1").stdout
    assert re.search(r"^  Processes: \d+ \(unlimited\)$", info, re.M), info
    total = daemon.api("GET", "/1.0/instances/i1/state")["metadata"]["memory"]["total"]
    assert f"(limit {format_size(total)})" in info


@pytest.mark.skipif(shutil.which("lxc") is None, reason="lxc is not installed")
def test_lxc_pulls_through_symlinks(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """LXD's own client follows a symlink with a GET of its target (lxc/file.go): the
    target lxmgrd answers must lead it to the file, relative or absolute."""
    env = {**os.environ, "LXD_CONF": str(tmp_path / "lxdconf")}
    (tmp_path / "lxdconf").mkdir()

    def lxc(*args: str) -> str:
        return subprocess.run(["lxc", *args], env=env, capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL, check=True).stdout

    lxc("remote", "add", "lxm", f"unix://{daemon.socket}")
    daemon.cli("launch", "debian", "l1")
    daemon.cli("exec", "l1", "--", "ln", "-s", "/usr/lib/os-release", "/root/abs")
    real = daemon.cli("exec", "l1", "--", "cat", "/usr/lib/os-release").stdout
    assert lxc("file", "pull", "lxm:l1/etc/os-release", "-") == real
    assert lxc("file", "pull", "lxm:l1/root/abs", "-") == real
    usage = re.search(r"CPU usage \(in seconds\): (\d+)", lxc("info", "lxm:l1"))
    assert usage is not None  # lxc reads cpu.usage in ns, whole seconds
