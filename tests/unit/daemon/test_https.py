"""lxmgr.daemon.https without a daemon: which addresses a listener advertises, and the guard
around the libssl verify-callback hook (CPython only, the OpenSSL _ssl links, a checked
SSL_CTX pointer; anything else fails cleanly and the listener does not start)."""

from __future__ import annotations

import logging
import ssl
import types
from pathlib import Path

import pytest

from lxmgr.api.certificate import fingerprint, generate_certificate, load_certificate
from lxmgr.daemon import https
from lxmgr.daemon.keys import MANAGER
from lxmgr.errors import NotSupported

HOST = ["127.0.0.1", "::1", "192.0.2.7", "10.20.0.1", "fe80::1%eth0", "2001:db8::7",
        "169.254.3.3", "fd00::5"]


@pytest.mark.parametrize(("address", "expected"), [
    (":8443", ["192.0.2.7:8443", "10.20.0.1:8443", "[2001:db8::7]:8443", "[fd00::5]:8443"]),
    ("[::]:9", ["192.0.2.7:9", "10.20.0.1:9", "[2001:db8::7]:9", "[fd00::5]:9"]),
    ("0.0.0.0:9", ["192.0.2.7:9", "10.20.0.1:9"]),
    ("127.0.0.1:9", ["127.0.0.1:9"]),
    ("[::1]:9", ["[::1]:9"]),
    ("lxd.example:9", ["lxd.example:9"]),
    ("192.0.2.7", ["192.0.2.7:8443"]),
])
def test_listen_addresses(address: str, expected: list[str]) -> None:
    assert https.listen_addresses(address, HOST) == expected


def test_host_addresses_are_ips() -> None:
    import ipaddress

    for text in https.host_addresses():
        ipaddress.ip_address(text.split("%")[0])


def _certificate(tmp_path: Path, name: str, *, client: bool) -> tuple[Path, Path]:
    cert, key = generate_certificate(name, ["localhost"], client=client)
    (tmp_path / f"{name}.crt").write_bytes(cert)
    (tmp_path / f"{name}.key").write_bytes(key)
    return tmp_path / f"{name}.crt", tmp_path / f"{name}.key"


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> bytes | None:
    """A TLS handshake in memory (no socket); the certificate the server saw."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, obj in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    return s.getpeercert(binary_form=True)


def test_self_signed_client_certificate_completes_the_handshake(tmp_path: Path) -> None:
    server = https.build_context(*_certificate(tmp_path, "server", client=False))
    assert server.verify_mode == ssl.CERT_OPTIONAL
    crt, key = _certificate(tmp_path, "client", client=True)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    client.load_cert_chain(crt, key)
    der = _handshake(server, client)
    assert der is not None
    assert fingerprint(der) == fingerprint(load_certificate(crt.read_bytes()))


def test_refused_on_another_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(https.sys, "implementation", types.SimpleNamespace(name="pypy"))
    with pytest.raises(NotSupported, match="need CPython, not pypy"):
        https.build_context(*_certificate(tmp_path, "server", client=False))


def test_refused_on_an_openssl_mismatch(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setattr(https.ssl, "OPENSSL_VERSION", "OpenSSL 0.9.8 (not this one)")
    with pytest.raises(NotSupported, match="OpenSSL mismatch"):
        https.build_context(*_certificate(tmp_path, "server", client=False))


def test_refused_when_the_pointer_is_not_an_ssl_ctx(monkeypatch: pytest.MonkeyPatch) -> None:
    """A layout check reads verify_mode back through OpenSSL before writing anything."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    lib = https._libssl()
    monkeypatch.setattr(lib, "SSL_CTX_get_verify_mode", lambda _pointer: 0)
    with pytest.raises(NotSupported, match="layout"):
        https._ssl_ctx_pointer(context, lib)
    assert context.verify_mode == ssl.CERT_NONE  # restored


async def test_listener_not_started_on_a_mismatch(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Daemon boot: one logged line, no listener, no crash."""
    monkeypatch.setattr(https.ssl, "OPENSSL_VERSION", "OpenSSL 0.9.8 (not this one)")
    db = types.SimpleNamespace(server_config=lambda: {"core.https_address": "127.0.0.1:1"})
    runner = types.SimpleNamespace(app={MANAGER: types.SimpleNamespace(db=db)})
    listener = https.HttpsListener()
    with caplog.at_level(logging.ERROR, logger="lxmgr.daemon.https"):
        await listener.attach(runner, tmp_path)  # type: ignore[arg-type]
    assert listener.site is None and listener.address == ""
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "OpenSSL mismatch" in errors[0] and "\n" not in errors[0]
