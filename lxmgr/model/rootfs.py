"""PURE: how an instance's root filesystem is mounted (a storage driver's answer, the
runtime's input). Imports only lxmgr.errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxmgr.errors import InvalidConfig


@dataclass(frozen=True)
class RootfsSpec:
    """How to mount an instance's rootfs on `target`, inside a private mount namespace.

    kind "overlay": lower (read-only, shared image), upper and work (per instance).
    kind "bind": source (a private tree) bound onto target.
    idmap_lower: the lower/source is mounted through an idmapped open_tree() clone using the
    container's user namespace (read-only for overlay, read-write for bind).
    """

    kind: Literal["overlay", "bind"]
    target: str
    lower: str = ""
    upper: str = ""
    work: str = ""
    source: str = ""
    idmap_lower: bool = False

    def overlay_options(self, lowerdir: str) -> str:
        """Mount data for overlayfs. index/metacopy/redirect_dir are forced off: they store
        trusted.* xattrs and file handles tied to the lower, which we share and idmap."""
        for value in (lowerdir, self.upper, self.work):
            if any(ch in value for ch in ",:\\\n") or not value:
                raise InvalidConfig(f"Invalid overlay path '{value}'")
        return (f"lowerdir={lowerdir},upperdir={self.upper},workdir={self.work},"
                "index=off,metacopy=off,redirect_dir=off")

    def describe(self) -> str:
        idm = " (idmapped)" if self.idmap_lower else ""
        if self.kind == "overlay":
            return f"overlay on {self.target}: lower={self.lower}{idm} upper={self.upper}"
        return f"bind {self.source}{idm} on {self.target}"
