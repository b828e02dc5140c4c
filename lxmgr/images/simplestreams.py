"""PURE simplestreams parsing: index.json -> product files, a products file -> StreamImages
(newest container image of each product, with LXD's aliases), and alias/fingerprint lookup.

Imports only lxmgr.errors and the stdlib: no I/O (fetching is lxmgr.images.download). Follows
LXD's `shared/simplestreams` (products.go `ToLXD`, `applyAliases`): an image is an
`lxd.tar.xz` metadata item plus a `squashfs` or `root.tar.xz` rootfs item of the same version
(or one unified `lxd_combined.tar.gz`), and its fingerprint is the combined sha256 the metadata
item announces. Server data is never trusted: every field we use is type-checked, paths must
be relative without `..`, hashes are hex, sizes positive ints; a bad one is InvalidConfig
naming the field. Products we cannot use (foreign architecture names, VM-only, version names
that are not dates) are skipped, as LXD does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from lxmgr.errors import InvalidConfig, NotFound

DATATYPE = "image-downloads"
META_TYPES = ("lxd.tar.xz",)
UNIFIED_TYPES = ("lxd_combined.tar.gz",)
ROOTFS_TYPES = ("squashfs", "root.tar.xz")  # our preference order, as LXD for containers
# Which combined-fingerprint field of the metadata item goes with each rootfs type.
COMBINED_FIELDS = {
    "squashfs": ("combined_squashfs_sha256",),
    "root.tar.xz": ("combined_rootxz_sha256", "combined_sha256"),
}
# LXD's architecture names (shared/osarch) for the names image servers use.
ARCHITECTURES = {
    "amd64": "x86_64", "x86_64": "x86_64",
    "arm64": "aarch64", "aarch64": "aarch64",
    "armhf": "armv7l", "armel": "armv7l", "armv7l": "armv7l",
    "i386": "i686", "i686": "i686",
    "ppc64el": "ppc64le", "ppc64le": "ppc64le",
    "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loongarch64",
}
# As LXD's urlDefaultOS: on this server "ubuntu/22.04" is spelled "22.04".
DEFAULT_OS = {"https://cloud-images.ubuntu.com": "ubuntu"}
MAX_FILE_SIZE = 64 * 1024**3
MIN_PREFIX = 12  # shortest fingerprint prefix accepted, so "12" is never a fingerprint
_SERIAL_FORMATS = ("%Y%m%d_%H:%M", "%Y%m%d_%H%M", "%Y%m%d")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_PATH_RE = re.compile(r"^[A-Za-z0-9._:+~-][A-Za-z0-9._:/+~-]{0,1023}$")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+/-]{0,127}$")
_TEXT_MAX = 256


@dataclass(frozen=True)
class StreamFile:
    """One file of an image on the server: path relative to the remote URL."""

    path: str
    sha256: str
    size: int
    ftype: str


@dataclass(frozen=True)
class StreamImage:
    """The newest container image of one product. files: metadata first, then the rootfs
    (one file for a unified image); fingerprint is their combined sha256."""

    fingerprint: str
    product: str
    architecture: str  # LXD's name: x86_64, aarch64...
    product_arch: str  # the server's name: amd64, arm64...
    os: str
    release: str
    release_title: str
    version: str
    serial: str
    variant: str
    description: str
    created_at: int
    files: tuple[StreamFile, ...]
    aliases: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def rootfs_type(self) -> str:
        """'squashfs', 'root.tar.xz', or 'unified'."""
        return self.files[1].ftype if len(self.files) > 1 else "unified"


def normalize_architecture(name: str) -> str:
    """LXD's name for an architecture ('amd64' -> 'x86_64'); InvalidConfig if unknown."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise InvalidConfig(f"Unknown architecture '{name}'") from None


def default_os_for(url: str) -> str:
    """The OS whose name the remote leaves out of aliases ('' for most)."""
    return next((os_ for prefix, os_ in DEFAULT_OS.items() if url.startswith(prefix)), "")


def parse_index(data: Any) -> list[str]:
    """Paths of the products files with image downloads listed in an index.json."""
    index = _mapping(_mapping(data, "index.json").get("index"), "index.json: index")
    paths = []
    for key, entry in index.items():
        where = f"index.json: index[{_show(key)}]"
        entry = _mapping(entry, where)
        if entry.get("datatype") != DATATYPE or not entry.get("products"):
            continue
        paths.append(_path(entry.get("path"), f"{where}.path"))
    return paths


def parse_products(data: Any, *, default_os: str = "",
                   rootfs_preference: Iterable[str] = ROOTFS_TYPES) -> list[StreamImage]:
    """The newest usable container image of each product, aliases assigned (see module doc)."""
    return assign_aliases(parse_product_candidates(data, default_os=default_os,
                                                   rootfs_preference=rootfs_preference))


def parse_product_candidates(data: Any, *, default_os: str = "",
                             rootfs_preference: Iterable[str] = ROOTFS_TYPES,
                             ) -> list[tuple[StreamImage, list[tuple[str, int]]]]:
    """Images of a products file with the aliases they claim, before assign_aliases (to
    merge several products files of one remote)."""
    products = _mapping(_mapping(data, "products file").get("products"), "products")
    preference = tuple(rootfs_preference)
    found = []
    for product_id, raw in products.items():
        where = f"products[{_show(product_id)}]"
        product = _mapping(raw, where)
        image = _parse_product(str(product_id), product, where, preference)
        if image is not None:
            found.append((image, _candidate_aliases(product, image, default_os, where)))
    return found


def _parse_product(product_id: str, product: Mapping[str, Any], where: str,
                   preference: tuple[str, ...]) -> StreamImage | None:
    arch = _text(product, "arch", where)
    if arch not in ARCHITECTURES:
        return None
    versions = _mapping(product.get("versions", {}), f"{where}.versions")
    for serial, created in _serials_newest_first(versions):
        vwhere = f"{where}.versions[{_show(serial)}]"
        version = _mapping(versions[serial], vwhere)
        items = _mapping(version.get("items", {}), f"{vwhere}.items")
        picked = _pick_files(items, f"{vwhere}.items", preference)
        if picked is None:
            continue
        fingerprint, files = picked
        label = _text(version, "label", vwhere, required=False)
        return _image(product_id, product, where, arch, serial, created, label,
                      fingerprint, files)
    return None


def _image(product_id: str, product: Mapping[str, Any], where: str, arch: str, serial: str,
           created: int, label: str, fingerprint: str,
           files: tuple[StreamFile, ...]) -> StreamImage:
    os_ = _text(product, "os", where)
    title = _text(product, "release_title", where, required=False)
    description = f"{os_} {title} {arch}" + (f" ({label})" if label else "") + f" ({serial})"
    return StreamImage(
        fingerprint=fingerprint, product=product_id, architecture=ARCHITECTURES[arch],
        product_arch=arch, os=os_, release=_text(product, "release", where),
        release_title=title, version=_text(product, "version", where, required=False),
        serial=serial, variant=_text(product, "variant", where, required=False),
        description=description, created_at=created, files=files)


def _serials_newest_first(versions: Mapping[str, Any]) -> list[tuple[str, int]]:
    dated = [(serial, created) for serial in versions
             if (created := parse_serial(serial)) is not None]
    return sorted(dated, key=lambda sc: (sc[1], sc[0]), reverse=True)


def parse_serial(serial: Any) -> int | None:
    """Creation time (UTC epoch) from a version name like 20240423 or 20240601_05:24."""
    if not isinstance(serial, str) or len(serial) < 8:
        return None
    for fmt, text in ((_SERIAL_FORMATS[0], serial), (_SERIAL_FORMATS[1], serial),
                      (_SERIAL_FORMATS[2], serial[:8])):
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return int(moment.replace(tzinfo=UTC).timestamp())
    return None


def _pick_files(items: Mapping[str, Any], where: str,
                preference: tuple[str, ...]) -> tuple[str, tuple[StreamFile, ...]] | None:
    """(fingerprint, files) of the preferred container image in a version, or None."""
    by_type: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for key, item in items.items():
        item = _mapping(item, f"{where}[{_show(key)}]")
        ftype = item.get("ftype")
        if isinstance(ftype, str) and ftype not in by_type:
            by_type[ftype] = (f"{where}[{_show(key)}]", item)
    meta = next((by_type[t] for t in META_TYPES if t in by_type), None)
    if meta is not None:
        for rootfs_type in preference:
            # A rootfs the metadata item has no combined hash for is unusable, not hostile
            # (LXD skips it too): try the next type.
            if rootfs_type in by_type and any(meta[1].get(f) for f in COMBINED_FIELDS[rootfs_type]):
                return _split_image(meta, by_type[rootfs_type], rootfs_type)
    unified = next((by_type[t] for t in UNIFIED_TYPES if t in by_type), None)
    if unified is not None:
        file = _file(*unified)
        return file.sha256, (file,)
    return None


def _split_image(meta: tuple[str, Mapping[str, Any]], root: tuple[str, Mapping[str, Any]],
                 rootfs_type: str) -> tuple[str, tuple[StreamFile, ...]]:
    meta_where, meta_item = meta
    field = next(f for f in COMBINED_FIELDS[rootfs_type] if meta_item.get(f))
    fingerprint = _sha256(meta_item.get(field), f"{meta_where}.{field}")
    return fingerprint, (_file(*meta), _file(*root))


def _file(where: str, item: Mapping[str, Any]) -> StreamFile:
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_FILE_SIZE:
        raise InvalidConfig(f"Invalid simplestreams data: {where}.size: expected a positive "
                            f"integer up to {MAX_FILE_SIZE}")
    return StreamFile(path=_path(item.get("path"), f"{where}.path"),
                      sha256=_sha256(item.get("sha256"), f"{where}.sha256"),
                      size=size, ftype=str(item["ftype"]))


def _candidate_aliases(product: Mapping[str, Any], image: StreamImage, default_os: str,
                       where: str) -> list[tuple[str, int]]:
    """(alias, priority): the product's own aliases (0) before the ones we generate (1)."""
    raw = product.get("aliases", "")
    if not isinstance(raw, str):
        raise InvalidConfig(f"Invalid simplestreams data: {where}.aliases: expected a string")
    explicit = [a.strip() for a in raw.split(",") if a.strip()]
    if default_os:
        explicit = [a.removeprefix(f"{default_os}/") for a in explicit]
    for alias in explicit:
        if not _ALIAS_RE.match(alias) or ".." in alias:
            raise InvalidConfig(f"Invalid simplestreams data: {where}.aliases: "
                                f"invalid alias {_show(alias)}")
    return [(a, 0) for a in explicit] + [(a, 1) for a in generated_aliases(image)]


def generated_aliases(image: StreamImage) -> list[str]:
    """Aliases a user expects even when the server omits them: ubuntu's '24.04', 'noble' and
    'lts'; elsewhere 'debian/bookworm' and 'debian/12' (+ '/variant' unless default)."""
    os_ = image.os.lower()
    names = [n for n in (image.version, image.release) if _ALIAS_RE.match(n or "-")]
    if os_ == "ubuntu":
        return names + (["lts"] if "LTS" in image.release_title else [])
    suffix = f"/{image.variant}" if image.variant not in ("", "default") else ""
    return [f"{os_}/{n}{suffix}" for n in names if _ALIAS_RE.match(f"{os_}/{n}{suffix}")]


def assign_aliases(found: Iterable[tuple[StreamImage, list[tuple[str, int]]]]
                   ) -> list[StreamImage]:
    """Give each (alias, architecture) to one image: the product's own claim before a
    generated one, then the newer release, then the newer build. Every alias an image keeps
    also gets an '/<server arch>' form ('debian/12/amd64'), as LXD's medium aliases."""
    found = list(found)
    owner: dict[tuple[str, str], tuple[tuple[Any, ...], str]] = {}
    for image, candidates in found:
        for alias, priority in candidates:
            rank = (priority, _negated(_release_key(image)), -image.created_at, image.product)
            key = (alias, image.architecture)
            if key not in owner or rank < owner[key][0]:
                owner[key] = (rank, image.product)
    result = []
    for image, candidates in found:
        won = list(dict.fromkeys(a for a, _ in candidates
                                 if owner[(a, image.architecture)][1] == image.product))
        medium = [f"{a}/{image.product_arch}" for a in won
                  if not a.endswith(f"/{image.product_arch}")]
        result.append(replace(image, aliases=tuple(dict.fromkeys(won + medium))))
    return sorted(result, key=lambda i: (i.os.lower(), _negated(_release_key(i)), i.product))


def _release_key(image: StreamImage) -> tuple[int, ...]:
    for text in (image.version, image.release):
        if text and re.fullmatch(r"\d+(\.\d+)*", text):
            return tuple(int(p) for p in text.split("."))
    return ()


def _negated(key: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-k for k in key) + (1,)  # (1,) sorts an unversioned release after any number


def find_image(images: Iterable[StreamImage], name: str, arch: str) -> StreamImage:
    """The image an alias names for architecture arch (LXD's name), or the one whose
    fingerprint starts with name; an alias ending in '/<server arch>' picks that arch."""
    images = list(images)
    matches = [i for i in images if name in i.aliases]
    for image in matches:
        if image.architecture == arch:
            return image
    for image in matches:
        if name.endswith(f"/{image.product_arch}"):
            return image
    if len(name) >= MIN_PREFIX and _HEX_RE.match(name):
        by_fp = [i for i in images if i.fingerprint.startswith(name)]
        if len(by_fp) > 1:
            raise InvalidConfig(f"More than one image matches the fingerprint prefix '{name}'")
        if by_fp:
            return by_fp[0]
    if matches:
        archs = ", ".join(sorted({i.architecture for i in matches}))
        raise NotFound(f"Image '{name}' not found for architecture {arch} (only {archs})")
    raise NotFound(f"Image '{name}' not found")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidConfig(f"Invalid simplestreams data: {where}: expected an object")
    return value


def _text(data: Mapping[str, Any], field: str, where: str, *, required: bool = True) -> str:
    value = data.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > _TEXT_MAX or not value.isprintable() \
            or (required and not value):
        raise InvalidConfig(f"Invalid simplestreams data: {where}.{field}: expected a "
                            f"printable string of at most {_TEXT_MAX} characters")
    return value


def _path(value: Any, where: str) -> str:
    """A path relative to the remote's URL: no leading '/', no '.' or '..' segment."""
    if not isinstance(value, str) or not _PATH_RE.match(value) \
            or any(seg in ("", ".", "..") for seg in value.split("/")):
        raise InvalidConfig(f"Invalid simplestreams data: {where}: {_show(value)} is not a "
                            "safe relative path")
    return value


def _sha256(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SHA_RE.match(value.lower()):
        raise InvalidConfig(f"Invalid simplestreams data: {where}: expected 64 hex digits")
    return value.lower()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
