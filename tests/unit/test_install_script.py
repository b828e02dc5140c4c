"""./install.sh, the users' install command (.ci/setup runs it too): options, one-line
errors, and the commands it runs (--dry-run prints them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "install.sh"), *args], capture_output=True, text=True,
                          timeout=60, cwd="/")


def test_help_names_the_steps_and_options() -> None:
    proc = install("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: ./install.sh [OPTIONS]")
    for word in ("debootstrap", "dnsmasq-base", "nftables", "lxcfs", "--editable", "--extras",
                 "--no-apt", "--no-launcher", "--dry-run", "lxmgr daemon start"):
        assert word in proc.stdout, word


def test_bad_options_are_one_line_errors() -> None:
    for args, code, message in ((("--bogus",), 2, "Unknown option '--bogus'"),
                                (("--python",), 2, "--python needs an interpreter"),
                                (("--extras", "a;b", "--dry-run"), 1, "Invalid extras 'a;b'"),
                                (("--python", "/nonexistent/python3", "--dry-run", "--no-apt"),
                                 1, "Python interpreter '/nonexistent/python3' not found")):
        proc = install(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert proc.stderr.startswith(f"Error: {message}") and proc.stderr.count("\n") == 1
        assert proc.stdout == ""


def test_dry_run_prints_what_a_plain_install_runs() -> None:
    proc = install("--dry-run", "--no-apt", "--python", sys.executable, "--no-editable")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"+ {sys.executable} -m pip install ")
    assert lines[0].endswith(" .") and " -e " not in lines[0]
    assert lines[1] == f"+ {sys.executable} -P -m lxmgr.cli.launcher"
    assert len(lines) == 2


def test_dry_run_editable_with_extras_and_no_launcher() -> None:
    proc = install("--dry-run", "--no-apt", "--python", sys.executable, "--editable",
                   "--extras=test", "--no-launcher")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith(" -e .\\[test\\]")  # printf %q quoting
    assert lines[1] == f"+ {sys.executable} -m compileall -q lxmgr"
    assert len(lines) == 2


def test_an_editable_install_of_this_checkout_stays_editable() -> None:
    """With neither --editable nor --no-editable, a second run keeps the first one's mode
    (the tests' interpreter has whatever .ci/setup or a developer installed)."""
    # asked from / with -P: pytest put the checkout (and its lxmgr.egg-info) on our sys.path
    code = ("from importlib import metadata as m\ntry: print(m.distribution('lxmgr')"
            ".read_text('direct_url.json') or '{}')\nexcept m.PackageNotFoundError: print('{}')")
    url = json.loads(subprocess.run([sys.executable, "-P", "-c", code], cwd="/", check=True,
                                    capture_output=True, text=True, timeout=60).stdout)
    editable_here = bool(url.get("dir_info", {}).get("editable")) and \
        url.get("url") == ROOT.as_uri()
    proc = install("--dry-run", "--no-apt", "--python", sys.executable)
    assert proc.returncode == 0, proc.stderr
    assert (" -e ." in proc.stdout.splitlines()[0]) == editable_here
