"""Packaging step pyproject.toml cannot declare: the wheel carries the data directories the
code reads (images/ recipes, profiles/, templates/), kept at the top of the checkout (see
STYLE.md's layout), as lxmgr/share/<name>/, where lxmgr/paths.py looks first. An editable
install gets no copy: lxmgr/paths.py reads the checkout itself, so edits take effect."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA_DIRS = ("images", "profiles", "templates")


class BuildPyWithShare(build_py):
    """build_py, then images/, profiles/ and templates/ copied into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the package is the checkout's: paths.py reads the top-level dirs
        share = Path(self.build_lib) / "lxmgr" / "share"
        for name in DATA_DIRS:
            source = HERE / name
            if not source.is_dir():
                raise SystemExit(f"Error: {source} is missing: cannot build lxmgr without it")
            target = share / name
            shutil.rmtree(target, ignore_errors=True)  # a rebuild drops removed files
            shutil.copytree(source, target,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildPyWithShare})
