"""Post-debootstrap changes to a fresh rootfs: masks (units, generators), apt sources, files,
enabled units, cache cleanup.

Imports lxmgr.linux and lxmgr.images.recipe. Every path is resolved inside the rootfs with
openat2(RESOLVE_IN_ROOT), so an absolute symlink in the tree (e.g. /etc/resolv.conf ->
/run/...) can never make us write to the host.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from lxmgr.images.recipe import SOURCES_LIST, Recipe, RecipeFile, render_sources_list
from lxmgr.linux import commands, libc
from lxmgr.linux import consts as c

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def customize(rootfs: Path, recipe: Recipe) -> None:
    """Apply recipe's post-install steps to rootfs, in order."""
    link_dbus_machine_id(rootfs)
    for unit in recipe.mask_units:
        mask_unit(rootfs, unit)
    for generator in recipe.mask_generators:
        mask_generator(rootfs, generator)
    if recipe.apt_sources:
        # debootstrap leaves only `deb MIRROR SUITE main`: without the -updates and security
        # suites an `apt upgrade` in the container never sees a security fix.
        write_file(rootfs, RecipeFile(SOURCES_LIST, render_sources_list(recipe)))
    for spec in recipe.files:
        write_file(rootfs, spec)
    if recipe.enable_units:
        enable_units(rootfs, recipe.enable_units)
    clean_caches(rootfs)


def open_dir_in_root(rootfd: int, rel: str, *, create: bool = True) -> int:
    """A directory fd for rel (resolved with rootfd as "/"), made (0755) when missing."""
    parts = [p for p in rel.split("/") if p]
    fd = os.dup(rootfd)
    for i in range(len(parts)):
        try:
            nxt = libc.openat2(rootfd, "/".join(parts[: i + 1]), _DIR_FLAGS, 0,
                               c.RESOLVE_IN_ROOT)
        except FileNotFoundError:
            if not create:
                os.close(fd)
                raise
            os.mkdir(parts[i], 0o755, dir_fd=fd)
            nxt = libc.openat2(fd, parts[i], _DIR_FLAGS, 0, c.RESOLVE_IN_ROOT)
        os.close(fd)
        fd = nxt
    return fd


def _unlink_if_not_dir(dirfd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass
    except IsADirectoryError as err:
        raise OSError(errno.EISDIR, f"Refusing to replace directory '{name}'") from err


def write_file(rootfs: Path, spec: RecipeFile) -> None:
    """Write spec.content to spec.path inside rootfs (replacing a file or symlink there)."""
    parent, name = os.path.split(spec.path.lstrip("/"))
    with _RootFd(rootfs) as rootfd:
        dirfd = open_dir_in_root(rootfd, parent)
        try:
            _unlink_if_not_dir(dirfd, name)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=dirfd)
            with os.fdopen(fd, "w") as f:
                f.write(spec.content)
                os.fchown(f.fileno(), 0, 0)
                os.fchmod(f.fileno(), spec.mode)
        finally:
            os.close(dirfd)


def symlink_in_root(rootfs: Path, path: str, target: str) -> None:
    """Create (or replace) the symlink path -> target inside rootfs."""
    parent, name = os.path.split(path.lstrip("/"))
    with _RootFd(rootfs) as rootfd:
        dirfd = open_dir_in_root(rootfd, parent)
        try:
            _unlink_if_not_dir(dirfd, name)
            os.symlink(target, name, dir_fd=dirfd)
        finally:
            os.close(dirfd)


def mask_unit(rootfs: Path, unit: str) -> None:
    """systemctl mask, offline: etc/systemd/system/<unit> -> /dev/null."""
    symlink_in_root(rootfs, f"/etc/systemd/system/{unit}", "/dev/null")


def mask_generator(rootfs: Path, generator: str) -> None:
    """Disable a systemd generator: etc/systemd/system-generators/<name> -> /dev/null
    (systemd.generator(7): a same-named entry in /etc overrides /usr/lib's)."""
    symlink_in_root(rootfs, f"/etc/systemd/system-generators/{generator}", "/dev/null")


def link_dbus_machine_id(rootfs: Path) -> None:
    """debootstrap leaves a copy of the build host's machine id for D-Bus; use /etc's."""
    symlink_in_root(rootfs, "/var/lib/dbus/machine-id", "/etc/machine-id")


def enable_units(rootfs: Path, units: tuple[str, ...]) -> None:
    """systemctl --root: creates the [Install] symlinks without running anything in rootfs."""
    commands.run(["systemctl", f"--root={rootfs}", "enable", *units],
                 env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


def clean_caches(rootfs: Path) -> None:
    """Drop downloaded .debs and package lists (apt update restores them)."""
    for rel, keep in (("var/cache/apt/archives", {"partial", "lock"}),
                      ("var/lib/apt/lists", {"partial", "lock"}),
                      ("var/cache/apt", {"archives", "apt-file"})):
        _clear_dir(rootfs, rel, keep)


def _clear_dir(rootfs: Path, rel: str, keep: set[str]) -> None:
    with _RootFd(rootfs) as rootfd:
        try:
            dirfd = open_dir_in_root(rootfd, rel, create=False)
        except FileNotFoundError:
            return
        try:
            for name in os.listdir(dirfd):
                if name in keep:
                    continue
                if stat.S_ISDIR(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                    shutil.rmtree(name, dir_fd=dirfd)
                else:
                    os.unlink(name, dir_fd=dirfd)
        finally:
            os.close(dirfd)


class _RootFd:
    """`with _RootFd(rootfs) as fd`: a directory fd on the rootfs directory, closed on exit."""

    def __init__(self, rootfs: Path) -> None:
        self.fd = os.open(rootfs, _DIR_FLAGS | os.O_NOFOLLOW)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
