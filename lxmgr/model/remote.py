"""PURE image remotes: the Remote type, the built-in `ubuntu:` and `images:` remotes, name and
URL rules, and how an image reference the user typed resolves to (remote, alias).

Two kinds, as lxc's: image servers (protocol simplestreams) and servers that hold instances
(protocol lxd: another lxmgrd or an LXD, over https:// with TLS client certificates, or a
unix:// socket on this host); `local` is the built-in one, this host's daemon.

Imports only lxmgr.errors and the stdlib: no I/O (storage of user remotes is
lxmgr.images.remotes). Mirrors lxc's `remote.go` defaults and its `remote:alias` syntax, plus
one short form of our own: a bare remote name that has a default alias (`ubuntu`) means that
alias on that remote (`ubuntu:lts`); any other bare name is a local image alias.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from lxmgr.errors import InvalidConfig, NotFound

PROTOCOLS = ("simplestreams", "lxd")
LOCAL = "local"  # lxc's name for the local image store: "local:debian" is plain "debian"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+/-]{0,127}$")
_LOOPBACK_HOSTS = ("localhost",)
MAX_URL = 1024


@dataclass(frozen=True)
class Remote:
    """An image server. default_alias is what `NAME` or `NAME:` alone means ('' for none)."""

    name: str
    url: str
    protocol: str = "simplestreams"
    public: bool = True
    builtin: bool = False
    default_alias: str = ""

    @property
    def is_server(self) -> bool:
        """A server that holds instances (an lxmgrd or an LXD), not an image server."""
        return self.protocol == "lxd"

    def to_dict(self) -> dict[str, object]:
        """The stored and displayed form (lxc's `remote list` columns)."""
        return {"name": self.name, "url": self.url, "protocol": self.protocol,
                "public": self.public, "builtin": self.builtin}


# As lxc's default remotes (canonical/lxd lxc/config/default.go); `ubuntu` alone is the
# current LTS, which cloud-images.ubuntu.com tags `lts`.
BUILTIN: dict[str, Remote] = {
    LOCAL: Remote(LOCAL, "unix://", protocol="lxd", public=False, builtin=True),
    "ubuntu": Remote("ubuntu", "https://cloud-images.ubuntu.com/releases", builtin=True,
                     default_alias="lts"),
    "images": Remote("images", "https://images.linuxcontainers.org", builtin=True),
}


# What a user can launch from an image server, named when a local name is unknown.
REMOTE_EXAMPLES = ("ubuntu:24.04", "images:debian/12")
MAX_NAMES_SHOWN = 12


def server_label(url: str) -> str:
    """How messages name an image server: "'ubuntu' (cloud-images.ubuntu.com)" for a
    built-in remote, else its host[:port]."""
    url = url.rstrip("/")
    try:
        netloc = urlsplit(url).netloc or url
    except ValueError:
        netloc = url
    for remote in BUILTIN.values():
        if remote.url == url and not remote.is_server:
            return f"'{remote.name}' ({netloc})"
    return netloc


def unreachable_message(url: str, reason: str, recipes: list[str]) -> str:
    """One line: the image server cannot be reached, and what works without it."""
    local = f"a local recipe ({', '.join(recipes)})" if recipes else "a local image"
    return (f"Image server {server_label(url)} is unreachable ({reason}): without it, use "
            f"{local}, `lxmgr image import`, or a reachable remote")


def missing_image_message(ref: str, names: list[str]) -> str:
    """One line for a local image name that exists nowhere: what does (local image aliases
    and recipe names), and the remote form."""
    remotes = f"a remote ({', '.join(REMOTE_EXAMPLES)})"
    if not names:
        return f"Image '{ref}' not found: there are no local images or recipes; use {remotes}"
    return (f"Image '{ref}' not found: local images and recipes are {_listed(names)}; or use "
            f"{remotes}")


def missing_stored_image_message(ref: str, names: list[str]) -> str:
    """One line for a name no stored image has (image verbs): the local images' names."""
    if not names:
        return f"Image '{ref}' not found: there are no local images"
    return f"Image '{ref}' not found: local images are {_listed(names)}"


def _listed(names: list[str]) -> str:
    shown = sorted(set(names))
    return ", ".join(shown[:MAX_NAMES_SHOWN]) + (", ..." if len(shown) > MAX_NAMES_SHOWN
                                                  else "")


class ImageRef(NamedTuple):
    """A resolved image reference: remote None means the local image store."""

    remote: str | None
    alias: str


def validate_remote_name(name: str) -> None:
    """Lower-case letters, digits, '-' and '_', starting with a letter or digit."""
    if not _NAME_RE.match(name) or name == LOCAL:
        raise InvalidConfig(f"Invalid remote name '{name}': use lower-case letters, digits, "
                            "'-' and '_' (and not 'local')")


def validate_remote_url(url: str, protocol: str = "simplestreams") -> None:
    """https:// with a host; plain http:// only to a loopback address (test servers); for a
    server (protocol lxd) also unix:///absolute/socket/path."""
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidConfig(f"Invalid remote URL '{url[:80]}'")
    if protocol == "lxd" and url.startswith("unix:"):
        path = url.removeprefix("unix://")
        if not url.startswith("unix:///") or "/../" in f"{path}/" or "?" in path:
            raise InvalidConfig(f"Invalid remote URL '{url}': expected unix:///PATH/TO/SOCKET")
        return
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as err:
        raise InvalidConfig(f"Invalid remote URL '{url}': {err}") from err
    if not host or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidConfig(f"Invalid remote URL '{url}': expected scheme://host[:port][/path]")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    raise InvalidConfig(f"Invalid remote URL '{url}': only https:// is allowed "
                        "(http:// only to 127.0.0.1, ::1 or localhost)")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_remote(name: str, url: str, protocol: str = "simplestreams",
                 public: bool = True) -> Remote:
    """A validated user remote (the URL loses any trailing '/')."""
    validate_remote_name(name)
    if name in BUILTIN:
        raise InvalidConfig(f"Remote '{name}' is built in")
    if protocol not in PROTOCOLS:
        raise InvalidConfig(f"Invalid remote protocol '{protocol}': expected one of "
                            f"{', '.join(PROTOCOLS)}")
    url = url.rstrip("/")
    validate_remote_url(url, protocol)
    return Remote(name, url, protocol, public)


def validate_alias(alias: str) -> None:
    """An image alias or fingerprint as a user may type it."""
    if not _ALIAS_RE.match(alias) or ".." in alias or "//" in alias:
        raise InvalidConfig(f"Invalid image name '{alias}'")


def parse_image_ref(ref: str, remotes: Mapping[str, Remote] = BUILTIN) -> ImageRef:
    """'ubuntu:24.04' -> ImageRef('ubuntu', '24.04'); 'debian' -> ImageRef(None, 'debian').

    `REMOTE:` alone and a bare REMOTE with a default alias mean that alias; `local:X` is X.
    NotFound for an unknown remote, InvalidConfig for a malformed reference.
    """
    if ":" not in ref:
        remote = remotes.get(ref)
        if remote is not None and remote.default_alias:
            return ImageRef(remote.name, remote.default_alias)
        validate_alias(ref)
        return ImageRef(None, ref)
    name, alias = ref.split(":", 1)
    if name == LOCAL:
        validate_alias(alias)
        return ImageRef(None, alias)
    remote = remotes.get(name)
    if remote is None:
        raise NotFound(f"Remote '{name}' not found")
    if not alias:
        if not remote.default_alias:
            raise InvalidConfig(f"Remote '{name}' has no default image: name one, "
                                f"e.g. '{name}:debian/12'")
        alias = remote.default_alias
    validate_alias(alias)
    return ImageRef(remote.name, alias)
