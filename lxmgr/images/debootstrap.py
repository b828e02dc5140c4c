"""Build an image from a recipe (images/<name>.yaml) with debootstrap.

Imports lxmgr.linux, lxmgr.paths, lxmgr.errors and the pure images modules. We shell out to
debootstrap because it owns this job: archive signature checks, dependency resolution and the
two-stage dpkg bootstrap are distribution policy we must not re-implement. It runs under
`unshare --mount --propagation private`, so the /proc and /sys it mounts into the target
live in a private mount namespace and vanish with it, even if it is killed.

A build goes to images_dir()/.build-<recipe>-<random>/rootfs; only a finished, customized
and fingerprinted tree is renamed (atomically) to images_dir()/<fingerprint>/. Any failure or
interruption (exception, SIGINT, SIGTERM, a cancel event) removes the build directory; one a
killed process left is removed by the next build (builds into one store take turns).
debootstrap's output goes to logs/image-build-<recipe>.log beside the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import yaml

from lxmgr import paths
from lxmgr.errors import Cancelled, CommandError, InvalidConfig, LxmgrError, NotFound
from lxmgr.images import customize, progress
from lxmgr.images import recipe as recipe_mod
from lxmgr.images.fingerprint import fingerprint_tree
from lxmgr.images.recipe import Recipe, debootstrap_argv, parse
from lxmgr.images.store import (
    ImageInfo,
    ImageStore,
    info_from_metadata,
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
    """(validated recipe, sha256 identifying it): of the file bytes, and for a recipe that
    `extends` another (in the same directory) of its parent's identity plus its own bytes."""
    data, digest = _load_data(path, seen=())
    return parse(data, host_arch=host_arch()), digest


def _load_data(path: Path, seen: tuple[str, ...]) -> tuple[object, str]:
    raw = path.read_bytes()[: MAX_RECIPE_BYTES + 1]
    if len(raw) > MAX_RECIPE_BYTES:
        raise InvalidConfig(f"Image recipe '{path}' is larger than {MAX_RECIPE_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise InvalidConfig(f"Image recipe '{path}' is not valid YAML: {err}") from err
    digest = hashlib.sha256(raw).hexdigest()
    parent = recipe_mod.extends(data)
    if parent is None:
        return data, digest
    if parent in seen or parent == path.stem:
        raise InvalidConfig(f"Image recipe '{path.stem}' extends itself (through '{parent}')")
    parent_path = path.parent / f"{parent}.yaml"
    if not parent_path.is_file():
        raise NotFound(f"Image recipe '{parent}' (extended by '{path.stem}') not found")
    parent_data, parent_digest = _load_data(parent_path, (*seen, path.stem))
    if not isinstance(parent_data, dict) or not isinstance(data, dict):
        raise InvalidConfig(f"Invalid recipe '{path.stem}': expected a mapping at the top level")
    merged = recipe_mod.merge(parent_data, data)
    return merged, hashlib.sha256(f"{parent_digest}\n".encode() + raw).hexdigest()


def build(recipe: str | os.PathLike[str], progress_cb: ProgressCallback | None = None, *,
          store: ImageStore | None = None, cancel: threading.Event | None = None
          ) -> ImageInfo:
    """Build (or reuse) the image for a recipe name or path; returns the stored image.

    A no-op when an image built from a byte-identical recipe is already in the store. Builds
    into one store take turns (a lock on its directory: a second build of the same recipe
    waits, then finds the image). Setting `cancel` stops the build (Cancelled); a failure
    raises ImageBuildError naming the build log. Either way nothing is left behind.
    """
    store = store or ImageStore()
    recipe_file = recipe_path(recipe)
    parsed, recipe_sha = load_recipe(recipe_file)
    report = progress_cb or (lambda p: None)
    cached = store.find_by_recipe(recipe_sha)
    if cached is None:
        store.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _build_lock(store.root, report, cancel):
            cached = store.find_by_recipe(recipe_sha)  # built while we waited for the lock
            if cached is None:
                _remove_stale_builds(store.root)
                image = _build_logged(store, parsed, recipe_sha, report, cancel)
                for alias in parsed.aliases:
                    store.add_alias(image.fingerprint, alias, take_over=True)
                report(progress.at("done", 1.0, f"Image {image.fingerprint[:12]} ready"))
                return store.get(image.fingerprint)
    for alias in parsed.aliases:  # a project that joined an image built for another
        if alias not in {a for i in store.list() for a in i.aliases}:
            store.add_alias(cached.fingerprint, alias)
    cached = store.get(cached.fingerprint)
    log.info("Image for recipe '%s' is cached: %s", parsed.name, cached.fingerprint)
    report(progress.at("done", 1.0, f"Cached image {cached.fingerprint[:12]}"))
    return cached


def build_log_path(store: ImageStore, name: str) -> Path:
    """Where the last build of recipe `name` into store logged debootstrap's output: the
    logs/ directory beside the store ($LXMGR_DIR/logs for the daemon's)."""
    return store.root.parent / "logs" / f"image-build-{name}.log"


def _build_logged(store: ImageStore, recipe: Recipe, recipe_sha: str,
                  report: ProgressCallback, cancel: threading.Event | None) -> ImageInfo:
    log_path = build_log_path(store, recipe.name)
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8", errors="replace") as build_log, \
            _signals_raise(), _build_dir(store.root, recipe.name) as build_dir:
        try:
            return _build_into(build_dir, recipe, recipe_sha, report, store,
                               _Steps(cancel, build_log))
        except CommandError as err:
            build_log.write(f"\n{err}\n")
            raise ImageBuildError(recipe.name, _reason(err), log_path) from err
        except Cancelled:
            build_log.write("\nCancelled\n")
            raise


class ImageBuildError(LxmgrError):
    """A recipe build failed: one line saying why and where the full log is."""

    def __init__(self, name: str, reason: str, log_path: Path) -> None:
        super().__init__(f"Failed to build image '{name}': {reason} (full log: {log_path})")
        self.log_path = log_path


def _reason(err: CommandError) -> str:
    """debootstrap's own last error ('E: ...') or the last line it printed."""
    lines = [line.strip() for line in err.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E: ")]
    tool = os.path.basename(err.argv[-1] if err.argv[0] == "unshare" else err.argv[0])
    if "debootstrap" in " ".join(err.argv):
        tool = "debootstrap"
    detail = (errors or lines or ["no output"])[-1]
    return f"{tool} exited with status {err.returncode}: {detail}"


class _Steps:
    """What a running build checks between steps: cancellation, and the log it writes."""

    def __init__(self, cancel: threading.Event | None, build_log: TextIO) -> None:
        self.cancel = cancel
        self.log = build_log

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("Cancelled: the image build was stopped")


def _build_into(build_dir: Path, recipe: Recipe, recipe_sha: str, report: ProgressCallback,
                store: ImageStore, steps: _Steps) -> ImageInfo:
    rootfs = build_dir / "rootfs"
    run_debootstrap(recipe, rootfs, report, cancel=steps.cancel, build_log=steps.log)
    steps.check()
    report(progress.at("finalize", 0.2, "Customizing rootfs"))
    customize.customize(rootfs, recipe)
    steps.check()
    report(progress.at("finalize", 0.5, "Computing fingerprint"))
    digest = fingerprint_tree(rootfs)
    steps.check()
    data = _metadata(recipe, recipe_sha, digest.size)
    write_metadata(build_dir, data)
    final = store.root / digest.fingerprint
    if final.exists():  # the same tree was built before under another recipe: keep the old one
        return store.join(digest.fingerprint)
    os.chmod(build_dir, 0o700)
    os.rename(build_dir, final)
    return info_from_metadata(digest.fingerprint, final, data)


def run_debootstrap(recipe: Recipe, rootfs: Path, report: ProgressCallback, *,
                    cancel: threading.Event | None = None,
                    build_log: TextIO | None = None) -> None:
    """debootstrap into rootfs inside a private mount namespace, reporting progress; every
    output line also goes to build_log."""
    parser = progress.DebootstrapProgress(expected_packages=130 + len(recipe.packages))
    report(progress.at("resolve", 0.0, f"Bootstrapping {recipe.suite} from {recipe.mirror}"))

    def on_line(line: str) -> None:
        log.debug("debootstrap: %s", line)
        if build_log is not None:
            build_log.write(line + "\n")
        event = parser.feed(line)
        if event is not None:
            report(event)

    argv = ["unshare", "--mount", "--propagation", "private", "--",
            *debootstrap_argv(recipe, str(rootfs))]
    if build_log is not None:
        build_log.write(f"$ {' '.join(argv)}\n")
    commands.stream(argv, on_line, env=_ENV, cancel=cancel)


def _metadata(recipe: Recipe, recipe_sha: str, size: int) -> dict[str, object]:
    return {
        "architecture": recipe.architecture, "os": recipe.os, "release": recipe.release,
        "created_at": int(time.time()), "aliases": [], "recipe": recipe.name,
        "recipe_sha256": recipe_sha, "size": size,
        "properties": {"description": recipe.description},
    }


@contextlib.contextmanager
def _build_dir(images_root: Path, name: str) -> Iterator[Path]:
    """A fresh images_root/.build-NAME-XXXX, removed unless it was renamed into the store."""
    build_dir = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=images_root))
    try:
        yield build_dir
    finally:
        if build_dir.exists():
            remove_build_dir(build_dir)


def _remove_stale_builds(images_root: Path) -> None:
    """Build dirs a killed process left (we hold the store's build lock, so no live build
    owns them)."""
    for stale in images_root.glob(".build-*"):
        log.warning("Removing the unfinished image build '%s'", stale)
        remove_build_dir(stale)


@contextlib.contextmanager
def _build_lock(images_root: Path, report: ProgressCallback,
                cancel: threading.Event | None) -> Iterator[None]:
    """Hold the store's build lock (flock on its directory: no lock file to leave behind)
    while building; waits while another process or thread builds, and gives up
    (Cancelled) when `cancel` is set."""
    fd = os.open(images_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    report(progress.at("resolve", 0.0, "Waiting for another image build"))
                    told = True
                if cancel is not None and cancel.wait(0.2):
                    raise Cancelled("Cancelled: the image build was stopped") from None
                if cancel is None:
                    time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock


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
