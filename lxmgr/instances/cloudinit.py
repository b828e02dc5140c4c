"""cloud-init.* keys: a NoCloud seed written into a new instance whose image has cloud-init
(LXD's images carry templates that write the same files at create time:
/var/lib/cloud/seed/nocloud-net/{meta-data,user-data,vendor-data,network-config}).

An image without cloud-init would store the keys and ignore them, so such an instance is
refused; the seed is read on the first boot only, so changing it later is refused too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lxmgr.errors import InvalidConfig
from lxmgr.instances import files
from lxmgr.model.idmap import IdMap
from lxmgr.storage.base import RootfsSpec

KEYS = {"cloud-init.user-data": "user-data", "cloud-init.vendor-data": "vendor-data",
        "cloud-init.network-config": "network-config"}
SEED_DIR = "var/lib/cloud/seed/nocloud-net"
TOOL = "usr/bin/cloud-init"


def wanted(config: Mapping[str, str]) -> list[str]:
    """The cloud-init.* keys set (non-empty) in an expanded config."""
    return [key for key in KEYS if config.get(key)]


def check_image(config: Mapping[str, str], image_rootfs: Path, image: str) -> None:
    """Refuse cloud-init.* keys for an image that has no cloud-init to read them."""
    keys = wanted(config)
    if keys and not os.path.lexists(image_rootfs / TOOL):
        raise InvalidConfig(f"Invalid config key '{keys[0]}': image '{image}' has no "
                            "cloud-init to read it")


def check_unchanged(old: Mapping[str, str], new: Mapping[str, str], name: str) -> None:
    """The seed is read on the instance's first boot: refuse a later change."""
    for key in KEYS:
        if (old.get(key) or "") != (new.get(key) or ""):
            raise InvalidConfig(f"Invalid config key '{key}': cloud-init reads it on the first "
                                f"boot of '{name}' only; set it when creating the instance")


def write_seed(spec: RootfsSpec, idmap: IdMap | None, name: str, uuid: str,
               config: Mapping[str, str]) -> None:
    """Write the NoCloud seed of a new instance (before it ever ran)."""
    if not wanted(config):
        return
    meta = f"instance-id: {uuid}\nlocal-hostname: {name}\n"
    parts = ["var", "var/lib", "var/lib/cloud", "var/lib/cloud/seed", SEED_DIR]
    for rel, text in [(f"{SEED_DIR}/meta-data", meta)] + [
            (f"{SEED_DIR}/{leaf}", config[key]) for key, leaf in KEYS.items()
            if config.get(key)]:
        files.write_file(spec, idmap, rel, text, parents=parts)
