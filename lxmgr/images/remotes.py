"""User image remotes stored in one YAML file beside the built-in ones, and resolution of an
image reference the user typed ('ubuntu:24.04', 'images:debian/12', 'debian') to a remote.

Imports lxmgr.model.remote (the pure rules), lxmgr.images.simplestreams, lxmgr.errors and
lxmgr.paths (the built-in recipes, the names that work without a server).
Synchronous small-file I/O (call through asyncio.to_thread from a coroutine). The file is
written atomically (temp, fsync, rename) under an flock of a sidecar '.lock' file, read
size-capped with yaml.safe_load, and every entry is validated again on load, so a hand-edited
file cannot smuggle in an http:// URL. The caller chooses where it lives (see remotes_file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotFound
from lxmgr.images.simplestreams import normalize_architecture
from lxmgr.model.remote import (
    BUILTIN,
    LOCAL,
    ImageRef,
    Remote,
    build_remote,
    parse_image_ref,
)

MAX_FILE_BYTES = 256 * 1024
FILE_NAME = "remotes.yaml"
DEFAULT_KEY = "default-remote"  # as lxc's config.yml


def remotes_file(state_dir: Path) -> Path:
    """Where user remotes live under a state directory ($LXMGR_DIR/remotes.yaml)."""
    return state_dir / FILE_NAME


def load_remotes(path: Path) -> dict[str, Remote]:
    """Built-in remotes, then the user's from path (a missing file means none), by name."""
    return {**BUILTIN, **_stored_remotes(path, _read(path))}


def _stored_remotes(path: Path, entries: dict[str, Any]) -> dict[str, Remote]:
    """The remotes of a file's entries. An entry of a built-in remote without a url holds
    only its settings (its current project), as lxc's config.yml `local: {project: P}`."""
    remotes = {}
    for name, entry in entries.items():
        if name in BUILTIN and isinstance(entry, dict) and "url" not in entry:
            continue
        remote = _from_entry(path, name, entry)
        remotes[remote.name] = remote
    return remotes


def get_remote(path: Path, name: str) -> Remote:
    """One remote by name; NotFound names it."""
    try:
        return load_remotes(path)[name]
    except KeyError:
        raise NotFound(f"Remote '{name}' not found") from None


def add_remote(path: Path, name: str, url: str, *, protocol: str = "simplestreams",
               public: bool = True) -> Remote:
    """Validate and store a new user remote; Conflict if the name is taken."""
    remote = build_remote(name, url, protocol, public)
    with _locked(path):
        doc = _read_doc(path)
        entries = doc["remotes"]
        if name in entries or name in BUILTIN:
            raise Conflict(f"Remote '{name}' already exists")
        entries[name] = {"url": remote.url, "protocol": remote.protocol,
                         "public": remote.public}
        _write(path, doc)
    return remote


def remove_remote(path: Path, name: str) -> None:
    """Forget a user remote; built-in ones cannot be removed (InvalidConfig)."""
    if name in BUILTIN:
        raise InvalidConfig(f"Remote '{name}' is built in and cannot be removed")
    with _locked(path):
        doc = _read_doc(path)
        if doc["remotes"].pop(name, None) is None:
            raise NotFound(f"Remote '{name}' not found")
        if doc.get(DEFAULT_KEY) == name:
            del doc[DEFAULT_KEY]
        _write(path, doc)


def rename_remote(path: Path, old: str, new: str) -> Remote:
    """Give a user remote a new name (the default follows); built-in ones keep theirs."""
    if old in BUILTIN:
        raise InvalidConfig(f"Remote '{old}' is built in and cannot be renamed")
    with _locked(path):
        doc = _read_doc(path)
        entries = doc["remotes"]
        if old not in entries:
            raise NotFound(f"Remote '{old}' not found")
        if new in entries or new in BUILTIN:
            raise Conflict(f"Remote '{new}' already exists")
        entry = entries[old]
        remote = build_remote(new, str(entry.get("url")), str(entry.get("protocol")),
                              bool(entry.get("public", True)))  # validates the new name
        del entries[old]
        entries[new] = entry
        if doc.get(DEFAULT_KEY) == old:
            doc[DEFAULT_KEY] = new
        _write(path, doc)
    return remote


def set_remote_url(path: Path, name: str, url: str) -> Remote:
    """Point a user remote at another URL (same protocol, validated again)."""
    if name in BUILTIN:
        raise InvalidConfig(f"Remote '{name}' is built in: its URL cannot change")
    with _locked(path):
        doc = _read_doc(path)
        entry = doc["remotes"].get(name)
        if entry is None:
            raise NotFound(f"Remote '{name}' not found")
        remote = build_remote(name, url, str(entry.get("protocol")),
                              bool(entry.get("public", True)))
        entry["url"] = remote.url
        _write(path, doc)
    return remote


def default_remote(path: Path) -> str:
    """The server remote bare instance names refer to (`lxc remote switch`): local unless
    switched."""
    name = _read_doc(path).get(DEFAULT_KEY) or LOCAL
    if not isinstance(name, str):
        raise InvalidConfig(f"Invalid remotes file '{path}': {DEFAULT_KEY} is not a name")
    return name


def set_default_remote(path: Path, name: str) -> None:
    """Make name (a server remote: local or an lxd one) the default."""
    with _locked(path):
        doc = _read_doc(path)
        remote = {**BUILTIN, **_stored_remotes(path, doc["remotes"])}.get(name)
        if remote is None:
            raise NotFound(f"Remote '{name}' not found")
        if not remote.is_server:
            raise InvalidConfig(f"Remote '{name}' is an image server ({remote.protocol}): "
                                "only a server remote (local or one added with a token) can "
                                "be the default")
        if name == LOCAL:
            doc.pop(DEFAULT_KEY, None)
        else:
            doc[DEFAULT_KEY] = name
        _write(path, doc)


def remote_project(path: Path, name: str) -> str:
    """The current project of server remote name (`lxc project switch`), '' when none is
    stored (the server's default project)."""
    entry = _read_doc(path)["remotes"].get(name)
    project = entry.get("project", "") if isinstance(entry, dict) else ""
    if project is None:
        return ""
    if not isinstance(project, str):
        raise InvalidConfig(f"Invalid remotes file '{path}': the project of remote '{name}' "
                            "is not a name")
    return project


def set_remote_project(path: Path, name: str, project: str | None) -> None:
    """Store project as the current project of server remote name (None forgets it: the
    server's default project then, as lxc's `Project: ""`)."""
    with _locked(path):
        doc = _read_doc(path)
        entries = doc["remotes"]
        remote = {**BUILTIN, **_stored_remotes(path, entries)}.get(name)
        if remote is None:
            raise NotFound(f"Remote '{name}' not found")
        if not remote.is_server:
            raise InvalidConfig(f"Remote '{name}' is an image server ({remote.protocol}): "
                                "it has no projects")
        entry = entries.setdefault(name, {})
        if project is None:
            entry.pop("project", None)
            if not entry:
                del entries[name]
        else:
            entry["project"] = project
        _write(path, doc)


def resolve_image_ref(path: Path, ref: str) -> tuple[Remote | None, str]:
    """(remote, alias) for what the user typed; remote None means the local image store."""
    remotes = load_remotes(path)
    parsed: ImageRef = parse_image_ref(ref, remotes)
    return (remotes[parsed.remote] if parsed.remote else None), parsed.alias


def recipe_names() -> list[str]:
    """The built-in image recipes (images/<name>.yaml): local names that need no server."""
    try:
        return sorted(p.stem for p in paths.recipes_dir().glob("*.yaml") if p.is_file())
    except OSError:
        return []


def host_architecture() -> str:
    """This machine's architecture in LXD's naming (x86_64, aarch64...)."""
    return normalize_architecture(platform.machine())


def _from_entry(path: Path, name: Any, entry: Any) -> Remote:
    if not isinstance(name, str) or not isinstance(entry, dict):
        raise InvalidConfig(f"Invalid remotes file '{path}': entry {name!r} is not a mapping")
    url, protocol, public = entry.get("url"), entry.get("protocol", "simplestreams"), \
        entry.get("public", True)
    if not isinstance(url, str) or not isinstance(protocol, str) or not isinstance(public, bool):
        raise InvalidConfig(f"Invalid remotes file '{path}': remote '{name}' needs a url, "
                            "a protocol and a boolean public")
    try:
        return build_remote(name, url, protocol, public)
    except InvalidConfig as err:
        raise InvalidConfig(f"Invalid remotes file '{path}': {err}") from err


def _read(path: Path) -> dict[str, Any]:
    return dict(_read_doc(path)["remotes"])


def _read_doc(path: Path) -> dict[str, Any]:
    """The whole file: {"remotes": {...}, "default-remote": NAME (optional)}."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return {"remotes": {}}
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidConfig(f"Invalid remotes file '{path}': larger than {MAX_FILE_BYTES} bytes")
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as err:
        raise InvalidConfig(f"Invalid remotes file '{path}': {err}") from err
    remotes = data.get("remotes", {}) if isinstance(data, dict) else None
    if not isinstance(remotes, dict):
        raise InvalidConfig(f"Invalid remotes file '{path}': expected a 'remotes' mapping")
    return {**data, "remotes": remotes}


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize read-modify-write of the file between processes (daemon, CLI)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
