"""The client's TLS transport: addresses, certificate pinning, and the bridge that lets one
thread read while another writes (what exec websockets do) on one TLS connection."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxmgr.api.certificate import generate_certificate
from lxmgr.client.https import RemoteUnreachable, TlsRemote, split_address
from lxmgr.errors import Forbidden, InvalidConfig


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.1", ("192.0.2.1", 8443)),
    ("192.0.2.1:9443", ("192.0.2.1", 9443)),
    ("https://host.example:1234", ("host.example", 1234)),
    ("[2001:db8::1]:8443", ("2001:db8::1", 8443)),
])
def test_split_address(text: str, expected: tuple[str, int]) -> None:
    assert split_address(text) == expected


@pytest.mark.parametrize("text", ["http://host", "https://host/path", "host:notaport", ""])
def test_split_address_refuses(text: str) -> None:
    with pytest.raises(InvalidConfig):
        split_address(text)


def _pem_files(tmp_path: Path, name: str, client: bool = False) -> tuple[Path, Path]:
    cert, key = generate_certificate(name, ["127.0.0.1"], client=client)
    (tmp_path / f"{name}.crt").write_bytes(cert)
    (tmp_path / f"{name}.key").write_bytes(key)
    return tmp_path / f"{name}.crt", tmp_path / f"{name}.key"


@pytest.fixture
def echo_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A TLS echo server on 127.0.0.1 (one connection at a time); (port, its certificate)."""
    crt, key = _pem_files(tmp_path, "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # accept() wakes up to see `stop`
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    while data := tls.recv(65536):
                        tls.sendall(data)
            except (OSError, ssl.SSLError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], crt
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_bridge_reads_and_writes_at_once(echo_server: tuple[int, Path],
                                         tmp_path: Path) -> None:
    port, server_crt = echo_server
    crt, key = _pem_files(tmp_path, "client", client=True)
    remote = TlsRemote("t", f"https://127.0.0.1:{port}", server_crt.read_text(), str(crt),
                       str(key))
    sock = remote.open_stream(timeout=10)
    payload = bytes(range(256)) * 8192  # 2 MiB: more than any buffer on the way
    received = bytearray()

    def read() -> None:
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    for start in range(0, len(payload), 10000):
        sock.sendall(payload[start:start + 10000])
    reader.join(30)
    sock.close()
    assert bytes(received) == payload


def test_a_different_server_certificate_is_refused(echo_server: tuple[int, Path],
                                                   tmp_path: Path) -> None:
    port, _ = echo_server
    other, _ = _pem_files(tmp_path, "impostor")
    crt, key = _pem_files(tmp_path, "client", client=True)
    remote = TlsRemote("t", f"https://127.0.0.1:{port}", other.read_text(), str(crt), str(key))
    with pytest.raises(Forbidden, match="not the one accepted"):
        remote.open_socket(timeout=10)


def test_nobody_listening(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    crt, key = _pem_files(tmp_path, "client", client=True)
    remote = TlsRemote("t", f"https://127.0.0.1:{port}", crt.read_text(), str(crt), str(key))
    with pytest.raises(RemoteUnreachable, match="Cannot reach"):
        remote.open_socket(timeout=5)
