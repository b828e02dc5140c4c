"""A plain (non-editable) install works: lxmgr's wheel, built from a copy of the checkout and
installed into a fresh venv, carries images/, profiles/ and templates/ (setup.py copies them
to lxmgr/share/) and its pip console scripts work without the fast launcher, from a
directory that is not the checkout; as root, that venv's lxmgrd serves a fresh state dir
and boots a container through that venv's lxmgr (its supervisor imports from the venv)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.conftest import private_state

ROOT = Path(__file__).resolve().parents[2]
# what a fresh clone holds that a build reads (no tests, no bench, no build leftovers)
IGNORE = shutil.ignore_patterns(".git", "tests", "bench", "build", "dist", "*.egg-info",
                                "__pycache__", "*.pyc", ".pytest_cache", ".venv", ".ci")


class Venv:
    """A venv holding lxmgr's wheel (and, through --system-site-packages, its dependencies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / "bin"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "LXMGR_RECIPES", "LXMGR_PROFILES", "LXMGR_SOCKET",
                                 "LXMGR_DIR")}

    def run(self, *argv: str, cwd: Path, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.bin / argv[0]), *argv[1:]], cwd=cwd,
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: "
                                 f"{proc.stderr.strip()}")
        return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    if importlib.util.find_spec("wheel") is None:
        pytest.skip("the wheel package is not installed (pip install -e '.[test]')")
    work = tmp_path_factory.mktemp("wheel")
    try:
        shutil.copytree(ROOT, work / "src", ignore=IGNORE)
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--no-index", "--disable-pip-version-check", "-q", "-w", str(work / "dist"),
             str(work / "src")], capture_output=True, text=True, timeout=300)
        assert build.returncode == 0, build.stderr
        (wheel,) = (work / "dist").glob("lxmgr-*.whl")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                        "--system-site-packages", str(work / "venv")], check=True, timeout=120)
        install = subprocess.run(
            [str(work / "venv/bin/python"), "-m", "pip", "install", "--no-deps", "--no-index",
             "--disable-pip-version-check", "-q", str(wheel)],
            capture_output=True, text=True, timeout=300)
        assert install.returncode == 0, install.stderr
        yield Venv(work / "venv")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_wheel_carries_its_data_and_its_scripts_work(venv: Venv, tmp_path: Path) -> None:
    site = venv.run("python", "-c", "import lxmgr, os; print(os.path.dirname(lxmgr.__file__))",
                    cwd=tmp_path).stdout.strip()
    assert Path(site).is_relative_to(venv.path)  # the wheel's, not the checkout's
    code = ("from lxmgr import paths; "
            "print(paths.recipes_dir(), paths.profiles_src_dir(), paths.templates_dir())")
    found = venv.run("python", "-c", code, cwd=tmp_path).stdout.split()
    share = Path(site) / "share"
    assert found == [str(share / "images"), str(share / "profiles"), str(share / "templates")]
    for name in ("images", "profiles", "templates"):
        assert _files(share / name) == _files(ROOT / name) != [], name
    version = venv.run("python", "-c", "import lxmgr; print(lxmgr.__version__)",
                       cwd=tmp_path).stdout
    assert venv.run("lxmgr", "--version", cwd=tmp_path).stdout == version
    assert venv.run("lxmgrd", "--version", cwd=tmp_path).stdout == version
    assert "Usage: lxmgr" in venv.run("lxmgr", "profile", "--help", cwd=tmp_path).stdout
    # pip's console script, not the launcher: the fast path (list, exec) and click alike
    head = (venv.bin / "lxmgr").read_text().splitlines()[0]
    assert head == f"#!{venv.bin / 'python'}"
    nowhere = {"LXMGR_SOCKET": str(tmp_path / "nothing.socket")}
    for argv in (("list",), ("exec", "c1", "--", "true"), ("profile", "list")):
        proc = venv.run("lxmgr", *argv, cwd=tmp_path, env=nowhere, check=False)
        assert proc.returncode == 1 and proc.stderr.startswith("Error: lxmgrd is not running")
        assert len(proc.stderr.splitlines()) == 1, proc.stderr


def _files(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file())


@pytest.mark.kernel
@pytest.mark.system
def test_wheel_daemon_serves_and_boots(venv: Venv, tmp_path: Path) -> None:
    with private_state("lxmw") as (root, base):
        env = {"LXMGR_DIR": root, "LXMGR_CGROUP_BASE": base, "LXMGR_DEFAULT_NETWORK": "none"}
        try:
            _serve_and_boot(venv, tmp_path, root, env)
        finally:
            if venv.run("lxmgr", "daemon", "start", cwd=tmp_path, env=env,
                        check=False).returncode == 0:
                venv.run("lxmgr", "delete", "--force", "w1", cwd=tmp_path, env=env, check=False)
                venv.run("lxmgr", "daemon", "stop", cwd=tmp_path, env=env, check=False)


def _serve_and_boot(venv: Venv, cwd: Path, root: str, env: dict[str, str]) -> None:
    assert venv.run("lxmgr", "daemon", "start", cwd=cwd, env=env).stdout \
        .startswith("lxmgrd started")
    pid = int(Path(root, "lxmgrd.pid").read_text())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[:4] == [bytes(venv.bin / "python"), b"-P", b"-m", b"lxmgr.daemon"]
    shown = venv.run("lxmgr", "profile", "show", "default", cwd=cwd, env=env).stdout
    assert "name: default" in shown and "pool: default" in shown
    venv.run("lxmgr", "launch", "debian", "w1", cwd=cwd, env=env)
    out = venv.run("lxmgr", "exec", "w1", "--", "cat", "/proc/1/comm", cwd=cwd, env=env).stdout
    assert out == "systemd\n"
    venv.run("lxmgr", "delete", "--force", "w1", cwd=cwd, env=env)
