"""`lxmgr file push|pull|edit|delete` (LXD's `lxc file`), over lxmgr.client.files.

Remote paths are NAME/PATH. A symlink named on the command line is followed inside the
instance (the file it leads to is pulled or edited); a recursive pull writes only names the
server listed (never containing "/"), recreates the symlinks of the tree as symlinks and
never writes through one.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from typing import Any

import click

from lxmgr.cli.options import ON_SERVER, get_app

ID = click.IntRange(min=0)


def split_remote(spec: str) -> tuple[str, str]:
    """NAME/PATH -> (NAME, /PATH); BadParameter without a path."""
    name, sep, path = spec.partition("/")
    if not name or not sep:
        raise click.BadParameter(f"'{spec}': expected NAME/PATH")
    return name, "/" + path


def parse_mode(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        mode = int(raw, 8)
    except ValueError:
        raise click.BadParameter(f"'{raw}': expected an octal mode") from None
    if not 0 <= mode <= 0o7777:
        raise click.BadParameter(f"'{raw}': expected an octal mode <= 7777")
    return mode


@click.group()
def file() -> None:
    """Manage files in instances.

    \b
    Examples:
      lxmgr file push ./app.conf web1/etc/app.conf --mode 0640
      lxmgr file pull web1/etc/hosts .
      lxmgr file push -r ./site web1/srv/
      lxmgr file edit web1/etc/motd
      lxmgr file delete web1/tmp/junk
    """


@file.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.argument("target", metavar="NAME/PATH", type=ON_SERVER)
@click.option("-r", "--recursive", is_flag=True, help="Push directories recursively.")
@click.option("-p", "--create-dirs", is_flag=True, help="Create missing parent directories.")
@click.option("--uid", type=ID, help="Owner in the instance (default: the local owner).")
@click.option("--gid", type=ID, help="Group in the instance (default: the local group).")
@click.option("--mode", help="Octal mode (default: the local mode).")
def push(sources: tuple[str, ...], target: str, recursive: bool, create_dirs: bool,
         uid: int | None, gid: int | None, mode: str | None) -> None:
    """Push local files into an instance (NAME/PATH/ for a directory).

    \b
    Examples:
      lxmgr file push ./app.conf web1/etc/app.conf --uid 0 --mode 0640
      lxmgr file push -r -p ./site web1/srv/www/
    """
    from lxmgr.client import files

    app, (name, path) = get_app(), split_remote(target)
    perms = {"uid": uid, "gid": gid, "mode": parse_mode(mode)}
    into_dir = path.endswith("/") or len(sources) > 1 or recursive
    if create_dirs:
        files.mkdir_parents(app.client, name, path if into_dir else path.rstrip("/"))
        if into_dir:
            files.mkdir(app.client, name, path.rstrip("/") or "/")
    for source in sources:
        dest = _join(path, os.path.basename(source.rstrip("/"))) if into_dir else path
        if os.path.isdir(source) and not os.path.islink(source):
            if not recursive:
                app.abort(f"'{source}' is a directory (use -r)")
            _push_tree(app, name, source, dest, perms)
        else:
            _push_one(app, name, source, dest, perms)


def _join(base: str, leaf: str) -> str:
    return base.rstrip("/") + "/" + leaf


def _push_one(app: Any, name: str, source: str, dest: str, perms: dict[str, Any]) -> None:
    from lxmgr.client import files

    st = os.lstat(source)
    uid = perms["uid"] if perms["uid"] is not None else st.st_uid
    gid = perms["gid"] if perms["gid"] is not None else st.st_gid
    if stat.S_ISLNK(st.st_mode):
        files.symlink(app.client, name, dest, os.readlink(source), uid=uid, gid=gid)
        return
    if stat.S_ISDIR(st.st_mode):
        mode = perms["mode"] if perms["mode"] is not None else stat.S_IMODE(st.st_mode)
        files.mkdir(app.client, name, dest, uid=uid, gid=gid, mode=mode)
        return
    mode = perms["mode"] if perms["mode"] is not None else stat.S_IMODE(st.st_mode)
    modify = any(perms[k] is not None for k in ("uid", "gid", "mode"))
    with open(source, "rb") as src:
        files.push(app.client, name, dest, src, os.fstat(src.fileno()).st_size, uid=uid,
                   gid=gid, mode=mode, modify=modify)


def _push_tree(app: Any, name: str, source: str, dest: str, perms: dict[str, Any]) -> None:
    _push_one(app, name, source, dest, perms)
    for root, dirs, names in os.walk(source):
        rel = os.path.relpath(root, source)
        base = dest if rel == "." else _join(dest, rel)
        for entry in sorted(dirs) + sorted(names):
            _push_one(app, name, os.path.join(root, entry), _join(base, entry), perms)


@file.command()
@click.argument("sources", nargs=-1, required=True, metavar="NAME/PATH...", type=ON_SERVER)
@click.argument("target", metavar="TARGET")
@click.option("-r", "--recursive", is_flag=True, help="Pull directories recursively.")
@click.option("-p", "--create-dirs", is_flag=True, help="Create missing local directories.")
def pull(sources: tuple[str, ...], target: str, recursive: bool, create_dirs: bool) -> None:
    """Pull files from an instance (TARGET `-` is stdout).

    A symlink named on the command line is followed inside the instance: you get the file
    it points to. Symlinks found in a directory pulled with -r are recreated as symlinks.

    \b
    Examples:
      lxmgr file pull web1/etc/hosts .
      lxmgr file pull -r web1/etc/systemd ./backup/
      lxmgr file pull web1/etc/os-release -
    """
    app = get_app()
    if create_dirs and target != "-":
        os.makedirs(target if len(sources) > 1 or target.endswith("/") else
                    os.path.dirname(target) or ".", exist_ok=True)
    for spec in sources:
        name, path = split_remote(spec)
        if target == "-":
            _pull_stdout(app, name, path)
            continue
        dest = target
        if os.path.isdir(target):
            dest = os.path.join(target, os.path.basename(path.rstrip("/")) or name)
        _pull_one(app, name, path, dest, recursive, follow=True)


def _pull_stdout(app: Any, name: str, path: str) -> None:
    from lxmgr.client import files

    info = files.pull_follow(app.client, name, path, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    if info["type"] == "directory":
        app.abort(f"'{path}' is a directory: pull it with -r into a local directory")


def _pull_one(app: Any, name: str, path: str, dest: str, recursive: bool,
              follow: bool = False) -> None:
    """path into dest; follow: through symlinks (a path the user named, as lxc does for
    `-` and -r; for a local target too, so that the user never gets a link that dangles
    on the host), else a symlink is recreated as one (an entry of a tree, as lxc does)."""
    from lxmgr.client import files

    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600) \
        if not os.path.isdir(dest) else None
    try:
        with os.fdopen(fd, "wb") if fd is not None else open(os.devnull, "wb") as out:
            get = files.pull_follow if follow else files.pull
            info = get(app.client, name, path, out)
            if fd is not None and info["type"] == "file":
                out.truncate()
                os.fchmod(out.fileno(), info["mode"])
    except BaseException:
        if fd is not None:
            os.unlink(dest)
        raise
    if info["type"] == "file":
        return
    if fd is not None:
        os.unlink(dest)
    if info["type"] == "symlink":
        os.symlink(info["target"], dest)
        return
    if not recursive:
        app.abort(f"'{path}' is a directory (use -r)")
    os.makedirs(dest, mode=info["mode"] | 0o700, exist_ok=True)
    source = info.get("path", path)
    for entry in info["entries"]:
        if "/" in entry or entry in (".", ".."):
            continue
        _pull_one(app, name, _join(source, entry), os.path.join(dest, entry), True)


@file.command()
@click.argument("spec", metavar="NAME/PATH", type=ON_SERVER)
def edit(spec: str) -> None:
    """Edit a file in an instance: stdin when it is not a terminal, else $EDITOR.

    \b
    Examples:
      lxmgr file edit web1/etc/motd
      echo hello | lxmgr file edit web1/etc/motd
    """
    from lxmgr.client import files

    app, (name, path) = get_app(), split_remote(spec)
    with tempfile.NamedTemporaryFile(prefix="lxmgr-edit-") as tmp:
        if sys.stdin.isatty():
            if files.pull_follow(app.client, name, path, tmp)["type"] == "directory":
                app.abort(f"'{path}' is a directory")
            tmp.flush()
            editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
            if subprocess.call([*editor.split(), tmp.name]) != 0:
                app.abort(f"Editor '{editor}' failed; '{path}' left unchanged")
        else:
            while piece := sys.stdin.buffer.read(1 << 20):
                tmp.write(piece)
            tmp.flush()
        with open(tmp.name, "rb") as src:
            files.push(app.client, name, path, src, os.fstat(src.fileno()).st_size)


@file.command()
@click.argument("specs", nargs=-1, required=True, metavar="NAME/PATH...", type=ON_SERVER)
def delete(specs: tuple[str, ...]) -> None:
    """Delete files, symlinks or empty directories in an instance.

    \b
    Examples:
      lxmgr file delete web1/tmp/junk web1/tmp/emptydir
    """
    from lxmgr.client import files

    app = get_app()
    for spec in specs:
        files.delete(app.client, *split_remote(spec))
