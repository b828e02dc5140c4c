"""core.https_address on a real lxmgrd: TLS clients are untrusted until a trust token made on
the unix socket lets their certificate join; trusted clients reach the API and websockets;
unsetting the address closes the port. No containers are created."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lxmgr.api.certificate import (
    TrustToken,
    decode_token,
    fingerprint,
    generate_certificate,
    load_certificate,
)
from tests.system.conftest import Daemon, _remove_cgroup_base


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = uuid.uuid4().hex[:8]
    root = f"/tmp/lxmh-{tag}"
    os.makedirs(root)
    d = Daemon(root, f"lxmgr-test-{tag}")
    try:
        d.start()
        yield d
    finally:
        d.stop()
        d.log.close()
        _remove_cgroup_base(f"lxmgr-test-{tag}")
        shutil.rmtree(root, ignore_errors=True)


def _client_cert(tmp: Path, name: str) -> tuple[str, str]:
    cert, key = generate_certificate(name, [], client=True)
    (tmp / f"{name}.crt").write_bytes(cert)
    (tmp / f"{name}.key").write_bytes(key)
    return str(tmp / f"{name}.crt"), str(tmp / f"{name}.key")


def _context(cert: tuple[str, str] | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the tests pin nothing; the CLI pins the fingerprint
    if cert:
        context.load_cert_chain(*cert)
    return context


def _https(port: int, method: str, path: str, cert: tuple[str, str] | None,
           body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=_context(cert), timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _listen(daemon: Daemon) -> int:
    port = _free_port()
    daemon.api("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}})
    return port


def _token(daemon: Daemon, name: str) -> str:
    resp = daemon.api("POST", "/1.0/certificates", {"name": name, "token": True})
    assert resp["type"] == "async"
    meta = resp["metadata"]["metadata"]
    token = TrustToken(meta["request"]["name"], meta["fingerprint"], meta["addresses"],
                       meta["secret"], meta["expiresAt"]).encode()
    assert decode_token(token).secret == decode_token(meta["token"]).secret
    return token


def test_untrusted_client_sees_little(daemon: Daemon, tmp_path: Path) -> None:
    port = _listen(daemon)
    status, body = _https(port, "GET", "/1.0", None)
    assert status == 200
    assert body["metadata"]["auth"] == "untrusted"
    assert body["metadata"]["auth_methods"] == ["tls"]
    assert body["metadata"]["config"] == {}
    assert "server_pid" not in body["metadata"]["environment"]
    cert = _client_cert(tmp_path, "stranger")
    status, body = _https(port, "GET", "/1.0/instances", cert)
    assert (status, body["type"], body["error_code"]) == (403, "error", 403)
    status, _ = _https(port, "POST", "/1.0/certificates", cert, {"name": "x", "type": "client"})
    assert status == 403
    assert (Path(daemon.root) / "server.key").stat().st_mode & 0o777 == 0o600


def test_token_join_reuse_and_removal(daemon: Daemon, tmp_path: Path) -> None:
    port = _listen(daemon)
    cert = _client_cert(tmp_path, "panel")
    token = _token(daemon, "web-panel")
    status, _ = _https(port, "POST", "/1.0/certificates", cert,
                       {"type": "client", "trust_token": token})
    assert status == 201
    status, body = _https(port, "GET", "/1.0", cert)
    assert body["metadata"]["auth"] == "trusted"
    assert body["metadata"]["environment"]["addresses"] == [f"127.0.0.1:{port}"]
    status, body = _https(port, "GET", "/1.0/instances", cert)
    assert status == 200 and body["type"] == "sync"
    # Single use: a second client cannot reuse the token.
    other = _client_cert(tmp_path, "other")
    status, _ = _https(port, "POST", "/1.0/certificates", other,
                       {"type": "client", "trust_token": token})
    assert status == 403
    listed = daemon.api("GET", "/1.0/certificates?recursion=1")["metadata"]
    assert [c["name"] for c in listed] == ["web-panel"]
    daemon.api("DELETE", f"/1.0/certificates/{listed[0]['fingerprint'][:12]}")
    status, body = _https(port, "GET", "/1.0", cert)
    assert body["metadata"]["auth"] == "untrusted"
    assert _https(port, "GET", "/1.0/instances", cert)[0] == 403


def test_restricted_certificate(daemon: Daemon, tmp_path: Path) -> None:
    """A certificate restricted to projects (what a shared web panel gets): it works in
    them, sees no other project, changes nothing server-wide, sees only itself."""
    port = _listen(daemon)
    for name in ("team", "other"):
        daemon.api("POST", "/1.0/projects", {"name": name})
    error = daemon.api("POST", "/1.0/certificates", {"name": "x", "token": True,
                                                     "restricted": True,
                                                     "projects": ["nope"]}, check=False)
    assert error["error"] == "Project 'nope' not found"
    error = daemon.api("POST", "/1.0/certificates", {"name": "x", "token": True,
                                                     "projects": ["team"]}, check=False)
    assert error["error"] == "Projects can only be specified for restricted certificates"
    meta = daemon.api("POST", "/1.0/certificates", {
        "name": "panel", "token": True, "restricted": True,
        "projects": ["team"]})["metadata"]["metadata"]
    assert meta["request"]["restricted"] is True and meta["request"]["projects"] == ["team"]
    cert = _client_cert(tmp_path, "panel")
    status, _ = _https(port, "POST", "/1.0/certificates", cert,
                       {"type": "client", "trust_token": meta["token"]})
    assert status == 201
    [entry] = daemon.api("GET", "/1.0/certificates?recursion=1")["metadata"]
    assert (entry["name"], entry["restricted"], entry["projects"]) == ("panel", True, ["team"])

    for method, path, body in [("GET", "/1.0/instances?project=team", None),
                               ("GET", "/1.0/profiles?project=team", None),
                               ("POST", "/1.0/profiles?project=team", {"name": "p1"}),
                               ("GET", "/1.0/networks?project=team", None),
                               ("GET", "/1.0/projects/team", None),
                               ("GET", "/1.0", None)]:
        status, body = _https(port, method, path, cert, body)
        assert status in (200, 201), (path, body)
    for method, path, body in [("GET", "/1.0/instances", None),
                               ("GET", "/1.0/instances?project=other", None),
                               ("GET", "/1.0/instances?project=team&all-projects=true", None),
                               ("GET", "/1.0/events?project=other", None),
                               ("GET", "/1.0/projects/other", None),
                               ("PATCH", "/1.0", {"config": {}}),
                               ("POST", "/1.0/projects", {"name": "mine"}),
                               ("DELETE", "/1.0/projects/team", None),
                               ("PATCH", "/1.0/projects/team", {"config": {}}),
                               ("POST", "/1.0/networks?project=team", {"name": "br9"}),
                               ("POST", "/1.0/storage-pools?project=team",
                                {"name": "p", "driver": "dir"}),
                               ("POST", "/1.0/certificates?project=team",
                                {"name": "y", "token": True}),
                               ("DELETE", f"/1.0/certificates/{entry['fingerprint']}", None)]:
        status, body = _https(port, method, path, cert, body)
        assert (status, body["error"]) == (403, "not authorized"), (method, path)
    assert _https(port, "GET", "/1.0/projects", cert)[1]["metadata"] == ["/1.0/projects/team"]
    listed = _https(port, "GET", "/1.0/certificates?recursion=1", cert)[1]["metadata"]
    assert [c["name"] for c in listed] == ["panel"]
    # Its projects follow a rename, and an admin widens them.
    daemon.api("DELETE", "/1.0/profiles/p1?project=team")
    daemon.api("POST", "/1.0/projects/team", {"name": "crew"})
    daemon.api("PATCH", f"/1.0/certificates/{entry['fingerprint']}",
               {"projects": ["crew", "other"]})
    [entry] = daemon.api("GET", "/1.0/certificates?recursion=1")["metadata"]
    assert entry["projects"] == ["crew", "other"]
    assert _https(port, "GET", "/1.0/instances?project=other", cert)[0] == 200
    daemon.api("PUT", f"/1.0/certificates/{entry['fingerprint']}", {"name": "panel"})
    assert _https(port, "GET", "/1.0/instances", cert)[0] == 200  # no longer restricted


def test_expired_token_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    import sqlite3

    port = _listen(daemon)
    token = _token(daemon, "late")
    with sqlite3.connect(f"{daemon.root}/lxmgr.db") as db:
        db.execute("UPDATE trust_tokens SET expires_at = '2000-01-01T00:00:00Z'")
    status, _ = _https(port, "POST", "/1.0/certificates", _client_cert(tmp_path, "late"),
                       {"type": "client", "trust_token": token})
    assert status == 403


def test_certificate_added_on_unix_socket_is_trusted(daemon: Daemon, tmp_path: Path) -> None:
    port = _listen(daemon)
    cert = _client_cert(tmp_path, "admin")
    der = ssl.PEM_cert_to_DER_cert(Path(cert[0]).read_text())
    daemon.api("POST", "/1.0/certificates",
               {"name": "admin", "type": "client", "certificate": base64.b64encode(der).decode()})
    assert _https(port, "GET", "/1.0/profiles", cert)[0] == 200


async def test_events_websocket_over_wss(daemon: Daemon, tmp_path: Path) -> None:
    port = _listen(daemon)
    cert = _client_cert(tmp_path, "watcher")
    pem = Path(cert[0]).read_text()
    daemon.api("POST", "/1.0/certificates", {"name": "watcher", "certificate": pem})
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"wss://127.0.0.1:{port}/1.0/events?type=lifecycle", ssl=_context(cert)) as ws:
        await ws.ping()
        assert not ws.closed
        # Lifecycle events name who asked: this TLS client, then the unix socket's root.
        async with session.post(f"https://127.0.0.1:{port}/1.0/profiles", ssl=_context(cert),
                                json={"name": "from-tls"}) as resp:
            assert resp.status == 201
        await asyncio.to_thread(daemon.api, "POST", "/1.0/profiles", {"name": "from-unix"})
        seen = [(await asyncio.wait_for(ws.receive_json(), 10))["metadata"] for _ in (1, 2)]
        tls, unix = seen[0]["requestor"], seen[1]["requestor"]
        assert seen[0]["source"] == "/1.0/profiles/from-tls"
        assert tls["protocol"] == "tls" and tls["address"].startswith("127.0.0.1:")
        assert tls["username"] == fingerprint(load_certificate(pem))
        assert unix == {"username": "root", "protocol": "unix", "address": "@"}
    untrusted = _client_cert(tmp_path, "nobody")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"wss://127.0.0.1:{port}/1.0/events",
                                     ssl=_context(untrusted))


def test_move_and_unset_closes_port(daemon: Daemon) -> None:
    port = _listen(daemon)
    assert _https(port, "GET", "/1.0", None)[0] == 200
    new_port = _listen(daemon)
    assert _https(new_port, "GET", "/1.0", None)[0] == 200
    with pytest.raises(ConnectionRefusedError):
        _https(port, "GET", "/1.0", None)
    daemon.api("PATCH", "/1.0", {"config": {"core.https_address": ""}})
    with pytest.raises(ConnectionRefusedError):
        _https(new_port, "GET", "/1.0", None)


def test_bad_address_is_refused(daemon: Daemon) -> None:
    resp = daemon.api("PATCH", "/1.0", {"config": {"core.https_address": "nope:x"}},
                      check=False)
    assert resp["error_code"] == 400
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        resp = daemon.api("PATCH", "/1.0", {"config": {
            "core.https_address": f"127.0.0.1:{port}"}}, check=False)
        assert resp["error_code"] == 400
        config = daemon.api("GET", "/1.0")["metadata"]["config"]
        assert "core.https_address" not in config
    finally:
        busy.close()


def test_cli_config_trust(daemon: Daemon, tmp_path: Path) -> None:
    """lxmgr config trust add --name (a token) / add FILE / list / remove, on the socket."""
    port = _listen(daemon)
    out = daemon.cli("config", "trust", "add", "--name", "panel").stdout
    token = out.splitlines()[-1]
    assert decode_token(token).client_name == "panel"
    cert = _client_cert(tmp_path, "joiner")
    assert _https(port, "POST", "/1.0/certificates", cert,
                  {"type": "client", "trust_token": token})[0] == 201
    ci_cert, _ = _client_cert(tmp_path, "ci")
    daemon.cli("config", "trust", "add", ci_cert, "--name", "ci")
    listing = daemon.cli("config", "trust", "list", "--format", "csv").stdout
    # lxc 5.0's columns: TYPE, NAME, COMMON NAME, FINGERPRINT, ... (then RESTRICTED, PROJECTS)
    names = sorted(line.split(",")[1] for line in listing.splitlines())
    assert names == ["ci", "panel"]
    prefix = next(line.split(",")[3] for line in listing.splitlines()
                  if line.startswith("client,ci,"))
    daemon.cli("config", "trust", "remove", prefix)
    assert ",ci," not in daemon.cli("config", "trust", "list", "--format", "csv").stdout
    bad = daemon.cli("config", "trust", "add", check=False)
    assert bad.returncode == 1 and "--name" in bad.stderr


def _token_operation(daemon: Daemon, name: str) -> dict[str, Any]:
    running = daemon.api("GET", "/1.0/operations?recursion=1")["metadata"].get("running", [])
    found = [op for op in running
             if op["class"] == "token" and op["metadata"]["request"]["name"] == name]
    assert len(found) == 1, running
    return found[0]


def test_token_is_an_operation_until_used(daemon: Daemon, tmp_path: Path) -> None:
    """As LXD: the token is a running `token` operation (lxc config trust list-tokens reads
    them), shown by id, and it ends (cancelled) once a client joined with it."""
    port = _listen(daemon)
    token = _token(daemon, "panel")
    op = _token_operation(daemon, "panel")
    assert op["may_cancel"] and op["metadata"]["secret"] == decode_token(token).secret
    assert op["metadata"]["addresses"] == [f"127.0.0.1:{port}"]
    urls = daemon.api("GET", "/1.0/operations")["metadata"]["running"]
    assert f"/1.0/operations/{op['id']}" in urls
    shown = daemon.api("GET", f"/1.0/operations/{op['id']}")["metadata"]
    assert (shown["class"], shown["status"]) == ("token", "Running")
    assert _https(port, "POST", "/1.0/certificates", _client_cert(tmp_path, "p"),
                  {"type": "client", "trust_token": token})[0] == 201
    done = daemon.api("GET", f"/1.0/operations/{op['id']}/wait?timeout=10")["metadata"]
    assert done["status"] == "Cancelled"
    running = daemon.api("GET", "/1.0/operations")["metadata"].get("running", [])
    assert f"/1.0/operations/{op['id']}" not in running


def test_deleting_the_token_operation_revokes_it(daemon: Daemon, tmp_path: Path) -> None:
    port = _listen(daemon)
    token = _token(daemon, "revoked")
    op = _token_operation(daemon, "revoked")
    daemon.api("DELETE", f"/1.0/operations/{op['id']}")
    done = daemon.api("GET", f"/1.0/operations/{op['id']}/wait?timeout=10")["metadata"]
    assert done["status"] == "Cancelled"
    status, body = _https(port, "POST", "/1.0/certificates", _client_cert(tmp_path, "r"),
                          {"type": "client", "trust_token": token})
    assert status == 403, body
    assert daemon.api("GET", "/1.0/certificates")["metadata"] == []


def test_token_survives_a_daemon_restart(daemon: Daemon, tmp_path: Path) -> None:
    port = _listen(daemon)
    token = _token(daemon, "later")
    daemon.stop()
    daemon.start()
    op = _token_operation(daemon, "later")
    assert op["metadata"]["addresses"] == [f"127.0.0.1:{port}"]
    assert op["metadata"]["secret"] == decode_token(token).secret
    assert _https(port, "POST", "/1.0/certificates", _client_cert(tmp_path, "l"),
                  {"type": "client", "trust_token": token})[0] == 201


def test_wildcard_address_lists_the_host_addresses(daemon: Daemon) -> None:
    """`:PORT` listens everywhere: the token and GET /1.0 name the host's real addresses
    (not ':PORT', not loopback), as LXD's util.ListenAddresses."""
    from lxmgr.daemon.https import host_addresses, listen_addresses

    port = _free_port()
    daemon.api("PATCH", "/1.0", {"config": {"core.https_address": f":{port}"}})
    try:
        expected = listen_addresses(f":{port}", host_addresses())
        if not expected:
            pytest.skip("the host has no global address")
        meta = daemon.api("POST", "/1.0/certificates",
                          {"name": "wild", "token": True})["metadata"]["metadata"]
        assert meta["addresses"] == expected
        assert decode_token(meta["token"]).addresses == expected
        assert all(not a.startswith(("127.", "[::1]", ":")) for a in expected)
        info = daemon.api("GET", "/1.0")["metadata"]
        assert info["environment"]["addresses"] == expected
    finally:
        daemon.api("PATCH", "/1.0", {"config": {"core.https_address": ""}})
