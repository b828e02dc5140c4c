"""The README, run as a user runs it: its first command verbatim on an empty state dir with no
image anywhere (the daemon builds `debian` with debootstrap), then every other command the
README shows, against that real daemon through the real `lxmgr` on PATH.

No shortcut: no cached image linked, the daemon started by the command itself, the default
network created on first start. Only what isolates the run from the host changes: the state
dir, the cgroup base and the default network (its own bridge, no NAT, no upstream DNS) come
from the environment, and the README's fixed host-wide names (the bridges lxmgrbr0 and
br1, the proxy's listen port) are swapped for this run's own. A second launch of the same
image races the first command's: the image must be built once.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.conftest import ROOT, private_state

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]
README = Path(ROOT, "README.md")
FIRST = "lxmgr launch debian web1"  # how the quick start's first command is recognised
# Commands the README shows that no test may run here, each with the reason.
EXEMPT = {
    "python3 -m pytest": "the suite itself (.ci/run runs it)",
    "python3 bench/": "benchmarks install LXC and LXD and run for minutes (bench/README.md)",
    "systemctl ": "needs systemd as the host's init",
    "cp systemd/": "installs units for systemd as the host's init",
    "sudo lxmgr dev ": "needs a normal user: tests/system/test_dev_box.py makes one and runs it",
    "lxmgr dev ": "the dev box of the line above (tests/system/test_dev_box.py)",
    "lxmgr network forward ": "addresses of the reader's network: "
                              "tests/system/test_network_forwards.py runs a forward",
}
# Commands that end web1's life run after every other command.
LAST = re.compile(r"^lxmgr (stop|delete) web1\b")


def readme_commands(text: str) -> list[str]:
    """Every command line of the README's code blocks (indented by four spaces after a
    blank line, as Markdown reads them, or fenced as shell; a ```text block is not
    commands), in order; continuation lines joined."""
    commands: list[str] = []
    fenced = indented = shell = False
    previous_blank = True
    for line in text.splitlines():
        blank = not line.strip()
        if line.startswith("```"):
            fenced = not fenced
            shell = line[3:].strip() in ("", "sh", "shell", "bash", "console")
        elif not fenced:
            indented = (line.startswith("    ") and (indented or previous_blank)) or \
                (blank and indented)
        previous_blank = blank
        if line.startswith("```") or blank or not ((fenced and shell) or indented) \
                or line.strip().startswith("#"):
            continue
        if commands and commands[-1].endswith("\\"):
            commands[-1] = commands[-1][:-1].rstrip() + " " + line.strip()
        else:
            commands.append(line.strip())
    return commands


def exempt(command: str) -> str | None:
    return next((why for prefix, why in EXEMPT.items() if command.startswith(prefix)), None)


def test_readme_commands_are_found() -> None:
    """The parser sees the quick start and the test command (a README rewrite that breaks
    it would otherwise make the system test below run nothing)."""
    commands = readme_commands(README.read_text())
    assert sum(FIRST in c for c in commands) == 1
    assert "python3 -m pytest" in commands
    assert len([c for c in commands if not exempt(c)]) >= 8


class Run:
    """This run's environment: a fresh LXMGR_DIR and the names swapped in."""

    def __init__(self, root: str, cgroup_base: str) -> None:
        tag = root.rsplit("-", 1)[-1]
        self.root = root
        self.cgroup_base = cgroup_base
        self.network = f"lxr{tag}"
        self.swaps = {"lxmgrbr0": self.network, "br1": f"lxr{tag}b",
                      "8080": str(_free_port())}
        self.env = {**os.environ, "LXMGR_DIR": self.root,
                    "LXMGR_CGROUP_BASE": self.cgroup_base, "COLUMNS": "200",
                    # the CLI's remotes and current project, private to the run
                    "LXMGR_CONF": f"{self.root}/client-conf",
                    "LXMGR_DEFAULT_NETWORK": f"{self.network} ipv4.nat=false "
                                             "dns.upstream=none"}
        self.env.pop("LXMGR_SOCKET", None)

    def swap(self, command: str) -> str:
        for old, new in self.swaps.items():
            command = re.sub(rf"\b{re.escape(old)}\b", new, command)
        return command

    def sh(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], cwd=ROOT, env=self.env, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def lxmgr_json(self, *args: str) -> object:
        proc = self.sh(" ".join(["lxmgr", *args, "--format", "json"]))
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(f"{self.root}/unix.socket")
            return True
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def run() -> Iterator[Run]:
    with private_state("lxmr", link_image=False) as (root, base):
        r = Run(root, base)
        try:
            yield r
        finally:
            _clean(r)


def _clean(r: Run) -> None:
    """Delete what the README made and stop the daemon it started (private_state removes
    the state dir and the cgroup base)."""
    if r.answers():
        for name in r.lxmgr_json("list"):  # type: ignore[attr-defined]
            r.sh(f"lxmgr delete --force {name['name']}")
        for name in (r.swaps["br1"], r.network):
            r.sh(f"lxmgr profile device remove default eth0; lxmgr network delete {name}")
        r.sh("lxmgr daemon stop")


def test_readme_on_an_empty_machine(run: Run) -> None:
    commands = readme_commands(README.read_text())
    first = next(c for c in commands if FIRST in c)
    assert not Path(run.root).exists()
    racer: dict[str, subprocess.CompletedProcess[str]] = {}
    thread = threading.Thread(target=_race, args=(run, racer), daemon=True)
    thread.start()

    started = time.monotonic()
    proc = run.sh(first)
    took = time.monotonic() - started
    assert proc.returncode == 0, f"{first!r} failed: {proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr
    print(f"first command: {took:.1f} s")

    thread.join(600)
    assert racer["launch"].returncode == 0, racer["launch"].stderr
    daemon_log = Path(run.root, "logs", "lxmgrd.log").read_text()
    assert daemon_log.count("Building image 'debian'") == 1, "two racing launches, one build"
    _wait_for_ipv4(run, "web1")
    assert run.sh("lxmgr delete --force web2").returncode == 0

    rest = [c for c in commands if c != first and not exempt(c)]
    for command in [c for c in rest if not LAST.match(c)] + [c for c in rest if LAST.match(c)]:
        swapped = run.swap(command)
        proc = run.sh(swapped, timeout=300)
        assert proc.returncode == 0, f"README command {swapped!r} failed: {proc.stderr}"
        assert "Traceback" not in proc.stderr, swapped
    assert run.lxmgr_json("list") == []


def _race(run: Run, out: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """A second launch of `debian` as soon as the first command's daemon answers."""
    deadline = time.monotonic() + 300
    while not run.answers() and time.monotonic() < deadline:
        time.sleep(0.05)
    out["launch"] = run.sh("lxmgr launch debian web2")


def _wait_for_ipv4(run: Run, name: str) -> None:
    """web1 RUNNING with an IPv4 address on eth0, from the default network's subnet."""
    network = run.lxmgr_json("network", "list")
    gateway = next(n for n in network if n["name"] == run.network)  # type: ignore[attr-defined]
    prefix = gateway["config"]["ipv4.address"].rsplit(".", 1)[0] + "."
    deadline = time.monotonic() + 30
    while True:
        listed = {i["name"]: i for i in run.lxmgr_json("list")}  # type: ignore[attr-defined]
        addresses = [a["address"] for a in listed[name]["state"]["network"]["eth0"]["addresses"]
                     if a["family"] == "inet"]
        if listed[name]["status"] == "Running" and any(a.startswith(prefix) for a in addresses):
            return
        assert time.monotonic() < deadline, f"{name} has no IPv4 in {prefix}0/24: {listed}"
        time.sleep(0.5)
