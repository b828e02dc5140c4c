"""The CLI's remotes (like lxc's ~/.config/lxc): image servers (built-in `ubuntu:` and
`images:`, plus the user's) and servers that hold instances (`local`, this host's lxmgrd, and
lxmgrd/LXD daemons added over HTTPS with a trust token), all in $LXMGR_CONF/remotes.yaml
(default ~/.config/lxmgr) with each server remote's current project (`lxmgr project
switch`), beside this client's certificate (client.crt, client.key) and the pinned server
certificates (servercerts/NAME.crt).

The one place the CLI reads image-server code itself (lxmgr.images.remotes and, for `image
list REMOTE:`, the simplestreams client), as lxc does: remotes are the client's, the daemon
only gets a server URL and an alias.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxmgr.errors import Conflict, Forbidden, InvalidConfig, LxmgrError

LOCAL = "local"


def config_dir() -> Path:
    from lxmgr.cli.app import config_dir as directory

    return Path(directory())


def config_path() -> Path:
    return config_dir() / "remotes.yaml"


def server_cert_path(name: str) -> Path:
    return config_dir() / "servercerts" / f"{name}.crt"


def client_cert_paths() -> tuple[Path, Path]:
    return config_dir() / "client.crt", config_dir() / "client.key"


def image_source(ref: str, target_remote: str = LOCAL) -> dict[str, Any] | None:
    """The create/copy `source` for a REMOTE:ALIAS reference on an image server; None for an
    image of the server the instance goes to (`local:X`, `X`, or `TARGET:X`)."""
    from lxmgr.images.remotes import resolve_image_ref

    remote, alias = resolve_image_ref(config_path(), ref)
    server = remote.name if remote is not None else (
        LOCAL if ref.startswith(f"{LOCAL}:") else target_remote)
    if server == target_remote:
        return None
    if remote is None or remote.is_server:
        raise InvalidConfig(
            f"The image '{ref}' is on remote '{server}' but the instance is created on "
            f"'{target_remote}': copying images between servers is not supported; name the "
            f"instance {server}:NAME, or copy the image to an image server")
    return {"type": "image", "mode": "pull", "server": remote.url,
            "protocol": remote.protocol, "alias": alias}


def local_alias(ref: str) -> str:
    """The alias a reference names on its server (`local:debian` and `prod:debian` ->
    debian)."""
    from lxmgr.images.remotes import resolve_image_ref

    return resolve_image_ref(config_path(), ref)[1]


def default_remote() -> str:
    """The server remote bare instance names refer to (`lxmgr remote switch`)."""
    from lxmgr.images.remotes import default_remote as read_default

    return read_default(config_path())


def current_project(remote: str) -> str:
    """The current project of a server remote ('' when none was switched to), as lxc keeps
    it in config.yml: `remotes: NAME: project: P` (local's entry holds only that)."""
    from lxmgr.images.remotes import remote_project

    return remote_project(config_path(), remote)


def set_current_project(remote: str, project: str | None) -> None:
    """Make project the current one of a server remote (None: back to the default)."""
    from lxmgr.images.remotes import set_remote_project

    set_remote_project(config_path(), remote, project)


def server_remote(name: str) -> Any:
    """The Remote named name; InvalidConfig when it is an image server (no instances)."""
    from lxmgr.images.remotes import get_remote

    remote = get_remote(config_path(), name)
    if not remote.is_server:
        raise InvalidConfig(f"Remote '{name}' is an image server ({remote.protocol}): it "
                            "holds no instances")
    return remote


def client_for(name: str, *, socket_path: str | None = None,
               trace: Callable[[str], None] | None = None) -> Any:
    """A Client for the server remote `name` (`local`: socket_path or the default socket)."""
    from lxmgr.client import Client

    if name == LOCAL:
        return Client(socket_path, trace=trace)
    remote = server_remote(name)
    if remote.url.startswith("unix://"):
        return Client(remote.url.removeprefix("unix://"), trace=trace)
    from lxmgr.client.https import TlsRemote

    try:
        pem = server_cert_path(name).read_text()
    except OSError as err:
        raise InvalidConfig(f"Remote '{name}' has no pinned server certificate "
                            f"({err.strerror}): remove it and add it again") from None
    crt, key = client_cert_paths()
    return Client(remote=TlsRemote(name, remote.url, pem, str(crt), str(key)), trace=trace)


def ensure_client_certificate() -> tuple[Path, Path]:
    """This client's certificate and key, generated (EC P-384, self-signed) when missing."""
    crt, key = client_cert_paths()
    if crt.exists() and key.exists():
        return crt, key
    from lxmgr.api.certificate import generate_certificate

    host = socket.gethostname()
    cert_pem, key_pem = generate_certificate(f"{getpass.getuser()}@{host}", [host],
                                             client=True)
    crt.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    crt.write_bytes(cert_pem)
    return crt, key


def add_server(name: str, target: str | None, *, token: str | None = None,
               accept_certificate: bool = False,
               confirm: Callable[[str], bool] | None = None) -> tuple[Any, bool]:
    """Add the server remote `name` at target (HOST[:PORT], https:// or unix:// URL; a token
    alone carries its addresses): pin its certificate (the token's fingerprint, or accepted by
    the user), and join its trust store with the token when it does not trust us yet.
    Returns (Remote, whether a token was used)."""
    from lxmgr.images.remotes import add_remote, load_remotes
    from lxmgr.model.remote import validate_remote_name

    validate_remote_name(name)
    if name in load_remotes(config_path()):
        raise Conflict(f"Remote '{name}' already exists")
    if target and target.startswith("unix:"):
        return add_remote(config_path(), name, target, protocol="lxd", public=False), False
    parsed = _token(token) if token else None
    candidates = [target] if target else list(parsed.addresses if parsed else [])
    if not candidates:
        raise InvalidConfig("Give the server's address (HOST[:PORT]) or a trust token that "
                            "lists addresses")
    url, pem = _pin_certificate(candidates, parsed.fingerprint if parsed else "",
                                accept_certificate, confirm)
    cert_file = server_cert_path(name)
    cert_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_file.write_text(pem)
    try:
        client = _join(name, url, pem, token)
        client.close()
        remote = add_remote(config_path(), name, url, protocol="lxd", public=False)
    except BaseException:
        cert_file.unlink(missing_ok=True)
        raise
    return remote, token is not None


def rename_server_files(old: str, new: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        server_cert_path(old).rename(server_cert_path(new))


def remove_server_files(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        server_cert_path(name).unlink()


def _token(text: str) -> Any:
    from lxmgr.api.certificate import decode_token

    return decode_token(text)


def looks_like_token(text: str) -> bool:
    """Whether text is an LXD trust token (base64 JSON with a secret)."""
    try:
        _token(text)
    except InvalidConfig:
        return False
    return True


def _pin_certificate(candidates: list[str], fingerprint: str, accept: bool,
                     confirm: Callable[[str], bool] | None) -> tuple[str, str]:
    """(url, server certificate PEM) of the first candidate address that answers with the
    expected certificate (the token's fingerprint, or one the user accepts)."""
    import ssl

    from lxmgr.client.https import (
        RemoteUnreachable,
        der_fingerprint,
        format_url,
        server_certificate,
        split_address,
    )

    failure: LxmgrError | None = None
    for candidate in candidates:
        host, port = split_address(candidate)
        try:
            der = server_certificate(host, port)
        except RemoteUnreachable as err:
            failure = err
            continue
        found = der_fingerprint(der)
        if fingerprint and found != fingerprint:
            failure = Forbidden(f"{format_url(host, port)} presented certificate {found[:12]} "
                                f"but the token is for {fingerprint[:12]}")
            continue
        if not fingerprint and not accept and not (confirm and confirm(found)):
            raise InvalidConfig(f"Certificate fingerprint {found} of {format_url(host, port)} "
                                "not accepted (check it, then pass --accept-certificate)")
        return format_url(host, port), ssl.DER_cert_to_PEM_cert(der)
    assert failure is not None
    raise failure


def _join(name: str, url: str, pem: str, token: str | None) -> Any:
    """A Client trusted by the server at url, presenting the token when it is not yet."""
    from lxmgr.client import Client
    from lxmgr.client.https import TlsRemote

    crt, key = ensure_client_certificate()
    client = Client(remote=TlsRemote(name, url, pem, str(crt), str(key)), timeout=30)
    if (client.query("GET", "/1.0") or {}).get("auth") == "trusted":
        return client
    if token is None:
        raise Forbidden(f"{url} does not trust this client's certificate ({crt}): run "
                        "`lxmgr config trust add --name NAME` there and pass the token with "
                        "--token")
    client.query("POST", "/1.0/certificates",
                 body={"type": "client", "trust_token": token.strip()})
    if (client.query("GET", "/1.0") or {}).get("auth") != "trusted":
        raise Forbidden(f"{url} accepted the token but still does not trust this client")
    return client

