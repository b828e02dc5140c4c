"""Build an image from a recipe (images/<name>.yaml) with debootstrap.

Imports lxmgr.linux, lxmgr.paths, lxmgr.errors and the pure images modules. We shell out to
debootstrap because it owns this job: archive signature checks, dependency resolution and the
two-stage dpkg bootstrap are distribution policy we must not re-implement. It runs under
`unshare --mount --propagation private`, so the /proc and /sys it mounts into the target
live in a private mount namespace and vanish with it, even if it is killed.

A build goes to images_dir()/.build-<random>/rootfs; only a finished, customized and
fingerprinted tree is renamed (atomically) to images_dir()/<fingerprint>/. Any failure or
interruption (exception, SIGINT, SIGTERM) removes the build directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from lxmgr import paths
from lxmgr.errors import InvalidConfig, LxmgrError, NotFound
from lxmgr.images import customize, progress
from lxmgr.images.fingerprint import fingerprint_tree
from lxmgr.images.recipe import Recipe, debootstrap_argv, parse
from lxmgr.images.store import (
    ImageInfo,
    ImageStore,
    info_from_metadata,
    read_metadata,
    write_metadata,
)
from lxmgr.linux import commands

log = logging.getLogger(__name__)

ProgressCallback = Callable[[progress.Progress], None]
MAX_RECIPE_BYTES = 256 * 1024
_MACHINE_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386",
                 "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive"}


def host_arch() -> str:
    """The Debian architecture name of this host (x86_64 -> amd64)."""
    machine = platform.machine()
    return _MACHINE_ARCH.get(machine, machine)


def recipe_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A recipe file: an existing path, or <name>.yaml in paths.recipes_dir()."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = paths.recipes_dir() / f"{name_or_path}.yaml"
    if "/" not in str(name_or_path) and candidate.is_file():
        return candidate
    raise NotFound(f"Image recipe '{name_or_path}' not found")


def load_recipe(path: Path) -> tuple[Recipe, str]:
    """(validated recipe, sha256 of the file bytes)."""
    raw = path.read_bytes()[: MAX_RECIPE_BYTES + 1]
    if len(raw) > MAX_RECIPE_BYTES:
        raise InvalidConfig(f"Image recipe '{path}' is larger than {MAX_RECIPE_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise InvalidConfig(f"Image recipe '{path}' is not valid YAML: {err}") from err
    return parse(data, host_arch=host_arch()), hashlib.sha256(raw).hexdigest()


def build(recipe: str | os.PathLike[str], progress_cb: ProgressCallback | None = None, *,
          store: ImageStore | None = None) -> ImageInfo:
    """Build (or reuse) the image for a recipe name or path; returns the stored image.

    A no-op when an image built from a byte-identical recipe is already in the store.
    """
    store = store or ImageStore()
    recipe_file = recipe_path(recipe)
    parsed, recipe_sha = load_recipe(recipe_file)
    report = progress_cb or (lambda p: None)
    cached = store.find_by_recipe(recipe_sha)
    if cached is not None:
        log.info("Image for recipe '%s' is cached: %s", parsed.name, cached.fingerprint)
        report(progress.at("done", 1.0, f"Cached image {cached.fingerprint[:12]}"))
        return cached
    store.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _signals_raise(), _build_dir(store.root) as build_dir:
        image = _build_into(build_dir, parsed, recipe_sha, report, store)
    for alias in parsed.aliases:
        store.add_alias(image.fingerprint, alias, take_over=True)
    report(progress.at("done", 1.0, f"Image {image.fingerprint[:12]} ready"))
    return store.get(image.fingerprint)


def _build_into(build_dir: Path, recipe: Recipe, recipe_sha: str, report: ProgressCallback,
                store: ImageStore) -> ImageInfo:
    rootfs = build_dir / "rootfs"
    run_debootstrap(recipe, rootfs, report)
    report(progress.at("finalize", 0.2, "Customizing rootfs"))
    customize.customize(rootfs, recipe)
    report(progress.at("finalize", 0.5, "Computing fingerprint"))
    digest = fingerprint_tree(rootfs)
    data = _metadata(recipe, recipe_sha, digest.size)
    write_metadata(build_dir, data)
    final = store.root / digest.fingerprint
    if final.exists():  # the same tree was built before under another recipe: keep the old one
        return info_from_metadata(digest.fingerprint, final, read_metadata(final))
    os.chmod(build_dir, 0o700)
    os.rename(build_dir, final)
    return info_from_metadata(digest.fingerprint, final, data)


def run_debootstrap(recipe: Recipe, rootfs: Path, report: ProgressCallback) -> None:
    """debootstrap into rootfs inside a private mount namespace, reporting progress."""
    parser = progress.DebootstrapProgress(expected_packages=130 + len(recipe.packages))
    report(progress.at("resolve", 0.0, f"Bootstrapping {recipe.suite} from {recipe.mirror}"))

    def on_line(line: str) -> None:
        log.debug("debootstrap: %s", line)
        event = parser.feed(line)
        if event is not None:
            report(event)

    argv = ["unshare", "--mount", "--propagation", "private", "--",
            *debootstrap_argv(recipe, str(rootfs))]
    commands.stream(argv, on_line, env=_ENV)


def _metadata(recipe: Recipe, recipe_sha: str, size: int) -> dict[str, object]:
    return {
        "architecture": recipe.architecture, "os": recipe.os, "release": recipe.release,
        "created_at": int(time.time()), "aliases": [], "recipe": recipe.name,
        "recipe_sha256": recipe_sha, "size": size,
        "properties": {"description": recipe.description},
    }


@contextlib.contextmanager
def _build_dir(images_root: Path) -> Iterator[Path]:
    """A fresh images_root/.build-XXXX, removed unless it was renamed into the store."""
    build_dir = Path(tempfile.mkdtemp(prefix=".build-", dir=images_root))
    try:
        yield build_dir
    finally:
        if build_dir.exists():
            remove_build_dir(build_dir)


def remove_build_dir(build_dir: Path) -> None:
    """rm -rf a build dir; refuses if anything is mounted below it (never cross into mounts)."""
    prefix = str(build_dir.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        mounted = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    if mounted:
        raise LxmgrError(f"Refusing to remove build dir '{build_dir}': "
                         f"'{mounted[0]}' is mounted inside it")
    shutil.rmtree(build_dir)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM into SystemExit (main thread only) so the cleanup above runs."""
    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: the caller owns signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
