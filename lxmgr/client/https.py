"""The client's TLS transport to a remote lxmgrd (or LXD) on its core.https_address.

As LXD's `lxc`: the client presents its own certificate (client.crt/client.key in the CLI's
config directory; the server trusts it by fingerprint) and pins the server's certificate as
it was accepted by `remote add` (a token carries its fingerprint). No CA is involved: the
handshake does not verify the chain, then the peer certificate's sha256 must equal the
pinned one before a byte of a request is sent.

Websockets need one reader and one writer at once; an OpenSSL connection must not be driven
from two threads, so `bridge()` hands the websocket client a plain socketpair end and one
thread moves bytes between it and the TLS socket.

Imports only the stdlib (ssl is imported here, never on the unix-socket path) and
lxmgr.errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket
import ssl
import threading
from urllib.parse import urlsplit

from lxmgr import errors

DEFAULT_PORT = 8443
_CHUNK = 65536
_BACKLOG = 1 << 20  # bytes buffered each way by a bridge before it stops reading


class RemoteUnreachable(errors.LxmgrError):
    """Nobody answers at the remote's address (or the TLS handshake failed)."""

    status = 503


def split_address(address: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port', 'https://host:port' -> (host, port)."""
    text = address.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        host, port = parts.hostname or "", parts.port or default_port
    except ValueError as err:
        raise errors.InvalidConfig(f"Invalid address '{address}': {err}") from None
    if parts.scheme != "https" or not host or parts.path not in ("", "/"):
        raise errors.InvalidConfig(f"Invalid address '{address}': expected HOST[:PORT] or "
                                   "https://HOST[:PORT]")
    return host, port


def format_url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def der_fingerprint(der: bytes) -> str:
    """sha256 of a DER certificate, lower-case hex (LXD's fingerprint)."""
    return hashlib.sha256(der).hexdigest()


def _context(cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # pinned by fingerprint after the handshake
    if cert_file and key_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def _tls_connect(context: ssl.SSLContext, host: str, port: int,
                 timeout: float | None) -> ssl.SSLSocket:
    try:
        raw = socket.create_connection((host, port), timeout=timeout or 30)
    except OSError as err:
        raise RemoteUnreachable(f"Cannot reach {format_url(host, port)}: "
                                f"{err.strerror or err}") from None
    try:
        tls = context.wrap_socket(raw, server_hostname=None)
    except (OSError, ssl.SSLError) as err:
        raw.close()
        raise RemoteUnreachable(f"TLS handshake with {format_url(host, port)} failed: "
                                f"{getattr(err, 'reason', None) or err}") from None
    tls.settimeout(timeout)
    return tls


def server_certificate(host: str, port: int, timeout: float = 10.0) -> bytes:
    """The DER certificate the server at host:port presents (not verified: the caller pins
    it by fingerprint or asks the user)."""
    with _tls_connect(_context(), host, port, timeout) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise RemoteUnreachable(f"{format_url(host, port)} presented no certificate")
    return der


class TlsRemote:
    """Where and how a Client reaches a remote daemon: its URL, the pinned server certificate
    and our client certificate. `open_socket` is what the Client's connections call."""

    def __init__(self, name: str, url: str, server_cert_pem: str, cert_file: str,
                 key_file: str) -> None:
        self.name = name
        self.url = url
        self.host, self.port = split_address(url)
        try:
            der = ssl.PEM_cert_to_DER_cert(server_cert_pem)
        except ValueError as err:
            raise errors.InvalidConfig(f"Remote '{name}': invalid server certificate: "
                                       f"{err}") from None
        self.fingerprint = der_fingerprint(der)
        self.cert_file, self.key_file = cert_file, key_file
        self._context: ssl.SSLContext | None = None

    @property
    def host_header(self) -> str:
        return format_url(self.host, self.port).removeprefix("https://")

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                self._context = _context(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as err:
                raise errors.InvalidConfig(f"Cannot load the client certificate "
                                           f"{self.cert_file}: {err}") from None
        return self._context

    def open_socket(self, timeout: float | None = None) -> ssl.SSLSocket:
        """A TLS connection to the remote whose certificate is the pinned one."""
        tls = _tls_connect(self.context(), self.host, self.port, timeout)
        der = tls.getpeercert(binary_form=True) or b""
        if der_fingerprint(der) != self.fingerprint:
            tls.close()
            raise errors.Forbidden(
                f"Remote '{self.name}' ({self.url}) presented a certificate that is not the "
                f"one accepted when it was added (fingerprint {der_fingerprint(der)[:12]}, "
                f"expected {self.fingerprint[:12]}): remove and add the remote again if it "
                "was regenerated")
        return tls

    def open_stream(self, timeout: float | None = None) -> socket.socket:
        """open_socket() behind a bridge: safe for one reader and one writer thread."""
        return bridge(self.open_socket(timeout))


def bridge(tls: ssl.SSLSocket) -> socket.socket:
    """A plain socket whose peer end a thread relays to and from `tls`; closing it (or the
    server closing) ends the relay and closes both."""
    mine, theirs = socket.socketpair()
    thread = threading.Thread(target=_relay, args=(tls, theirs), name="tls-bridge",
                              daemon=True)
    thread.start()
    return mine


def _relay(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    tls.setblocking(False)
    plain.setblocking(False)
    to_tls, to_plain = bytearray(), bytearray()
    tls_open = plain_open = True
    try:
        while (tls_open or to_plain) and (plain_open or to_tls):
            readers = [s for s, ok in ((tls, tls_open and len(to_plain) < _BACKLOG),
                                       (plain, plain_open and len(to_tls) < _BACKLOG)) if ok]
            writers = [s for s, data in ((tls, to_tls), (plain, to_plain)) if data]
            pending = tls in readers and tls.pending() > 0
            ready_r, ready_w, _ = select.select(readers, writers, [], 0 if pending else None)
            if tls in readers and (pending or tls in ready_r):
                data = _recv(tls)
                if data == b"":
                    tls_open = False
                elif data:
                    to_plain += data
            if plain in ready_r:
                data = _recv(plain)
                if data == b"":
                    plain_open = False
                elif data:
                    to_tls += data
            if tls in ready_w:
                sent = _send(tls, bytes(to_tls[:_CHUNK]))
                if sent is None:  # the server is gone: nothing more can reach it
                    tls_open = False
                    to_tls.clear()
                else:
                    del to_tls[:sent]
            if plain in ready_w:
                sent = _send(plain, bytes(to_plain))
                if sent is None:
                    break  # our side is gone
                del to_plain[:sent]
            if not tls_open and not to_plain:
                with contextlib.suppress(OSError):
                    plain.shutdown(socket.SHUT_WR)
    finally:
        for sock in (tls, plain):
            with contextlib.suppress(OSError):
                sock.close()


_RETRY = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


def _recv(sock: socket.socket) -> bytes | None:
    """One non-blocking recv: data, None to retry later, b'' when closed or broken."""
    try:
        return sock.recv(_CHUNK)
    except _RETRY:
        return None
    except OSError:  # ssl.SSLError included
        return b""


def _send(sock: socket.socket, data: bytes) -> int | None:
    """One non-blocking send: bytes sent (0: retry later), None when closed or broken."""
    try:
        return sock.send(data)
    except _RETRY:
        return 0
    except OSError:
        return None
