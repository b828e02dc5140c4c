"""LXD's instance backup tarballs (`lxc export` / `lxc import`): write one from an instance's
rootfs trees, read an untrusted one into a staging directory.

Imports lxmgr.errors, lxmgr.linux, lxmgr.model, lxmgr.images (archive, lxdformat) and
lxmgr.instances.backup_index; never the manager, daemon or cli. A library the manager calls:
it supplies the rootfs directories (storage.merge.merge_overlay, a copy, unshift_tree: owners
must be container ids), holds the locks, and moves what read_backup staged into storage.
These functions only read their inputs and write `out` or `dest_dir`.

Layout, as LXD's non-optimized backups (lxd/storage/drivers/generic_vfs.go,
genericVFSBackupVolume; index: lxd/backup/backup_info.go):

    backup/index.yaml                   backup_index.build_index(): name, backend, pool,
                                        snapshots, optimized, optimized_header, type, config
    backup/container/backup.yaml        the same `config` section (LXD keeps it in the volume)
    backup/container/metadata.yaml      the image's LXD metadata.yaml, when known
    backup/container/templates/         the image's templates, when any
    backup/container/rootfs/            the instance's rootfs, container ids
    backup/snapshots/<snap>/rootfs/     each snapshot's (with metadata.yaml and templates/)
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import platform
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from lxmgr.errors import InvalidConfig, NotFound, NotSupported
from lxmgr.images.archive import Limits, extract_archive, suffix_for
from lxmgr.images.archive_write import write_archive
from lxmgr.images.lxdformat import (
    MAX_LXD_METADATA_BYTES,
    LxdMetadata,
    lxd_architecture,
    parse_metadata,
    render_metadata,
)
from lxmgr.instances.backup_index import (
    MAX_INDEX_BYTES,
    Devices,
    Expand,
    IndexSnapshot,
    build_index,
    parse_index,
    render_index,
)
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.model.config import VOLATILE_PREFIX
from lxmgr.model.instance import InstanceSpec, validate_stored_name
from lxmgr.model.snapshot import SnapshotSpec, validate_snapshot_name

log = logging.getLogger(__name__)

INDEX = "backup/index.yaml"
CONTAINER = "backup/container"
SNAPSHOTS = "backup/snapshots"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_RESOLVE = c.RESOLVE_NO_SYMLINKS | c.RESOLVE_BENEATH | c.RESOLVE_NO_MAGICLINKS | c.RESOLVE_NO_XDEV


@dataclass(frozen=True)
class BackupSnapshot(IndexSnapshot):
    """A snapshot read from a backup, with the directory its rootfs was unpacked to."""

    rootfs: Path = Path()


@dataclass(frozen=True)
class BackupContents:
    """What read_backup found; everything lives under root (the caller removes it)."""

    index: dict[str, Any]
    name: str
    architecture: str
    description: str
    config: dict[str, str]
    devices: Devices
    profiles: list[str]
    ephemeral: bool
    created_at: datetime
    snapshots: list[BackupSnapshot]
    rootfs: Path
    metadata: LxdMetadata | None
    templates: Path | None
    root: Path

    @property
    def base_image(self) -> str:
        """The fingerprint of the image the instance was made from ('' when unknown)."""
        return self.config.get("volatile.base_image", "")

    def instance_spec(self, *, name: str | None = None, storage_driver: str = "dir",
                      storage_pool: str = "") -> InstanceSpec:
        """An InstanceSpec for the imported instance; volatile.* keys (the source host's
        state) are dropped, the config is not validated yet."""
        name = name or self.name
        validate_stored_name(name)
        return InstanceSpec(name=name, image_fingerprint=self.base_image,
                            profiles=list(self.profiles), config=_local(self.config),
                            devices={k: dict(v) for k, v in self.devices.items()},
                            ephemeral=self.ephemeral, created_at=self.created_at,
                            storage_driver=storage_driver, description=self.description,
                            storage_pool=storage_pool)

    def snapshot_specs(self, instance: InstanceSpec) -> list[SnapshotSpec]:
        """SnapshotSpecs of the imported snapshots, belonging to instance."""
        return [SnapshotSpec(name=s.name, created_at=s.created_at, expires_at=s.expires_at,
                             instance=dataclasses.replace(
                                 instance, profiles=list(s.profiles), config=_local(s.config),
                                 devices={k: dict(v) for k, v in s.devices.items()},
                                 ephemeral=s.ephemeral, description=s.description))
                for s in self.snapshots]


def _local(config: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in config.items() if not k.startswith(VOLATILE_PREFIX)}


# -- writing --------------------------------------------------------------------------------


def write_backup(out: Path, *, spec: InstanceSpec, snapshots: list[SnapshotSpec],
                 rootfs_of: Callable[[str | None], Path], image_metadata: dict[str, Any] | None,
                 compression: str = "gzip", instance_only: bool = False,
                 expand: Expand | None = None, architecture: str | None = None,
                 templates_dir: Path | None = None, pool: str = "default",
                 status: str = "Stopped", progress: Callable[[int], None] | None = None) -> str:
    """Write spec's backup tarball to out (a temp name renamed into place); its sha256.

    rootfs_of(None) is the instance's rootfs, rootfs_of(snap) a snapshot's; both unshifted.
    image_metadata is the store's metadata.yaml dict (or an LXD one, with creation_date);
    expand gives (expanded_config, expanded_devices) for a spec, e.g. Manager.expanded.
    """
    suffix_for(compression)
    validate_stored_name(spec.name)
    snaps = [] if instance_only else list(snapshots)
    for snap in snaps:
        validate_snapshot_name(snap.name)
    arch = architecture or _architecture(image_metadata)
    index = build_index(spec, snaps, architecture=arch, expand=expand, pool=pool,
                        status=status)
    files = {INDEX: render_index(index), f"{CONTAINER}/backup.yaml": render_index(
        index["config"])}
    trees = [(f"{CONTAINER}/rootfs/", _tree(rootfs_of(None), spec.name))]
    trees += [(f"{SNAPSHOTS}/{s.name}/rootfs/", _tree(rootfs_of(s.name), f"{spec.name}/{s.name}"))
              for s in snaps]
    metadata = _metadata_bytes(image_metadata)
    if templates_dir is not None:
        _tree(templates_dir, "templates")
    for base in (CONTAINER, *(f"{SNAPSHOTS}/{s.name}" for s in snaps)):
        if metadata is not None:
            files[f"{base}/metadata.yaml"] = metadata
        if templates_dir is not None:
            trees.append((f"{base}/templates/", templates_dir))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        digest = write_archive(tmp, trees, files=files, compression=compression,
                               mtime=int(time.time()), progress=progress)
        os.rename(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("Wrote backup of '%s' with %d snapshots to %s", spec.name, len(snaps), out)
    return digest


def _tree(path: Path, what: str) -> Path:
    """path, checked to be a real directory (not a symlink to one)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise NotFound(f"Rootfs of '{what}' not found at '{path}'") from None
    if not stat.S_ISDIR(mode):
        raise InvalidConfig(f"Rootfs of '{what}' at '{path}' is not a directory")
    return path


def _architecture(image_metadata: dict[str, Any] | None) -> str:
    arch = str((image_metadata or {}).get("architecture") or "")
    return lxd_architecture(arch) if arch else platform.machine()


def _metadata_bytes(image_metadata: dict[str, Any] | None) -> bytes | None:
    if not image_metadata:
        return None
    if "creation_date" in image_metadata:  # already LXD's shape
        return yaml.safe_dump(dict(image_metadata), sort_keys=True).encode()
    return render_metadata(image_metadata)


# -- reading --------------------------------------------------------------------------------


def read_backup(archive: Path, dest_dir: Path, *, limits: Limits | None = None
                ) -> BackupContents:
    """Unpack the untrusted backup archive into dest_dir (which must not exist) and check it.

    Refused (InvalidConfig, NotSupported for VM/optimized backups) with dest_dir removed: no
    or oversized index.yaml, invalid instance or snapshot names, symlinks where index.yaml,
    rootfs/ or snapshot directories belong, snapshot directories index.yaml does not list.
    """
    extract_archive(archive, dest_dir, limits=limits)
    try:
        os.chmod(dest_dir, 0o700)
        if os.geteuid() == 0:
            os.chown(dest_dir, 0, 0)  # a '.' member may have named any owner
        return _inspect(dest_dir, archive.name)
    except BaseException:
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise


def _inspect(root: Path, label: str) -> BackupContents:
    rootfd = os.open(root, _DIR_FLAGS)
    try:
        parsed = parse_index(_read_file(rootfd, INDEX, MAX_INDEX_BYTES, label))
        if _exists(rootfd, "backup/container.bin"):
            raise NotSupported(f"Backup '{label}' is an optimized (driver-specific) backup: "
                               "only non-optimized backups can be imported")
        _check_dir(rootfd, f"{CONTAINER}/rootfs", label)
        _check_snapshot_dirs(rootfd, {s.name for s in parsed.snapshots}, label)
        snapshots = []
        for snap in parsed.snapshots:
            _check_dir(rootfd, f"{SNAPSHOTS}/{snap.name}/rootfs", label)
            snapshots.append(BackupSnapshot(**_fields(snap),
                                            rootfs=root / SNAPSHOTS / snap.name / "rootfs"))
        metadata = _metadata(rootfd, label)
        templates = _templates(rootfd, label)
    finally:
        os.close(rootfd)
    return BackupContents(
        index=parsed.raw, name=parsed.name, architecture=parsed.architecture,
        description=parsed.description, config=parsed.config, devices=parsed.devices,
        profiles=parsed.profiles, ephemeral=parsed.ephemeral, created_at=parsed.created_at,
        snapshots=snapshots, rootfs=root / CONTAINER / "rootfs", metadata=metadata,
        templates=root / CONTAINER / "templates" if templates else None, root=root)


def _fields(snap: IndexSnapshot) -> dict[str, Any]:
    return {f.name: getattr(snap, f.name) for f in dataclasses.fields(snap)}


def _open(rootfd: int, rel: str, flags: int, label: str) -> int:
    """openat2 beneath rootfd without following any symlink; refusals name rel."""
    try:
        return libc.openat2(rootfd, rel, flags, 0, _RESOLVE)
    except OSError as err:
        why = {errno.ENOENT: f"'{rel}' is missing"}.get(err.errno or 0) \
            or _blocker(rootfd, rel) or f"'{rel}' cannot be opened: {err.strerror}"
        raise InvalidConfig(f"Refusing backup '{label}': {why}") from None


def _blocker(rootfd: int, rel: str) -> str | None:
    """Name the symlink or non-directory on the way to rel (the first one: nothing before
    it is a symlink, so the lstat walk below follows none)."""
    parts = rel.split("/")
    for i in range(len(parts)):
        where = "/".join(parts[: i + 1])
        try:
            mode = os.stat(where, dir_fd=rootfd, follow_symlinks=False).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return f"'{where}' is a symlink"
        if i < len(parts) - 1 and not stat.S_ISDIR(mode):
            return f"'{where}' is not a directory"
    return None


def _check_dir(rootfd: int, rel: str, label: str) -> None:
    os.close(_open(rootfd, rel, _DIR_FLAGS, label))


def _exists(rootfd: int, rel: str) -> bool:
    try:
        os.stat(rel, dir_fd=rootfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _read_file(rootfd: int, rel: str, limit: int, label: str) -> bytes:
    fd = _open(rootfd, rel, _FILE_FLAGS, label)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidConfig(f"Refusing backup '{label}': '{rel}' is not a regular file")
        if st.st_size > limit:
            raise InvalidConfig(f"Refusing backup '{label}': '{rel}' is larger than "
                                f"{limit} bytes")
        return f.read(limit + 1)


def _check_snapshot_dirs(rootfd: int, listed: set[str], label: str) -> None:
    """Every entry of backup/snapshots/ is a real directory that index.yaml lists."""
    if not _exists(rootfd, SNAPSHOTS):
        return
    fd = _open(rootfd, SNAPSHOTS, _DIR_FLAGS, label)
    try:
        for name in sorted(os.listdir(fd)):
            if name not in listed:
                raise InvalidConfig(f"Refusing backup '{label}': snapshot directory "
                                    f"'{name}' is not listed in index.yaml")
            if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise InvalidConfig(f"Refusing backup '{label}': '{SNAPSHOTS}/{name}' is "
                                    "not a directory")
    finally:
        os.close(fd)


def _metadata(rootfd: int, label: str) -> LxdMetadata | None:
    """backup/container/metadata.yaml when present; one that does not parse is ignored."""
    rel = f"{CONTAINER}/metadata.yaml"
    if not _exists(rootfd, rel):
        return None
    raw = _read_file(rootfd, rel, MAX_LXD_METADATA_BYTES, label)
    try:
        return parse_metadata(raw)
    except InvalidConfig as err:
        log.warning("Backup '%s': ignoring its metadata.yaml: %s", label, err)
        return None


def _templates(rootfd: int, label: str) -> bool:
    """True when backup/container/templates/ exists; it must hold regular files only."""
    rel = f"{CONTAINER}/templates"
    if not _exists(rootfd, rel):
        return False
    fd = _open(rootfd, rel, _DIR_FLAGS, label)
    try:
        for name in os.listdir(fd):
            if not stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise InvalidConfig(f"Refusing backup '{label}': template '{name}' is not a "
                                    "regular file")
    finally:
        os.close(fd)
    return True
