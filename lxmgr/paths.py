"""Every on-disk location lxmgr uses, rooted at $LXMGR_DIR (default /var/lib/lxmgr).

Imports nothing from lxmgr. Functions, not constants, so tests can change LXMGR_DIR per test.

The data lxmgr ships (images/ recipes, profiles/, templates/) lives at the top of the
checkout, read there from a source tree or an editable install; a wheel carries copies as
lxmgr/share/{images,profiles,templates} (setup.py's build step), read when present.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

DEFAULT_DIR = "/var/lib/lxmgr"
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent  # the checkout (or, installed, the site-packages dir)
SHARE_DIR = PACKAGE_DIR / "share"  # only in an installed wheel


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


def data_dir(name: str) -> Path:
    """A shipped data directory (images, profiles, templates): the installed copy in
    lxmgr/share/ when there is one, else the checkout's (a source tree, an editable
    install: edits there take effect). Never the top of site-packages, where another
    distribution may have put a directory of the same name."""
    installed = SHARE_DIR / name
    return installed if installed.is_dir() else SOURCE_ROOT / name


def hosts_file() -> str:
    """The hosts file whose lxmgr block names the instances (LXMGR_HOSTS_FILE in tests)."""
    return os.environ.get("LXMGR_HOSTS_FILE") or "/etc/hosts"


def recipes_dir() -> Path:
    """Built-in image recipes (images/*.yaml), or $LXMGR_RECIPES."""
    return Path(os.environ.get("LXMGR_RECIPES") or data_dir("images"))


def profiles_src_dir() -> Path:
    """Built-in YAML profiles, or $LXMGR_PROFILES."""
    return Path(os.environ.get("LXMGR_PROFILES") or data_dir("profiles"))


def templates_dir() -> Path:
    """jinja2 templates: host/ (dnsmasq)."""
    return data_dir("templates")


def child_pythonpath() -> str:
    """PYTHONPATH for our `python -S` children (supervisor, probes): this package and the
    library directories this interpreter reads (its site-packages; in a venv made with
    --system-site-packages, the base interpreter's too), without running site and every
    .pth hook."""
    paths = sysconfig.get_paths()
    parts = [str(SOURCE_ROOT), paths["purelib"], paths["platlib"]]
    if not sys.flags.no_site:
        import site

        parts += site.getsitepackages()
    parts.append(os.environ.get("PYTHONPATH", ""))
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))
