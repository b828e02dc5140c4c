"""Where lxmgr reads the data it ships: the checkout's top-level images/, profiles/ and
templates/ (a source tree, an editable install), else a wheel's lxmgr/share/ copies; the
LXMGR_RECIPES and LXMGR_PROFILES overrides; the PYTHONPATH handed to `python -S` children."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lxmgr import paths


def test_a_checkout_reads_its_own_top_level_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LXMGR_RECIPES", raising=False)
    monkeypatch.delenv("LXMGR_PROFILES", raising=False)
    assert not paths.SHARE_DIR.exists()  # the build step writes only into the built wheel
    assert paths.recipes_dir() == paths.SOURCE_ROOT / "images"
    assert paths.profiles_src_dir() == paths.SOURCE_ROOT / "profiles"
    assert paths.templates_dir() == paths.SOURCE_ROOT / "templates"
    assert (paths.recipes_dir() / "debian.yaml").is_file()


def test_an_installed_share_dir_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LXMGR_RECIPES", raising=False)
    monkeypatch.setattr(paths, "SHARE_DIR", tmp_path)
    (tmp_path / "images").mkdir()
    assert paths.recipes_dir() == tmp_path / "images"
    # each directory on its own: one the share dir lacks is read from the top level
    assert paths.templates_dir() == paths.SOURCE_ROOT / "templates"
    monkeypatch.setenv("LXMGR_RECIPES", "/somewhere")
    assert paths.recipes_dir() == Path("/somewhere")


def test_child_pythonpath_names_the_package_and_the_libraries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import site
    import sysconfig

    monkeypatch.setenv("PYTHONPATH", "/extra")
    parts = paths.child_pythonpath().split(os.pathsep)
    assert parts[0] == str(paths.SOURCE_ROOT) and parts[-1] == "/extra"
    assert sysconfig.get_paths()["purelib"] in parts
    assert set(site.getsitepackages()) <= set(parts)
    assert len(parts) == len(set(parts))
