"""The CLI's image remotes (like lxc's ~/.config/lxc/config.yml): built-in `ubuntu:` and
`images:`, plus the user's in $LXMGR_CONF/remotes.yaml (default ~/.config/lxmgr).

The one place the CLI reads image-server code itself (lxmgr.images.remotes and, for `image
list REMOTE:`, the simplestreams client), as lxc does: remotes are the client's, the daemon
only gets a server URL and an alias.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def config_path() -> Path:
    base = os.environ.get("LXMGR_CONF") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "lxmgr")
    return Path(base) / "remotes.yaml"


def image_source(ref: str) -> dict[str, Any] | None:
    """The create/copy `source` for a REMOTE:ALIAS reference; None for a local image."""
    from lxmgr.images.remotes import resolve_image_ref

    remote, alias = resolve_image_ref(config_path(), ref)
    if remote is None:
        return None
    return {"type": "image", "mode": "pull", "server": remote.url,
            "protocol": remote.protocol, "alias": alias}


def local_alias(ref: str) -> str:
    """The local alias a reference names (`local:debian` -> debian)."""
    from lxmgr.images.remotes import resolve_image_ref

    return resolve_image_ref(config_path(), ref)[1]
