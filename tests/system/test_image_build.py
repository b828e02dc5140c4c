"""Recipe builds driven by a launch through the real CLI and daemon: a failed build says why
in one line and names its log, Ctrl-C on `lxmgr launch` and DELETE /1.0/operations/ID stop
debootstrap, and neither leaves an instance, a build dir or a process behind.

The recipes point debootstrap at local ports only: a closed one (fails at once) and one
that accepts connections and never answers (a build that waits until it is cancelled)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.local_servers import silent_port
from tests.system.conftest import Daemon, running_daemon

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]
RECIPE = "name: {name}\nos: debian\nrelease: '12'\nsuite: bookworm\nmirror: {mirror}\n" \
         "packages: [systemd]\n"


@pytest.fixture
def recipes_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon on an empty state dir whose recipes are this test's (no image at all)."""
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed")
    with silent_port() as port:
        (tmp_path / "broken.yaml").write_text(
            RECIPE.format(name="broken", mirror="http://127.0.0.1:9/debian"))
        (tmp_path / "hang.yaml").write_text(
            RECIPE.format(name="hang", mirror=f"http://127.0.0.1:{port}/debian"))
        with running_daemon("lxmb", link_image=False,
                            env={"LXMGR_RECIPES": str(tmp_path)}) as d:
            yield d


def _left_behind(d: Daemon) -> list[str]:
    images = Path(d.root, "images")
    found = [p.name for p in images.iterdir()] if images.exists() else []
    found += [f"process {p.pid}" for p in psutil.process_iter(["cmdline"])
              if "debootstrap" in " ".join(p.info["cmdline"] or [])
              and d.root in " ".join(p.info["cmdline"] or [])]
    return found + d.api("GET", "/1.0/instances")["metadata"]


def _build_running(d: Daemon) -> str:
    """The id of the create operation once its build reports progress."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for op in d.api("GET", "/1.0/operations?recursion=1")["metadata"].get("running", []):
            if op["metadata"].get("progress"):
                return str(op["id"])
        time.sleep(0.1)
    raise AssertionError("the build never reported progress")


def test_failed_build_says_why_in_one_line(recipes_daemon: Daemon) -> None:
    d = recipes_daemon
    proc = d.cli("launch", "broken", "c1", check=False)
    log_path = f"{d.root}/logs/image-build-broken.log"
    assert proc.returncode == 1
    error = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert error == ["Error: Failed to build image 'broken': debootstrap exited with status 1: "
                     "E: Failed getting release file http://127.0.0.1:9/debian/dists/bookworm/"
                     f"Release (full log: {log_path})"]
    assert "Traceback" not in proc.stderr
    assert "127.0.0.1:9" in Path(log_path).read_text()
    assert _left_behind(d) == []


def test_ctrl_c_on_launch_cancels_the_build(recipes_daemon: Daemon) -> None:
    d = recipes_daemon
    cli = subprocess.Popen([*d.cli_argv, "launch", "hang", "c2"], env=d.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _build_running(d)
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 130, err
    assert err.strip().splitlines()[-1] == "Error: Remote operation canceled by user"
    assert "Traceback" not in err
    assert _left_behind(d) == []


def test_cancelling_the_operation_through_the_api(recipes_daemon: Daemon) -> None:
    d = recipes_daemon
    created = d.api("POST", "/1.0/instances", {"name": "c3", "source": {
        "type": "image", "alias": "hang"}})
    op = _build_running(d)
    assert created["metadata"]["may_cancel"] is True
    d.api("DELETE", f"/1.0/operations/{op}")
    done = d.api("GET", f"/1.0/operations/{op}/wait?timeout=60")["metadata"]
    assert (done["status"], done["err"]) == ("Cancelled", "Operation cancelled")
    assert _left_behind(d) == []
    # The recipe still builds (fails here: its mirror never answers) on the next try.
    again = d.api("POST", "/1.0/instances", {"name": "c3", "source": {
        "type": "image", "alias": "hang"}})
    second = _build_running(d)
    assert second == again["metadata"]["id"]
    d.api("DELETE", f"/1.0/operations/{second}")
    d.api("GET", f"/1.0/operations/{second}/wait?timeout=60")
    assert _left_behind(d) == []
