"""LXD image templates: read an image's templates/<name>, render it (templates_render) and
write the result into an instance's rootfs directory (LXD's templateApplyNow, incus
internal/server/instance/drivers/driver_lxc.go).

Imports lxmgr.errors, lxmgr.linux, lxmgr.model.image and lxmgr.images.templates_render only
(never instances, daemon, cli). Templates are read through a directory fd with O_NOFOLLOW (a
symlinked templates/ or template file is refused) and written with openat2(RESOLVE_IN_ROOT),
so an absolute or `../` symlink planted in the rootfs resolves inside it and nothing is ever
written to the host. See templates_render for the sandbox and the pongo2 differences.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import stat
from collections.abc import Iterable
from pathlib import Path

from lxmgr.errors import InvalidConfig, LxmgrError
from lxmgr.images.templates_render import (
    build_variables,
    describe_error,
    render_source,
    render_template,
    translate_pongo2,
)
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.model.image import DEFAULT_MODE, TemplateContext, TemplateRule, rules_for

__all__ = ["TemplateContext", "apply_templates", "load_template", "render_template",
           "translate_pongo2"]

log = logging.getLogger(__name__)

MAX_TEMPLATE_SIZE = 1 << 20   # bytes read from one template file

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_IN_ROOT = c.RESOLVE_IN_ROOT | c.RESOLVE_NO_MAGICLINKS


# Reading templates --------------------------------------------------------------------------


def open_templates_dir(image_dir: Path) -> int:
    """A directory fd on image_dir/templates; a symlink or a non-directory is refused."""
    try:
        return os.open(image_dir / "templates", _DIR_FLAGS | os.O_NOFOLLOW)
    except FileNotFoundError as err:
        raise InvalidConfig(f"Image '{image_dir}' has no templates directory") from err
    except OSError as err:
        raise InvalidConfig(f"Image templates directory '{image_dir / 'templates'}' is not a "
                            f"directory (a symlink?): {err.strerror}") from err


def load_template(templates_fd: int, name: str) -> str:
    """The UTF-8 text of templates/<name>: a regular file, not a symlink, at most 1 MiB."""
    if "/" in name or name in ("", ".", ".."):
        raise InvalidConfig(f"Invalid template name '{name}'")
    try:
        fd = libc.openat2(templates_fd, name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                          | os.O_NOCTTY | os.O_CLOEXEC, 0,
                          c.RESOLVE_BENEATH | c.RESOLVE_NO_SYMLINKS | c.RESOLVE_NO_MAGICLINKS)
    except OSError as err:
        what = "is a symlink" if err.errno == errno.ELOOP else os.strerror(err.errno or 0)
        raise InvalidConfig(f"Template '{name}' {what}") from err
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidConfig(f"Template '{name}' is not a regular file")
        data = f.read(MAX_TEMPLATE_SIZE + 1)
    if len(data) > MAX_TEMPLATE_SIZE:
        raise InvalidConfig(f"Template '{name}' is over {MAX_TEMPLATE_SIZE} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise InvalidConfig(f"Template '{name}' is not UTF-8") from err


# Writing into the rootfs --------------------------------------------------------------------


def _open_in_root(rootfd: int, rel: str, flags: int) -> int:
    return libc.openat2(rootfd, rel, flags | os.O_CLOEXEC, 0, _IN_ROOT)


def _target_exists(rootfd: int, rel: str) -> bool:
    try:
        os.close(_open_in_root(rootfd, rel, os.O_PATH | os.O_NOFOLLOW))
    except FileNotFoundError:
        return False
    return True


def _mkdir_owned(dirfd: int, name: str, shown: str, uid: int, gid: int) -> int:
    """mkdir name (0755, uid:gid) in dirfd and return a directory fd on it."""
    try:
        os.mkdir(name, 0o755, dir_fd=dirfd)
    except FileExistsError as err:  # it did not resolve, yet it is there
        raise InvalidConfig(f"'/{shown}' is a dangling symlink") from err
    fd = libc.openat2(dirfd, name, _DIR_FLAGS | os.O_NOFOLLOW, 0, _IN_ROOT)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o755)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_parents(rootfd: int, parent: str, uid: int, gid: int) -> int:
    """A directory fd for parent (resolved inside the rootfs); missing ones are made 0755
    and owned by uid:gid, as LXD does."""
    fd = os.dup(rootfd)
    try:
        parts = [p for p in parent.split("/") if p]
        for i, part in enumerate(parts):
            prefix = "/".join(parts[: i + 1])
            try:
                nxt = _open_in_root(rootfd, prefix, _DIR_FLAGS)
            except FileNotFoundError:
                nxt = _mkdir_owned(fd, part, prefix, uid, gid)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_existing(rootfd: int, rel: str) -> int:
    """Open an existing target for rewriting in place (LXD keeps its mode and owner); a
    symlink is followed inside the rootfs, anything but a regular file is refused."""
    try:
        pfd = _open_in_root(rootfd, rel, os.O_PATH)
    except FileNotFoundError as err:
        raise InvalidConfig("the target is a dangling symlink") from err
    try:
        if not stat.S_ISREG(os.fstat(pfd).st_mode):
            raise InvalidConfig("the target is not a regular file")
        # Reopening the O_PATH fd opens exactly the inode that was checked.
        return os.open(f"/proc/self/fd/{pfd}", os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    finally:
        os.close(pfd)


def _create_new(dirfd: int, name: str, rule: TemplateRule, uid: int, gid: int) -> int:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dirfd)
    try:
        os.fchown(fd, uid + (rule.uid or 0), gid + (rule.gid or 0))
        os.fchmod(fd, DEFAULT_MODE if rule.mode is None else rule.mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_target(rootfd: int, rule: TemplateRule, content: bytes, uid: int, gid: int) -> None:
    """Write content to rule.path inside the rootfs open as rootfd."""
    parent, name = posixpath.split(rule.path.lstrip("/"))
    dirfd = _make_parents(rootfd, parent, uid, gid)
    try:
        if _target_exists(rootfd, rule.path.lstrip("/")):
            fd = _open_existing(rootfd, rule.path.lstrip("/"))
        else:
            fd = _create_new(dirfd, name, rule, uid, gid)
    finally:
        os.close(dirfd)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


# Public entry point -------------------------------------------------------------------------

# errnos that mean the rootfs or the image is wrong, not the host
_CONTENT_ERRNOS = {errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT,
                   errno.EXDEV}


def apply_templates(image_dir: Path, rules: Iterable[TemplateRule], trigger: str, rootfs: Path,
                    context: TemplateContext, *, uid: int = 0, gid: int = 0) -> list[str]:
    """Render and write the rules for trigger into the rootfs directory; returns the paths
    written. uid/gid: host ids of the container's root (new files and directories)."""
    selected = rules_for(rules, trigger)
    if not selected:
        return []
    written: list[str] = []
    tfd = open_templates_dir(image_dir)
    try:
        rootfd = _open_rootfs(rootfs)
        try:
            for rule in selected:
                if _apply_rule(tfd, rootfd, rule, trigger, context, uid, gid):
                    written.append(rule.path)
        finally:
            os.close(rootfd)
    finally:
        os.close(tfd)
    return written


def _open_rootfs(rootfs: Path) -> int:
    try:
        return os.open(rootfs, _DIR_FLAGS | os.O_NOFOLLOW)
    except OSError as err:
        raise InvalidConfig(f"Instance rootfs '{rootfs}' is not a directory: "
                            f"{os.strerror(err.errno or 0)}") from err


def _apply_rule(tfd: int, rootfd: int, rule: TemplateRule, trigger: str,
                context: TemplateContext, uid: int, gid: int) -> bool:
    what = f"Failed to apply template '{rule.template}' to '{rule.path}'"
    try:
        if rule.create_only and _target_exists(rootfd, rule.path.lstrip("/")):
            return False
        source = load_template(tfd, rule.template)
        text = render_source(source, build_variables(context, trigger, rule.path,
                                                        rule.properties))
        write_target(rootfd, rule, text.encode(), uid, gid)
    except InvalidConfig as err:
        raise InvalidConfig(f"{what}: {err}") from err
    except OSError as err:
        cls = InvalidConfig if err.errno in _CONTENT_ERRNOS else LxmgrError
        raise cls(f"{what}: {os.strerror(err.errno or 0)}") from err
    except Exception as err:  # the template itself failed to render
        raise InvalidConfig(f"{what}: {describe_error(err)}") from err
    log.debug("Applied template '%s' to '%s' (%s)", rule.template, rule.path, trigger)
    return True
