"""The HTTPS listener of `core.https_address`: one aiohttp TCPSite over the daemon's AppRunner
with a TLS context that asks for (but does not require or CA-verify) client certificates;
lxmgr.daemon.auth decides trust from the certificate's fingerprint.

The server certificate and key are generated on first start into $LXMGR_DIR/server.crt and
server.key (0600). `sync()` is called at boot and after each server config change, so setting,
moving or unsetting the address takes effect without a restart. Owned by lxmgr.daemon.__main__
(created after the runner is set up; its site stops with runner.cleanup()).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import ssl
from pathlib import Path

from aiohttp import web

from lxmgr.api.certificate import fingerprint, generate_certificate, load_certificate
from lxmgr.daemon.keys import MANAGER
from lxmgr.errors import InvalidConfig
from lxmgr.model.server_config import parse_listen_address

log = logging.getLogger(__name__)

SSL_VERIFY_PEER = 1  # openssl/ssl.h
_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VERIFY_CB
def _accept_any(_preverify_ok: int, _store_ctx: int) -> int:
    return 1


def _accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Make OpenSSL accept every client certificate (self-signed ones included).

    Python's ssl has no verify callback, and CERT_OPTIONAL still fails the handshake on a
    certificate no CA signed; LXD's clients use self-signed ones, trusted by fingerprint. So we
    install an always-true callback on the SSL_CTX (first field after PyObject_HEAD in CPython's
    PySSLContext), keeping the verify mode Python set. Trust is decided in auth.py.
    """
    libssl = ctypes.CDLL("libssl.so.3")
    libssl.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
    libssl.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    ssl_ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not ssl_ctx or libssl.SSL_CTX_get_verify_mode(ssl_ctx) != SSL_VERIFY_PEER:
        raise InvalidConfig("Cannot set up client certificate checks on this Python")
    libssl.SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, _accept_any)


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
    context.verify_mode = ssl.CERT_OPTIONAL
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

    async def attach(self, runner: web.AppRunner, root: Path) -> None:
        """Daemon boot: serve core.https_address if set (a failure is logged, not fatal)."""
        self.runner, self.root = runner, root
        try:
            await self.sync()
        except (OSError, InvalidConfig) as err:
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

