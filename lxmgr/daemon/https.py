"""The HTTPS listener of `core.https_address`: one aiohttp TCPSite over the daemon's AppRunner
with a TLS context that asks for (but does not require or CA-verify) client certificates;
lxmgr.daemon.auth decides trust from the certificate's fingerprint.

The server certificate and key are generated on first start into $LXMGR_DIR/server.crt and
server.key (0600). `sync()` is called at boot and after each server config change, so setting,
moving or unsetting the address takes effect without a restart. Owned by lxmgr.daemon.__main__
(created after the runner is set up; its site stops with runner.cleanup()).

Self-signed client certificates need a libssl verify callback, set through ctypes on the
SSL_CTX of Python's context: only on CPython with the OpenSSL its _ssl links, after checking
the pointer; otherwise NotSupported and the listener stays down. addresses() is where clients
reach it (every global address of the host for a wildcard), as LXD's util.ListenAddresses.
"""

from __future__ import annotations

import _ssl
import asyncio
import ctypes
import ipaddress
import logging
import os
import socket
import ssl
import sys
from collections.abc import Iterable
from pathlib import Path

import psutil
from aiohttp import web

from lxmgr.api.certificate import fingerprint, generate_certificate, load_certificate
from lxmgr.daemon.keys import MANAGER
from lxmgr.errors import InvalidConfig, LxmgrError, NotSupported
from lxmgr.model.server_config import parse_listen_address

log = logging.getLogger(__name__)

SSL_VERIFY_PEER = 1  # openssl/ssl.h
_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VERIFY_CB
def _accept_any(_preverify_ok: int, _store_ctx: int) -> int:
    return 1


def _libssl() -> ctypes.CDLL:
    """The OpenSSL that Python's _ssl module itself uses, checked by its version string.

    dlsym() on _ssl's own handle resolves symbols through its dependencies, so we get the very
    libssl/libcrypto _ssl links (a statically linked _ssl exports none: NotSupported).
    """
    if sys.implementation.name != "cpython":
        raise NotSupported(f"Client certificates need CPython, not {sys.implementation.name}")
    try:
        lib = ctypes.CDLL(getattr(_ssl, "__file__", None))  # None: _ssl is built in
        lib.OpenSSL_version.restype = ctypes.c_char_p
        lib.OpenSSL_version.argtypes = [ctypes.c_int]
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
        lib.SSL_CTX_set_verify.restype = None
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    except (OSError, AttributeError) as err:
        raise NotSupported(f"Cannot reach the OpenSSL of Python's ssl module: {err}") from None
    loaded = (lib.OpenSSL_version(0) or b"").decode(errors="replace")
    if loaded != ssl.OPENSSL_VERSION:
        raise NotSupported(f"OpenSSL mismatch: Python's ssl uses '{ssl.OPENSSL_VERSION}', "
                           f"the loaded libssl is '{loaded}'")
    return lib


def _ssl_ctx_pointer(context: ssl.SSLContext, lib: ctypes.CDLL) -> int:
    """The SSL_CTX* of `context`: the first field after PyObject_HEAD of CPython's
    PySSLContext (Modules/_ssl.c), checked by flipping verify_mode through Python and reading
    it back through OpenSSL before anything is written."""
    if not isinstance(context, _ssl._SSLContext) or \
            type(context).__basicsize__ <= object.__basicsize__:
        raise NotSupported("Unknown SSLContext layout")
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        raise NotSupported("SSLContext has no SSL_CTX")
    mode = context.verify_mode
    try:
        for python_mode, openssl_mode in ((ssl.CERT_REQUIRED, 3), (ssl.CERT_OPTIONAL, 1)):
            context.verify_mode = python_mode
            if lib.SSL_CTX_get_verify_mode(pointer) != openssl_mode:
                raise NotSupported("SSLContext layout does not match this Python's")
    finally:
        context.verify_mode = mode
    return pointer


def _accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Make OpenSSL accept every client certificate (self-signed ones included).

    Python's ssl has no verify callback, and CERT_OPTIONAL still fails the handshake on a
    certificate no CA signed; LXD's clients use self-signed ones, trusted by fingerprint. So we
    install an always-true callback on the SSL_CTX, keeping the verify mode Python set. Only on
    CPython with the OpenSSL its _ssl links; anything else raises NotSupported (the listener
    is then not started). Trust is decided in auth.py.
    """
    lib = _libssl()
    context.verify_mode = ssl.CERT_OPTIONAL
    pointer = _ssl_ctx_pointer(context, lib)
    lib.SSL_CTX_set_verify(pointer, SSL_VERIFY_PEER, _accept_any)


def listen_addresses(address: str, interfaces: Iterable[str]) -> list[str]:
    """The HOST:PORT clients can reach `address` at (LXD's util.ListenAddresses): an empty
    or wildcard host means each global unicast address of the host (`interfaces`, e.g.
    from host_addresses()), IPv6 ones only when the wildcard is not 0.0.0.0."""
    host, port = parse_listen_address(address)
    if not _is_wildcard(host):
        return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    ipv4_only = ipaddress.ip_address(host or "::").version == 4
    out = []
    for text in interfaces:
        try:
            ip = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            continue
        if ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified or \
                ip == ipaddress.IPv4Address("255.255.255.255"):
            continue
        if ip.version == 6 and ipv4_only:
            continue
        out.append(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    return list(dict.fromkeys(out))


def _is_wildcard(host: str) -> bool:
    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # a host name


def host_addresses() -> list[str]:
    """Every IPv4/IPv6 address of the host's interfaces (psutil)."""
    return [addr.address for addrs in psutil.net_if_addrs().values() for addr in addrs
            if addr.family in (socket.AF_INET, socket.AF_INET6)]


def ensure_server_certificate(root: Path) -> tuple[Path, Path]:
    """$LXMGR_DIR/server.crt and server.key, generated (EC P-384, self-signed) when missing."""
    crt, key = root / "server.crt", root / "server.key"
    if crt.exists() and key.exists():
        return crt, key
    hostname = socket.gethostname()
    cert_pem, key_pem = generate_certificate(f"root@{hostname}",
                                             [hostname, "localhost", "127.0.0.1", "::1"])
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    crt.write_bytes(cert_pem)
    log.info("Generated the server certificate %s", crt)
    return crt, key


def build_context(crt: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context asking for a client certificate (trust decided later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(crt, key)
    _accept_any_client_certificate(context)
    return context


class HttpsListener:
    """The TCPSite serving the app over TLS on core.https_address, if set."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None  # set by attach(); None in in-process tests
        self.root = Path()
        self.address = ""
        self.site: web.TCPSite | None = None
        self._lock = asyncio.Lock()

    @property
    def certificate_pem(self) -> str:
        return (self.root / "server.crt").read_text()

    @property
    def certificate_fingerprint(self) -> str:
        return fingerprint(load_certificate(self.certificate_pem))

    def addresses(self) -> list[str]:
        """Where clients reach the listener (GET /1.0 environment.addresses, trust tokens);
        blocking (reads the interfaces): call it in a thread."""
        if not self.address:
            return []
        host, _ = parse_listen_address(self.address)
        return listen_addresses(self.address, host_addresses() if _is_wildcard(host) else [])

    async def attach(self, runner: web.AppRunner, root: Path) -> None:
        """Daemon boot: serve core.https_address if set (a failure is logged, not fatal)."""
        self.runner, self.root = runner, root
        try:
            await self.sync()
        except (OSError, LxmgrError) as err:
            log.error("Cannot listen on core.https_address: %s", err)

    async def sync(self) -> None:
        """Listen where the server config says (start, move, or stop on unset)."""
        if self.runner is None:
            return
        config = await asyncio.to_thread(self.runner.app[MANAGER].db.server_config)
        await self.listen(config.get("core.https_address", ""))

    async def listen(self, address: str) -> None:
        """Serve on `address` ("" stops); OSError (port busy) leaves the old site running."""
        async with self._lock:
            if address == self.address:
                return
            site = await self._start(address) if address else None
            if self.site is not None:
                await self.site.stop()
                log.info("Stopped listening on %s", self.address)
            self.site, self.address = site, address

    async def _start(self, address: str) -> web.TCPSite:
        host, port = parse_listen_address(address)
        crt, key = await asyncio.to_thread(ensure_server_certificate, self.root)
        context = build_context(crt, key)
        if self.runner is None:
            raise InvalidConfig("The HTTPS listener is not attached to a server")
        site = web.TCPSite(self.runner, host or None, port, ssl_context=context,
                           reuse_address=True)
        await site.start()
        log.info("Listening on https://%s", address)
        return site


HTTPS = web.AppKey("https", HttpsListener)

