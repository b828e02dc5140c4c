"""The local image store: images_dir()/<fingerprint>/{rootfs/, metadata.yaml}.

Imports lxmgr.errors, lxmgr.paths and lxmgr.model.remote (the message for a name no image
has). Aliases live in each image's metadata.yaml (one owner per alias); metadata is written
atomically (temp file + rename) and read size-capped with yaml.safe_load. Directories
starting with '.' (builds in progress) are not images.

Images belong to projects (LXD's features.images): an image's metadata lists its projects
(`projects`, absent: `default` alone) and the aliases of each (`aliases` are default's,
`project_aliases` the others'). One tree serves every project that has the image. Which
project a call sees is the PROJECT context variable (set per request by the daemon; the
tasks and threads a request starts inherit it), or an explicit `project=` (ALL: every image).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lxmgr import paths
from lxmgr.errors import Conflict, InvalidConfig, NotFound
from lxmgr.model.remote import missing_stored_image_message

DEFAULT_PROJECT = "default"
ALL = "*"  # list()/get() across every project (an instance's image, by fingerprint)
# The project whose images calls see when they name none (the owner of the images of the
# request's project: lxmgr.model.project.owner).
PROJECT: ContextVar[str] = ContextVar("image_project", default=DEFAULT_PROJECT)
PROJECTS_KEY = "projects"
PROJECT_ALIASES_KEY = "project_aliases"
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


def members(data: dict[str, Any]) -> list[str]:
    """The projects an image's metadata says it belongs to."""
    found = data.get(PROJECTS_KEY)
    if isinstance(found, list) and found:
        return [str(p) for p in found]
    return [DEFAULT_PROJECT]


def aliases_in(data: dict[str, Any], project: str) -> list[str]:
    """An image's aliases in one project."""
    if project in (DEFAULT_PROJECT, ALL):
        found = data.get("aliases")
    else:
        by_project = data.get(PROJECT_ALIASES_KEY)
        found = by_project.get(project) if isinstance(by_project, dict) else None
    return [str(a) for a in found] if isinstance(found, list) else []


def write_metadata(image_path: Path, data: dict[str, Any]) -> None:
    """Replace metadata.yaml atomically. Metadata naming no project, written for another
    project than default, is a new image of that project."""
    project = PROJECT.get()
    if PROJECTS_KEY not in data and project != DEFAULT_PROJECT:
        data = {**data, PROJECTS_KEY: [project]}
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


def info_from_metadata(fingerprint: str, image_path: Path, data: dict[str, Any],
                       project: str | None = None) -> ImageInfo:
    """Build an ImageInfo (with the aliases of `project`, default the current one),
    tolerating missing optional fields."""
    props = data.get("properties") or {}
    aliases = aliases_in(data, project or PROJECT.get())
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

    def list(self, project: str | None = None) -> list[ImageInfo]:
        """Every image of the project (default: the current one; ALL: of any) with
        readable metadata, oldest first."""
        wanted = project or PROJECT.get()
        images = [self._load(entry, wanted) for entry in self._entries()]
        return sorted((i for i in images if i is not None), key=lambda i: i.created_at)

    def get(self, ref: str, project: str | None = None) -> ImageInfo:
        """Resolve a full fingerprint, an alias, or a unique fingerprint prefix among the
        images of the project (as list())."""
        images = self.list(project)
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
        """The newest image built from a recipe with that sha256, if any; one another
        project has joins the current project (the tree is shared)."""
        found = [i for i in self.list(ALL) if i.recipe_sha256 == recipe_sha256]
        return self.join(found[-1].fingerprint) if found else None

    def join(self, fingerprint: str) -> ImageInfo:
        """Make a stored image one of the current project's too (idempotent)."""
        path = self.root / fingerprint
        data = read_metadata(path)
        project = PROJECT.get()
        if project not in members(data):
            write_metadata(path, {**data, PROJECTS_KEY: [*members(data), project]})
        return self.get(fingerprint)

    def shared(self, fingerprint: str) -> bool:
        """Whether another project than the current one has the image too."""
        return members(read_metadata(self.root / fingerprint)) != [PROJECT.get()]

    def delete(self, fingerprint: str) -> None:
        """Remove an image from the current project: its aliases there, and the image
        itself (rootfs and metadata) when no other project has it. The caller checks that
        no instance uses it then."""
        image = self.get(fingerprint)
        if image.fingerprint != fingerprint:
            raise InvalidConfig(f"Delete needs the full fingerprint, not '{fingerprint}'")
        data = read_metadata(image.path)
        project = PROJECT.get()
        others = [p for p in members(data) if p != project]
        if others:
            self._set_aliases(image, [])
            write_metadata(image.path, {**read_metadata(image.path), PROJECTS_KEY: others})
            return
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

    def alias_target(self, alias: str) -> ImageInfo:
        """The image alias points to (an alias only, never a fingerprint); NotFound else."""
        for image in self.list():
            if alias in image.aliases:
                return image
        raise NotFound(f"Image alias '{alias}' not found")

    def rename_alias(self, alias: str, new: str) -> None:
        """Give alias a new name on the same image; Conflict if an alias has that name."""
        image = self.alias_target(alias)
        if any(new in other.aliases for other in self.list()):
            raise Conflict(f"Alias '{new}' already exists")
        self._set_aliases(image, [new if a == alias else a for a in image.aliases])

    def _set_aliases(self, image: ImageInfo, aliases: Iterable[str]) -> None:
        """Set the image's aliases in the current project."""
        data = read_metadata(image.path)
        project = PROJECT.get()
        if project == DEFAULT_PROJECT:
            data["aliases"] = list(aliases)
        else:
            by_project = data.get(PROJECT_ALIASES_KEY)
            by_project = dict(by_project) if isinstance(by_project, dict) else {}
            by_project[project] = list(aliases)
            data[PROJECT_ALIASES_KEY] = {k: v for k, v in by_project.items() if v}
        write_metadata(image.path, data)

    def _entries(self) -> list[Path]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return [self.root / n for n in sorted(names) if _FP_RE.match(n)]

    def _load(self, entry: Path, project: str) -> ImageInfo | None:
        """The image at entry if it is one of project's (any: ALL)."""
        try:
            data = read_metadata(entry)
            if project != ALL and project not in members(data):
                return None
            return info_from_metadata(entry.name, entry, data, project)
        except (OSError, InvalidConfig, ValueError, TypeError):
            return None  # a broken entry must not hide the others
