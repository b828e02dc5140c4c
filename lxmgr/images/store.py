"""The local image store: images_dir()/<fingerprint>/{rootfs/, metadata.yaml}.

Imports lxmgr.errors, lxmgr.paths and lxmgr.model.remote (the message for a name no image
has). Aliases live in each image's metadata.yaml (one owner per alias); metadata is written
atomically (temp file + rename) and read size-capped with yaml.safe_load. Directories
starting with '.' (builds in progress) are not images.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotFound
from lxmgr.model.remote import missing_stored_image_message

METADATA = "metadata.yaml"
MAX_METADATA_BYTES = 64 * 1024
_FP_RE = re.compile(r"^[0-9a-f]{64}$")
_PREFIX_RE = re.compile(r"^[0-9a-f]{1,64}$")


@dataclass(frozen=True)
class ImageInfo:
    """One stored image. size is the byte total of regular files in rootfs at build time."""

    fingerprint: str
    path: Path
    rootfs: Path
    architecture: str
    os: str
    release: str
    created_at: int
    aliases: tuple[str, ...]
    size: int
    recipe_sha256: str = ""
    description: str = ""


def read_metadata(image_path: Path) -> dict[str, Any]:
    """metadata.yaml of an image directory as a dict; InvalidConfig if oversized or malformed."""
    path = image_path / METADATA
    with open(path, "rb") as f:
        raw = f.read(MAX_METADATA_BYTES + 1)
    if len(raw) > MAX_METADATA_BYTES:
        raise InvalidConfig(f"Image metadata '{path}' is larger than {MAX_METADATA_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise InvalidConfig(f"Image metadata '{path}' is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise InvalidConfig(f"Image metadata '{path}' is not a mapping")
    return data


def write_metadata(image_path: Path, data: dict[str, Any]) -> None:
    """Replace metadata.yaml atomically."""
    fd, tmp = tempfile.mkstemp(prefix=".metadata-", dir=image_path)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(data, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, image_path / METADATA)
    except BaseException:
        os.unlink(tmp)
        raise


def info_from_metadata(fingerprint: str, image_path: Path, data: dict[str, Any]) -> ImageInfo:
    """Build an ImageInfo, tolerating missing optional fields."""
    props = data.get("properties") or {}
    aliases = data.get("aliases") or []
    return ImageInfo(
        fingerprint=fingerprint, path=image_path, rootfs=image_path / "rootfs",
        architecture=str(data.get("architecture", "")), os=str(data.get("os", "")),
        release=str(data.get("release", "")), created_at=int(data.get("created_at", 0)),
        aliases=tuple(str(a) for a in aliases), size=int(data.get("size", 0)),
        recipe_sha256=str(data.get("recipe_sha256", "")),
        description=str(props.get("description", "")) if isinstance(props, dict) else "",
    )


def image_names(images: list[ImageInfo]) -> list[str]:
    """How messages list images: their aliases, or a short fingerprint for one without."""
    return [name for i in images for name in (i.aliases or [i.fingerprint[:12]])]


class ImageStore:
    """Images under a directory (default paths.images_dir(), read at call time)."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else paths.images_dir()

    def list(self) -> list[ImageInfo]:
        """Every image with readable metadata, oldest first."""
        images = [self._load(entry) for entry in self._entries()]
        return sorted((i for i in images if i is not None), key=lambda i: i.created_at)

    def get(self, ref: str) -> ImageInfo:
        """Resolve a full fingerprint, an alias, or a unique fingerprint prefix."""
        images = self.list()
        for match in (lambda i: i.fingerprint == ref, lambda i: ref in i.aliases):
            found = [i for i in images if match(i)]
            if found:
                return found[0]
        if _PREFIX_RE.match(ref):
            found = [i for i in images if i.fingerprint.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise Conflict(f"Image prefix '{ref}' is ambiguous ({len(found)} images match)")
        raise NotFound(missing_stored_image_message(ref, image_names(images)))

    def find_by_recipe(self, recipe_sha256: str) -> ImageInfo | None:
        """The newest image built from a recipe with that sha256, if any."""
        found = [i for i in self.list() if i.recipe_sha256 == recipe_sha256]
        return found[-1] if found else None

    def delete(self, fingerprint: str) -> None:
        """Remove an image (rootfs and metadata). The caller checks that no instance uses it."""
        image = self.get(fingerprint)
        if image.fingerprint != fingerprint:
            raise InvalidConfig(f"Delete needs the full fingerprint, not '{fingerprint}'")
        doomed = self.root / f".delete-{fingerprint}"
        os.rename(image.path, doomed)  # atomic: the image vanishes from list() at once
        shutil.rmtree(doomed)

    def add_alias(self, ref: str, alias: str, *, take_over: bool = False) -> None:
        """Point alias at an image; Conflict if another image owns it (unless take_over)."""
        image = self.get(ref)
        for other in self.list():
            if other.fingerprint != image.fingerprint and alias in other.aliases:
                if not take_over:
                    raise Conflict(f"Alias '{alias}' already points to image "
                                   f"'{other.fingerprint[:12]}'")
                self._set_aliases(other, [a for a in other.aliases if a != alias])
        if alias not in image.aliases:
            self._set_aliases(image, [*image.aliases, alias])

    def remove_alias(self, alias: str) -> None:
        """Drop alias from the image that owns it; NotFound if none does."""
        for image in self.list():
            if alias in image.aliases:
                self._set_aliases(image, [a for a in image.aliases if a != alias])
                return
        raise NotFound(f"Image alias '{alias}' not found")

    def _set_aliases(self, image: ImageInfo, aliases: Iterable[str]) -> None:
        data = read_metadata(image.path)
        data["aliases"] = list(aliases)
        write_metadata(image.path, data)

    def _entries(self) -> list[Path]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return [self.root / n for n in sorted(names) if _FP_RE.match(n)]

    def _load(self, entry: Path) -> ImageInfo | None:
        try:
            return info_from_metadata(entry.name, entry, read_metadata(entry))
        except (OSError, InvalidConfig, ValueError, TypeError):
            return None  # a broken entry must not hide the others
