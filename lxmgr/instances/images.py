"""The engine's image service: the image store (lxmgr.images.store, which stays mute) plus
the lifecycle events of the changes made to it, and the image's API object (view()).

Every change a user can see is made by one method here (or by an engine step that calls
announce()), which emits LXD 5.0's event for it once, whoever asked: a route, an instance
create that pulls or builds its image, the hourly auto-update. As LXD's (lxd/images.go,
lxd/daemon_images.go, lxd/lifecycle/image.go and image_alias.go): image-created (with
context {"type": "container"}) when an image becomes one of the project's (upload, pull,
recipe build, publish, copy from another project; an image the project had already is no
change, so no event), image-updated (PUT/PATCH), image-deleted, image-refreshed (a newer
build replaced it: announced by lxmgr.instances.image_ops.refresh_image, the new build
having its own image-created; the build it replaced goes silently, as LXD's
autoUpdateImage deletes it), image-retrieved (export), image-secret-created, and
image-alias-created/updated/renamed/deleted (context: target, target, old_name, none).
Sources are /1.0/images/FP and /1.0/images/aliases/NAME in the request's project
(EventBus.changed). Aliases given with a new image belong to its image-created, as in
LXD's imagesPost. The empty base image of imported backups (Manager.empty_image) has no
event: LXD has no such image.

Synchronous (worker threads), except where the engine step is async (image_ops.pull_image).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lxmgr.api.operation import format_time
from lxmgr.errors import Conflict, InvalidConfig, InvalidState
from lxmgr.images.store import PROJECT as IMAGE_PROJECT
from lxmgr.images.store import ImageInfo, ImageStore
from lxmgr.instances import image_ops
from lxmgr.instances.events import EventBus

# The architecture names of LXD's API (Go's names are the store's: lxmgr.images.debootstrap)
ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64"}


def view(image: ImageInfo) -> dict[str, Any]:
    """LXD's Image object of a stored image, as the current project (the store's PROJECT)
    sees it: its aliases there, and the flags of its metadata. Reads the metadata."""
    created = format_time(datetime.fromtimestamp(image.created_at, UTC))
    data = image_ops.image_flags(image)
    return {
        "fingerprint": image.fingerprint, "filename": "", "size": image.size,
        "architecture": ARCHITECTURES.get(image.architecture, image.architecture),
        "type": "container", "public": data["public"], "cached": data["cached"],
        "auto_update": data["auto_update"],
        "properties": {"os": image.os, "release": image.release,
                       "description": image.description, **data["properties"]},
        "aliases": [{"name": a, "description": ""} for a in image.aliases],
        "created_at": created, "uploaded_at": created, "last_used_at": created,
        "expires_at": "1970-01-01T00:00:00Z", "profiles": ["default"],
        "project": IMAGE_PROJECT.get(),
        "update_source": data["update_source"],
    }


def alias_segment(name: str) -> str:
    """An alias as one URL path segment, escaped as Go's url.PathEscape (LXD's api.URL)."""
    return quote(name, safe="$&+=:@")


class Images:
    """The image service. store: the images; events: the bus; users(fingerprint): the
    instances made from an image (which keep it from being deleted)."""

    def __init__(self, store: ImageStore, events: EventBus,
                 users: Callable[[str], list[str]]) -> None:
        self.store = store
        self.events = events
        self._users = users

    # -- reads (the store's) ---------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.store.root

    def list(self, project: str | None = None) -> list[ImageInfo]:
        return self.store.list(project)

    def get(self, ref: str, project: str | None = None) -> ImageInfo:
        return self.store.get(ref, project)

    def shared(self, fingerprint: str) -> bool:
        return self.store.shared(fingerprint)

    def alias_target(self, alias: str) -> ImageInfo:
        return self.store.alias_target(alias)

    def fingerprints(self) -> set[str]:
        """The fingerprints of the current project's images (what announce_new compares)."""
        return {i.fingerprint for i in self.store.list()}

    # -- events ------------------------------------------------------------------------------

    def announce(self, action: str, fingerprint: str, **context: Any) -> None:
        """Emit an image-* lifecycle event of image fingerprint (source /1.0/images/FP)."""
        self.events.changed("images", action, fingerprint, **context)

    def announce_alias(self, action: str, name: str, **context: Any) -> None:
        """Emit an image-alias-* lifecycle event (source /1.0/images/aliases/NAME)."""
        self.events.changed("images/aliases", action, alias_segment(name), **context)

    def announce_new(self, fingerprint: str, known: set[str]) -> None:
        """image-created, unless the project had the image already (known: fingerprints())."""
        if fingerprint not in known:
            self.announce("image-created", fingerprint, type="container")

    def adding(self, make: Callable[[], ImageInfo]) -> ImageInfo:
        """Run an engine step that stores an image in the current project (or finds it
        there) and announce the image if it is new to the project."""
        known = self.fingerprints()
        image = make()
        self.announce_new(image.fingerprint, known)
        return image

    # -- changes -----------------------------------------------------------------------------

    def upload(self, files: Sequence[Path], *, aliases: Sequence[str] = (),
               flags: dict[str, Any] | None = None) -> ImageInfo:
        """Import an uploaded LXD image (lxmgr.images.lxdformat) with its aliases, then the
        upload's public/properties flags (image_ops.update_image changes)."""
        from lxmgr.images import lxdformat

        def make() -> ImageInfo:
            image = lxdformat.import_image(files, self.store, aliases=aliases)
            if flags and (flags.get("public") or flags.get("properties")):
                image_ops.update_image(image, flags, True)
            return image
        return self.adding(make)

    def copy_from(self, image: ImageInfo, aliases: Sequence[str] = ()) -> ImageInfo:
        """Another project's image joins the current one with aliases (no bytes move: one
        tree serves every project that has it)."""
        def make() -> ImageInfo:
            joined = self.store.join(image.fingerprint)
            for alias in aliases:
                self.store.add_alias(joined.fingerprint, alias)
            return self.store.get(joined.fingerprint)
        return self.adding(make)

    def update(self, image: ImageInfo, changes: dict[str, Any], merge: bool) -> None:
        """PUT (merge false) or PATCH: properties, public, auto_update."""
        image_ops.update_image(image, changes, merge)
        self.announce("image-updated", image.fingerprint)

    def delete(self, fingerprint: str, *, announce: bool = True) -> None:
        """Remove an image from the current project (the tree goes when no other project
        has it); InvalidState while an instance uses it. announce false: a step of a
        refresh, whose image-refreshed says it all (LXD's autoUpdateImage)."""
        if not self.store.shared(fingerprint):
            users = self._users(fingerprint)
            if users:
                raise InvalidState(f"Image '{fingerprint[:12]}' is used by instance "
                                   f"{users[0]}")
        self.store.delete(fingerprint)
        if announce:
            self.announce("image-deleted", fingerprint)

    def export_files(self, image: ImageInfo, staging: Path) -> list[Path]:
        """The files an export serves: the original file(s) of an imported image (one
        unified tarball, or metadata and rootfs), else a unified tarball of it written to
        staging (the caller removes it)."""
        from lxmgr.images import lxdformat

        files = lxdformat.original_files(image)
        if files is None:
            files = [lxdformat.export_image(image, staging)]
        self.announce("image-retrieved", image.fingerprint)
        return files

    def create_secret(self, image: ImageInfo) -> str:
        """A new image secret (LXD's createTokenResponse): the caller makes it a token
        operation."""
        secret = secrets.token_hex(32)
        self.announce("image-secret-created", image.fingerprint)
        return secret

    # -- aliases -----------------------------------------------------------------------------

    def create_alias(self, name: str, target: str) -> None:
        """A new alias of image target; Conflict if the name is taken (LXD: 'Alias already
        exists')."""
        if not name:
            raise InvalidConfig("An alias needs a name")
        image = self.store.get(target)
        if any(name in i.aliases for i in self.store.list()):
            raise Conflict(f"Alias '{name}' already exists")
        self.store.add_alias(image.fingerprint, name)
        self.announce_alias("image-alias-created", name, target=image.fingerprint)

    def update_alias(self, name: str, target: str) -> None:
        """Point an existing alias at image target (PUT/PATCH)."""
        current = self.store.alias_target(name)
        image = self.store.get(target)
        if image.fingerprint != current.fingerprint:
            self.store.add_alias(image.fingerprint, name, take_over=True)
        self.announce_alias("image-alias-updated", name, target=image.fingerprint)

    def rename_alias(self, name: str, new: str) -> None:
        """POST /1.0/images/aliases/NAME {"name": NEW}."""
        if not new:
            raise InvalidConfig("Missing 'name': the alias's new name")
        self.store.rename_alias(name, new)
        self.announce_alias("image-alias-renamed", new, old_name=name)

    def delete_alias(self, name: str) -> None:
        self.store.remove_alias(name)
        self.announce_alias("image-alias-deleted", name)
