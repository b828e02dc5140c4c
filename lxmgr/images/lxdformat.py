"""LXD's image format: metadata.yaml, unified and split images, LXD fingerprints, and import
into / export from the local ImageStore.

Imports lxmgr.errors, lxmgr.linux and the images modules archive, store and progress (never
instances, daemon or cli). Format: https://documentation.ubuntu.com/lxd/en/latest/reference/
image_format/ and lxc/incus shared/api/image.go (ImageMetadata, ImageMetadataTemplate).

- unified: one tarball with metadata.yaml, rootfs/ and optional templates/; the LXD
  fingerprint is the sha256 of the tarball's bytes.
- split: a metadata tarball (metadata.yaml, templates/) plus a rootfs that is a squashfs
  or a tarball of the rootfs contents; the fingerprint is sha256(metadata bytes + rootfs bytes).

An import unpacks into images_dir()/.import-XXXX (ignored by the store), checks everything,
writes store-shape metadata.yaml (LXD's properties and templates kept verbatim under those
keys) and renames it to <LXD fingerprint> atomically; any failure removes the staging dir.
The imported files themselves are kept in <fingerprint>/original/ (hard links to the upload or
download when on the same filesystem, else copies) under the names LXD's imageExportFiles
gives them (<fp><ext>, or meta-<fp><ext> and <fp><ext>), so an export is the original bytes
and hashes to the fingerprint, as LXD serves the files it stored. Images built here (recipes,
publish) have no original: their export is rebuilt by export_image.
Squashfs rootfs go through `unsquashfs` (squashfs-tools >= 4.5.1: the path traversal fixes
of CVE-2021-40153/41072), after a listing pass that enforces the archive Limits and refuses
devices before anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lxmgr.errors import CommandError, Conflict, InvalidConfig
from lxmgr.images.archive import (
    Limits,
    check_tree,
    detect_compression,
    extract_archive,
    suffix_for,
)
from lxmgr.images.archive_write import write_archive
from lxmgr.images.progress import Progress, at
from lxmgr.images.store import ImageInfo, ImageStore, read_metadata, write_metadata
from lxmgr.linux import commands

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
METADATA = "metadata.yaml"
# The store's metadata key naming an image's export compression (LXD's compression_algorithm
# of a published image; absent: gzip, as LXD's default images.compression_algorithm).
COMPRESSION_KEY = "compression_algorithm"
# The store's metadata key listing the kept original files, in fingerprint order.
ORIGINAL_KEY = "original_files"
ORIGINAL_DIR = "original"
# shared.DetectCompressionFile's extensions (LXD names exported files <fingerprint><ext>).
_EXTENSIONS = {"gzip": ".tar.gz", "xz": ".tar.xz", "bzip2": ".tar.bz2", "zstd": ".tar.zst"}
MAX_LXD_METADATA_BYTES = 48 * 1024  # leaves room in the store's 64 KiB metadata.yaml
TEMPLATE_TRIGGERS = frozenset({"create", "copy", "start", "rename"})
# Debian architecture names (the store's) -> LXD's (shared/osarch).
LXD_ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l", "armel": "armv6l",
                     "i386": "i686", "ppc64el": "ppc64le", "s390x": "s390x",
                     "riscv64": "riscv64", "mips64el": "mips64", "loong64": "loongarch64"}
DEBIAN_ARCHITECTURES = {lxd: deb for deb, lxd in LXD_ARCHITECTURES.items()}
SQUASHFS_MAGIC = b"hsqs"
_FP_RE = re.compile(r"^[0-9a-f]{64}$")
_LISTING_RE = re.compile(rb"^([-dlcbps])[rwxsStT-]{9} \d+/\d+ +(\d+|\d+, *\d+) ")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LxdTemplate:
    """One templates entry: render `template` to the path on the `when` triggers."""

    when: tuple[str, ...]
    template: str
    create_only: bool = False
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LxdMetadata:
    """A validated LXD metadata.yaml; architecture is the Debian name, raw the parsed YAML."""

    architecture: str
    creation_date: int
    expiry_date: int
    properties: dict[str, str]
    templates: dict[str, LxdTemplate]
    raw: dict[str, Any]


def lxd_architecture(debian: str) -> str:
    """amd64 -> x86_64 (names LXD already uses pass through)."""
    return LXD_ARCHITECTURES.get(debian, debian)


def debian_architecture(name: str) -> str:
    """x86_64 or amd64 -> amd64; InvalidConfig for an architecture we do not know."""
    if name in LXD_ARCHITECTURES:
        return name
    if name in DEBIAN_ARCHITECTURES:
        return DEBIAN_ARCHITECTURES[name]
    raise InvalidConfig(f"Image metadata field 'architecture': unknown architecture '{name}'")


def parse_metadata(raw: bytes) -> LxdMetadata:
    """PURE: validate LXD metadata.yaml bytes; InvalidConfig names the offending field."""
    if len(raw) > MAX_LXD_METADATA_BYTES:
        raise InvalidConfig(f"Image metadata.yaml is larger than {MAX_LXD_METADATA_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise InvalidConfig(f"Image metadata.yaml is not valid YAML: {err}".replace("\n", " ")
                            ) from err
    if not isinstance(data, dict):
        raise InvalidConfig("Image metadata.yaml is not a mapping")
    arch = data.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise InvalidConfig("Image metadata field 'architecture' is missing or not a string")
    return LxdMetadata(
        architecture=debian_architecture(arch),
        creation_date=_epoch(data, "creation_date"), expiry_date=_epoch(data, "expiry_date"),
        properties=_string_map(data.get("properties"), "properties"),
        templates=_templates(data.get("templates")), raw=data)


def _epoch(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidConfig(f"Image metadata field '{key}' must be a UNIX time, not {value!r}")
    return value


def _string_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfig(f"Image metadata field '{where}' must be a mapping")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or isinstance(item, (dict, list)):
            raise InvalidConfig(f"Image metadata field '{where}.{key}' must be a string")
        out[key] = "" if item is None else str(item)
    return out


def _templates(value: object) -> dict[str, LxdTemplate]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfig("Image metadata field 'templates' must be a mapping")
    return {path: _template(path, spec) for path, spec in value.items()}


def _template(path: object, spec: object) -> LxdTemplate:
    where = f"templates.{path}"
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path \
            or ".." in path.split("/"):
        raise InvalidConfig(f"Image metadata field '{where}': the key must be an absolute path")
    if not isinstance(spec, dict):
        raise InvalidConfig(f"Image metadata field '{where}' must be a mapping")
    when = spec.get("when")
    if not isinstance(when, list) or not set(when) <= TEMPLATE_TRIGGERS:
        raise InvalidConfig(f"Image metadata field '{where}.when' must be a list of "
                            f"{', '.join(sorted(TEMPLATE_TRIGGERS))}")
    name = spec.get("template")
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise InvalidConfig(f"Image metadata field '{where}.template' must be a file name "
                            "in templates/")
    create_only = spec.get("create_only", False)
    if not isinstance(create_only, bool):
        raise InvalidConfig(f"Image metadata field '{where}.create_only' must be a boolean")
    return LxdTemplate(tuple(when), name, create_only,
                       _string_map(spec.get("properties"), f"{where}.properties"))


def build_store_metadata(meta: LxdMetadata, *, size: int, aliases: Iterable[str] = ()
                         ) -> dict[str, Any]:
    """PURE: the store's metadata.yaml for an imported LXD image."""
    data: dict[str, Any] = {
        "architecture": meta.architecture, "os": meta.properties.get("os", ""),
        "release": meta.properties.get("release", ""),
        "created_at": meta.creation_date or int(time.time()), "aliases": list(aliases),
        "size": size, "source": "lxd", "properties": dict(meta.properties),
        "templates": meta.raw.get("templates") or {},
    }
    if meta.expiry_date:
        data["expiry_date"] = meta.expiry_date
    return data


def render_metadata(data: dict[str, Any]) -> bytes:
    """PURE: LXD's metadata.yaml for a store image's metadata (the inverse of the above)."""
    props = {str(k): str(v) for k, v in (data.get("properties") or {}).items()}
    for key in ("os", "release"):
        if data.get(key):
            props.setdefault(key, str(data[key]))
    lxd = {"architecture": lxd_architecture(str(data.get("architecture", ""))),
           "creation_date": int(data.get("created_at", 0)),
           "expiry_date": int(data.get("expiry_date", 0)),
           "properties": props, "templates": data.get("templates") or {}}
    return yaml.safe_dump(lxd, sort_keys=True).encode()


def lxd_fingerprint(files: Sequence[Path]) -> str:
    """LXD's fingerprint: sha256 over the files' bytes in order (unified, or meta + rootfs)."""
    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def import_image(files: Sequence[Path], store: ImageStore, *, aliases: Iterable[str] = (),
                 progress: ProgressCallback | None = None,
                 expected_fingerprint: str | None = None,
                 limits: Limits | None = None) -> ImageInfo:
    """Import a unified [tarball] or split [metadata tarball, rootfs] LXD image; returns it.

    A no-op (aliases added) when the fingerprint is already stored. InvalidConfig if the
    files do not hash to expected_fingerprint; Conflict if an alias belongs to another image.
    """
    paths = [Path(f) for f in files]
    if len(paths) not in (1, 2):
        raise InvalidConfig("An LXD image is one unified tarball, or a metadata tarball and "
                            f"a rootfs ({len(paths)} files given)")
    report = progress or (lambda p: None)
    aliases = list(aliases)
    report(at("resolve", 0.0, "Computing the image fingerprint"))
    fingerprint = lxd_fingerprint(paths)
    _check_fingerprint(fingerprint, expected_fingerprint)
    _check_aliases(store, fingerprint, aliases)
    if (store.root / fingerprint).is_dir():
        log.info("Image %s is already in the store", fingerprint)
        _adopt_original(store.root / fingerprint, paths, fingerprint)
        store.join(fingerprint)
        return _add_aliases(store, fingerprint, aliases, report)
    store.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _staging(store.root) as build:
        report(at("extract", 0.0, "Unpacking the image"))
        meta = _unpack(paths, build, limits)
        report(at("finalize", 0.0, "Checking the rootfs"))
        stats = check_tree(build / "rootfs", limits=limits)
        data = build_store_metadata(meta, size=stats.size, aliases=aliases)
        data[ORIGINAL_KEY] = keep_original(paths, build, fingerprint)
        write_metadata(build, data)
        os.chmod(build, 0o700)
        _publish(build, store.root / fingerprint)
    return _add_aliases(store, fingerprint, aliases, report)


def original_names(paths: Sequence[Path], fingerprint: str) -> list[str]:
    """The names LXD's imageExportFiles gives an image's files: <fp><ext> for a unified
    image, meta-<fp><ext> and <fp><ext> for a split one (ext from the file's magic)."""
    names = [f"{fingerprint}{_extension(path)}" for path in paths]
    if len(names) == 2:
        names[0] = f"meta-{names[0]}"
    return names


def _extension(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(262)
    if head.startswith(SQUASHFS_MAGIC):
        return ".squashfs"
    kind = detect_compression(head)
    if kind in _EXTENSIONS:
        return _EXTENSIONS[kind]
    return ".tar" if head[257:262] == b"ustar" else ""


def keep_original(paths: Sequence[Path], image_dir: Path, fingerprint: str) -> list[str]:
    """Hard-link (or copy, across filesystems) the image files into image_dir/original/;
    their names, in fingerprint order."""
    names = original_names(paths, fingerprint)
    target = image_dir / ORIGINAL_DIR
    target.mkdir(mode=0o700)
    for path, name in zip(paths, names, strict=True):
        try:
            os.link(path, target / name)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copyfile(path, target / name)
        os.chmod(target / name, 0o600)
    return names


def _adopt_original(image_dir: Path, paths: Sequence[Path], fingerprint: str) -> None:
    """Keep the files of an image stored before originals were (they hash the same)."""
    data = read_metadata(image_dir)
    if data.get(ORIGINAL_KEY) or (image_dir / ORIGINAL_DIR).exists():
        return
    data[ORIGINAL_KEY] = keep_original(paths, image_dir, fingerprint)
    write_metadata(image_dir, data)


def original_files(image: ImageInfo) -> list[Path] | None:
    """The kept original files of an imported or downloaded image, in fingerprint order;
    None for an image built here (or one whose originals are gone)."""
    try:
        names = read_metadata(image.path).get(ORIGINAL_KEY)
    except (OSError, InvalidConfig):
        return None
    if not isinstance(names, list) or len(names) not in (1, 2):
        return None
    files = [image.path / ORIGINAL_DIR / str(name) for name in names]
    if any("/" in str(name) or not f.is_file() for name, f in zip(names, files, strict=True)):
        return None
    return files


def _check_fingerprint(actual: str, expected: str | None) -> None:
    if expected is None:
        return
    if not _FP_RE.match(expected.lower()):
        raise InvalidConfig(f"Expected fingerprint '{expected}' is not a sha256 hex digest")
    if actual != expected.lower():
        raise InvalidConfig(f"Image fingerprint mismatch: expected '{expected}', got '{actual}'")


def _check_aliases(store: ImageStore, fingerprint: str, aliases: list[str]) -> None:
    for image in store.list():
        taken = [a for a in aliases if a in image.aliases]
        if taken and image.fingerprint != fingerprint:
            raise Conflict(f"Alias '{taken[0]}' already points to image "
                           f"'{image.fingerprint[:12]}'")


def _add_aliases(store: ImageStore, fingerprint: str, aliases: list[str],
                 report: ProgressCallback) -> ImageInfo:
    for alias in aliases:
        store.add_alias(fingerprint, alias)
    report(at("done", 1.0, f"Image {fingerprint[:12]} ready"))
    return store.get(fingerprint)


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A fresh root/.import-XXXX, removed unless it was renamed into the store."""
    build = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    try:
        yield build
    finally:
        if build.exists():
            shutil.rmtree(build)


def _publish(build: Path, final: Path) -> None:
    try:
        os.rename(build, final)
    except OSError as err:  # a concurrent import of the same image won the race
        if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        log.info("Image %s appeared while importing it; keeping the first", final.name)


def _unpack(paths: list[Path], build: Path, limits: Limits | None) -> LxdMetadata:
    """metadata, rootfs/ and templates/ from the image files into build."""
    unpack = build / ".unpack"
    extract_archive(paths[0], unpack, limits=limits)
    meta = parse_metadata(_read_metadata_file(unpack))
    _move_dir(unpack, "templates", build, required=False)
    if len(paths) == 1:
        _move_dir(unpack, "rootfs", build, required=True)
    else:
        unpack_rootfs(paths[1], build / "rootfs", limits=limits)
    shutil.rmtree(unpack)
    _check_templates(build / "templates", meta)
    return meta


def _read_metadata_file(directory: Path) -> bytes:
    try:
        fd = os.open(directory / METADATA, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidConfig("Image has no metadata.yaml") from None
    except OSError as err:
        raise InvalidConfig(f"Image metadata.yaml is not a regular file: {err.strerror}"
                            ) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise InvalidConfig("Image metadata.yaml is not a regular file")
        return f.read(MAX_LXD_METADATA_BYTES + 1)


def _move_dir(src: Path, name: str, dest: Path, *, required: bool) -> None:
    try:
        mode = os.lstat(src / name).st_mode
    except FileNotFoundError:
        if required:
            raise InvalidConfig(f"Image has no {name}/ directory") from None
        return
    if stat.S_ISLNK(mode):
        raise InvalidConfig(f"Image {name} is a symlink, not a directory")
    if not stat.S_ISDIR(mode):
        raise InvalidConfig(f"Image {name} is not a directory")
    os.rename(src / name, dest / name)


def _check_templates(tdir: Path, meta: LxdMetadata) -> None:
    """templates/ holds regular files only, and every declared template is there."""
    present = set()
    if tdir.is_dir():
        with os.scandir(tdir) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    raise InvalidConfig(f"Image template '{entry.name}' is not a regular file")
                present.add(entry.name)
    for path, spec in meta.templates.items():
        if spec.template not in present:
            raise InvalidConfig(f"Image template '{spec.template}' for '{path}' is missing "
                                "from templates/")


def unpack_rootfs(src: Path, dest: Path, *, limits: Limits | None = None) -> None:
    """A split image's rootfs (squashfs or tarball of the rootfs contents) into a new dest."""
    with open(src, "rb") as f:
        head = f.read(4)
    if head == SQUASHFS_MAGIC:
        unsquash(src, dest, limits=limits)
    else:
        extract_archive(src, dest, limits=limits)


def unsquash(src: Path, dest: Path, *, limits: Limits | None = None) -> None:
    """unsquashfs src into dest (must not exist), refusing devices and oversize first."""
    check_squashfs_listing(src, limits or Limits())
    try:
        commands.run(["unsquashfs", "-n", "-d", str(dest), str(src)])
    except CommandError as err:
        raise InvalidConfig(f"Cannot unpack squashfs '{src.name}': {err}") from err
    check_tree(dest, limits=limits)


def check_squashfs_listing(src: Path, limits: Limits) -> None:
    """Stream `unsquashfs -lln`: entry count, regular-file bytes and types, before writing."""
    argv = ["unsquashfs", "-lln", str(src)]
    log.debug("run: %s", " ".join(argv))
    entries = size = 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            for line in proc.stdout or ():
                entries, size = _count_listing_line(line, entries, size, src, limits)
        finally:
            if proc.poll() is None:
                proc.kill()
            _, stderr = proc.communicate()
    if proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise InvalidConfig(f"Squashfs '{src.name}' is not valid: {tail[0]}")


def _count_listing_line(line: bytes, entries: int, size: int, src: Path,
                        limits: Limits) -> tuple[int, int]:
    match = _LISTING_RE.match(line)
    name = line.rstrip(b"\n").decode(errors="replace").split(" ")[-1]
    if match is None:  # also a name with a newline in it: refused rather than guessed
        raise InvalidConfig(f"Squashfs '{src.name}': cannot parse listing line {line[:80]!r}")
    kind, length = match.group(1), match.group(2)
    if kind not in b"-dl":
        raise InvalidConfig(f"Refusing squashfs '{src.name}': '{name}' is not a regular file, "
                            "directory or symlink")
    entries += 1
    size += int(length) if kind == b"-" else 0
    if entries > limits.max_entries or size > limits.max_bytes:
        raise InvalidConfig(f"Refusing squashfs '{src.name}': it expands past "
                            f"{limits.max_entries} entries or {limits.max_bytes} bytes")
    return entries, size


def export_image(image: ImageInfo, dest_dir: Path, *, compression: str | None = None) -> Path:
    """Write a unified LXD tarball of image into dest_dir, named <LXD fingerprint><suffix>.

    The file name's stem is the fingerprint LXD computes (lxd_fingerprint([path])).
    Device nodes, fifos and sockets in the rootfs are left out (LXD images carry none).
    compression None: the one recorded for the image at publish time, else gzip.
    """
    data = read_metadata(image.path)
    compression = compression or str(data.get(COMPRESSION_KEY) or "gzip")
    trees = [("rootfs/", image.rootfs)]
    if (image.path / "templates").is_dir():
        trees.append(("templates/", image.path / "templates"))
    return _write_named(dest_dir, "", suffix_for(compression), lambda out: write_archive(
        out, trees, files={METADATA: render_metadata(data)}, compression=compression,
        mtime=int(data.get("created_at", 0))))


def export_split(image: ImageInfo, dest_dir: Path, *, compression: str = "gzip"
                 ) -> tuple[Path, Path]:
    """Write a split LXD image: (meta-<fp>.tar.gz, <fp>.squashfs) with fp = sha256(both)."""
    data = read_metadata(image.path)
    trees = ([("templates/", image.path / "templates")]
             if (image.path / "templates").is_dir() else [])
    meta = _write_named(dest_dir, "meta-", suffix_for(compression), lambda out: write_archive(
        out, trees, files={METADATA: render_metadata(data)}, compression=compression,
        mtime=int(data.get("created_at", 0))))
    rootfs = _write_named(dest_dir, "", ".squashfs",
                          lambda out: _mksquashfs(image.rootfs, out, int(data["created_at"])))
    fingerprint = lxd_fingerprint([meta, rootfs])
    final_meta = meta.with_name(f"meta-{fingerprint}{suffix_for(compression)}")
    final_rootfs = rootfs.with_name(f"{fingerprint}.squashfs")
    os.replace(meta, final_meta)
    os.replace(rootfs, final_rootfs)
    return final_meta, final_rootfs


def _write_named(dest_dir: Path, prefix: str, suffix: str,
                 write: Callable[[Path], str | None]) -> Path:
    """Write to a temp file in dest_dir (write may return its sha256), then rename it to
    prefix + <sha256> + suffix."""
    fd, tmp = tempfile.mkstemp(prefix=".export-", dir=dest_dir)
    os.close(fd)
    os.unlink(tmp)
    try:
        digest = write(Path(tmp)) or lxd_fingerprint([Path(tmp)])
        final = dest_dir / f"{prefix}{digest}{suffix}"
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return final


def _mksquashfs(rootfs: Path, out: Path, mkfs_time: int) -> None:
    """mksquashfs rootfs, leaving out what an LXD image must not carry (devices, fifos)."""
    with tempfile.NamedTemporaryFile("w", prefix=".exclude-", dir=out.parent) as exclude:
        exclude.write("".join(f"{p}\n" for p in _special_files(rootfs)))
        exclude.flush()
        commands.run(["mksquashfs", str(rootfs), str(out), "-noappend", "-no-progress",
                      "-quiet", "-comp", "xz", "-mkfs-time", str(mkfs_time),
                      "-ef", exclude.name])


def _special_files(root: Path) -> list[str]:
    """Paths (relative to root) of everything not a regular file, directory or symlink."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return found
