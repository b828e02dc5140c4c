"""Every on-disk location lxmgr uses, rooted at $LXMGR_DIR (default /var/lib/lxmgr).

Imports nothing from lxmgr. Functions, not constants, so tests can change LXMGR_DIR per test.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

DEFAULT_DIR = "/var/lib/lxmgr"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def root() -> Path:
    """The state root: $LXMGR_DIR or /var/lib/lxmgr."""
    return Path(os.environ.get("LXMGR_DIR", DEFAULT_DIR))


def images_dir() -> Path:
    """Image store: images/<fingerprint>/{rootfs,metadata.yaml}."""
    return root() / "images"


def image_dir(fingerprint: str) -> Path:
    return images_dir() / fingerprint


def instances_dir() -> Path:
    """Instance state: instances/<name>/{config.yaml,state.json,...}."""
    return root() / "instances"


def instance_dir(name: str) -> Path:
    return instances_dir() / name


def storage_dir() -> Path:
    """Storage pools: storage/<driver>/<name>/ (rootfs, or upper+work for overlay)."""
    return root() / "storage"


def run_dir() -> Path:
    """Runtime sockets and pid files of supervisors."""
    return root() / "run"


def logs_dir() -> Path:
    return root() / "logs"


def idmaps_file() -> Path:
    """Allocated isolated idmap ranges."""
    return root() / "idmaps.json"


def recipes_dir() -> Path:
    """Built-in image recipes (images/*.yaml in the source tree or the installed share dir)."""
    return Path(os.environ.get("LXMGR_RECIPES", SOURCE_ROOT / "images"))


def profiles_src_dir() -> Path:
    """Built-in YAML profiles."""
    return Path(os.environ.get("LXMGR_PROFILES", SOURCE_ROOT / "profiles"))


def templates_dir() -> Path:
    return SOURCE_ROOT / "templates"


def child_pythonpath() -> str:
    """PYTHONPATH for our `python -S` children (supervisor, probes): this package and the
    installed libraries, without running site and every .pth hook."""
    parts = [str(SOURCE_ROOT), sysconfig.get_paths()["purelib"], os.environ.get("PYTHONPATH")]
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))
