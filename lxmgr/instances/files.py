"""Files lxmgr writes into or reads from an instance's rootfs layers, from the host side.

Paths are resolved inside the rootfs (symlinks never leave it). Writes happen only at
create time, before the container ever ran, so nothing in the volume is hostile yet.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import Any

from lxmgr.errors import InvalidConfig
from lxmgr.model.idmap import IdMap
from lxmgr.storage.base import RootfsSpec

MAX_LINKS = 40
INIT = "/sbin/init"


def spec_dict(spec: RootfsSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def _layers(spec: RootfsSpec) -> list[str]:
    """Directories to look through, top first (upper before the image for overlay)."""
    return [spec.upper, spec.lower] if spec.kind == "overlay" else [spec.source]


def _lookup(layers: list[str], rel: str) -> str | None:
    for layer in layers:
        path = os.path.join(layer, rel)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None  # an overlayfs whiteout hides the lower entry
        return path
    return None


def chase(layers: list[str], path: str) -> str | None:
    """Resolve `path` inside the layered root as the container would see it (symlinks
    are followed relative to the rootfs, never the host); None if it does not exist."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        rel = "/".join(done + [part])
        found = _lookup(layers, rel)
        if found is None:
            return None
        if os.path.islink(found):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(found)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return "/" + "/".join(done)


def find_init(spec: RootfsSpec) -> str:
    """The container path /sbin/init resolves to; InvalidConfig when it is missing."""
    target = chase(_layers(spec), INIT)
    if target is None or _lookup(_layers(spec), target.lstrip("/")) is None:
        raise InvalidConfig(f"The instance rootfs has no {INIT}: is the image a full "
                            "distribution with an init system?")
    return target


def write_instance_files(spec: RootfsSpec, idmap: IdMap | None, name: str) -> None:
    """/etc/hostname and /etc/hosts naming the instance (what LXD's image templates do)."""
    hosts = (f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost "
             "ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
    for rel, text in (("etc/hostname", f"{name}\n"), ("etc/hosts", hosts)):
        write_file(spec, idmap, rel, text)


def write_file(spec: RootfsSpec, idmap: IdMap | None, rel: str, text: str, *,
               parents: list[str] | None = None) -> None:
    """Write rel (relative to the rootfs) before the instance ever ran; the directories in
    parents (outermost first, default: rel's own) are made when missing."""
    # overlay: write into upper, owned as the container root sees it; dir: into the copy,
    # which stays owned by host root when it is used through an idmapped mount.
    top = spec.upper if spec.kind == "overlay" else spec.source
    shifted = idmap is not None and not (spec.kind == "bind" and spec.idmap_lower)
    uid = idmap.host_uid(0) if shifted and idmap else 0
    gid = idmap.host_gid(0) if shifted and idmap else 0
    for parent in parents or [os.path.dirname(rel)]:
        parent_path = os.path.join(top, parent)
        if os.path.islink(parent_path):
            raise InvalidConfig(f"Refusing to write {rel}: /{parent} is a symlink in the "
                                "rootfs")
        if not os.path.isdir(parent_path):
            os.mkdir(parent_path, 0o755)
            os.chown(parent_path, uid, gid)
    path = os.path.join(top, rel)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        os.write(fd, text.encode())
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)
