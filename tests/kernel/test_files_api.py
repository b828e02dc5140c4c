"""The instance files API on a real container: round trips with owner and mode, directories,
symlinks, delete, bad headers, missing paths, the upload cap, and the symlink-swap race
(nothing written to or read from the host while the container exchanges a directory and a
symlink to / under our feet)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.kernel.conftest import exec_out, wait_running

pytestmark = pytest.mark.kernel


@pytest.fixture
async def api(manager, container) -> AsyncIterator[tuple[TestClient, str]]:  # type: ignore[no-untyped-def]
    """The daemon app in-process around the test's manager, and a running container."""
    from lxmgr.daemon.app import create_app
    from lxmgr.instances import files_api

    client = TestClient(TestServer(create_app(manager, background=False)))
    await client.start_server()
    try:
        yield client, container
    finally:
        await client.close()
        files_api.shutdown()


def url(name: str, path: str) -> str:
    return f"/1.0/instances/{name}/files?path={path}"


async def push(client: TestClient, name: str, path: str, data: bytes = b"",
               status: int = 200, **headers: str) -> Any:
    hdrs = {f"X-LXD-{k.replace('_', '-')}": v for k, v in headers.items()}
    resp = await client.post(url(name, path), data=io.BytesIO(data), headers=hdrs)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def pull(client: TestClient, name: str, path: str, status: int = 200) \
        -> tuple[bytes, dict[str, str]]:
    resp = await client.get(url(name, path))
    data = await resp.read()
    assert resp.status == status, data[:200]
    return data, dict(resp.headers)


async def test_file_round_trip_with_owner_and_mode(manager, api) -> None:  # type: ignore[no-untyped-def]
    client, name = api
    data = os.urandom(20 << 20)
    await push(client, name, "/root/big.bin", data, uid="1000", gid="1001", mode="0640")
    back, headers = await pull(client, name, "/root/big.bin")
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    assert (headers["X-LXD-uid"], headers["X-LXD-gid"], headers["X-LXD-mode"],
            headers["X-LXD-type"]) == ("1000", "1001", "0640", "file")
    # The container sees the same owner and mode (ids as it sees them, not host ids).
    _, out, _ = exec_out(manager, name, ["stat", "-c", "%u %g %a %s", "/root/big.bin"])
    assert out.split() == ["1000", "1001", "640", str(20 << 20)]
    await push(client, name, "/root/big.bin", b"tail", write="append")
    back, _ = await pull(client, name, "/root/big.bin")
    assert len(back) == (20 << 20) + 4 and back.endswith(b"tail")
    await push(client, name, "/root/big.bin", b"new")  # overwrite keeps owner and mode
    back, headers = await pull(client, name, "/root/big.bin")
    assert back == b"new" and headers["X-LXD-uid"] == "1000" and headers["X-LXD-mode"] == "0640"
    await push(client, name, "/root/big.bin", b"x", mode="0600", modify_perm="mode")
    assert (await pull(client, name, "/root/big.bin"))[1]["X-LXD-mode"] == "0600"
    resp = await client.head(url(name, "/root/big.bin"))
    assert resp.status == 200 and resp.headers["X-LXD-type"] == "file"


async def test_directories_symlinks_and_delete(manager, api) -> None:  # type: ignore[no-untyped-def]
    client, name = api
    await push(client, name, "/srv/d", type="directory", mode="0750", uid="5")
    await push(client, name, "/srv/d/f", b"hello")
    await push(client, name, "/srv/d/l", b"/etc/hostname", type="symlink")
    body, headers = await pull(client, name, "/srv/d")
    assert headers["X-LXD-type"] == "directory" and headers["X-LXD-mode"] == "0750"
    assert json_of(body)["metadata"] == ["f", "l"]
    target, headers = await pull(client, name, "/srv/d/l")
    assert (target, headers["X-LXD-type"]) == (b"/etc/hostname", "symlink")
    await push(client, name, "/srv/d", type="directory")  # exists: fine
    await push(client, name, "/srv/d/f", type="directory", status=409)
    await push(client, name, "/srv/d/l", b"/nowhere", type="symlink")  # replaced
    assert (await pull(client, name, "/srv/d/l"))[0] == b"/nowhere"
    resp = await client.delete(url(name, "/srv/d"))
    assert resp.status == 409  # not empty
    for path in ("/srv/d/l", "/srv/d/f", "/srv/d"):
        resp = await client.delete(url(name, path))
        assert resp.status == 200, await resp.text()
    code, _, _ = exec_out(manager, name, ["test", "-e", "/srv/d"])
    assert code == 1
    assert (await client.delete(url(name, "/srv/d"))).status == 404


async def test_bad_requests(api) -> None:  # type: ignore[no-untyped-def]
    client, name = api
    for headers in ({"uid": "-1"}, {"uid": "x"}, {"gid": "1.5"}, {"mode": "0999"},
                    {"mode": "17777"}, {"type": "fifo"}, {"write": "prepend"},
                    {"modify_perm": "owner"}):
        await push(client, name, "/tmp/f", b"x", status=400, **headers)
    for raw in ("0644\rX-Evil: 1", "0644\x0bx", "0 644", "0644\r\n foo"):
        assert await raw_post_status(client, url(name, "/tmp/f"), "X-LXD-mode", raw) == 400
    assert (await client.get(f"/1.0/instances/{name}/files")).status == 400
    await pull(client, name, "/does/not/exist", status=404)
    await push(client, name, "/does/not/exist", b"x", status=404)
    await push(client, name, "/", b"x", status=400)
    await pull(client, "nosuch", "/etc/hostname", status=404)


async def raw_post_status(client: TestClient, target: str, key: str, value: str) -> int:
    """POST with a header aiohttp's client refuses to send (control characters)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"POST {target} HTTP/1.1\r\nHost: x\r\n{key}: {value}\r\n"
                 "Content-Length: 1\r\nConnection: close\r\n\r\nx".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    await writer.wait_closed()
    return status


async def test_upload_cap(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, name = api
    monkeypatch.setenv("LXMGR_MAX_FILE_UPLOAD", "1000")
    body = await push(client, name, "/tmp/big", b"x" * 1001, status=413)
    assert "LXMGR_MAX_FILE_UPLOAD" in body["error"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(3):
            yield b"y" * 600
    resp = await client.post(url(name, "/tmp/big2"), data=chunked())
    assert resp.status == 413
    await push(client, name, "/tmp/small", b"x" * 1000)


def json_of(raw: bytes) -> Any:
    import json

    return json.loads(raw)


def server_children() -> list[str]:
    """The pids of the files fork server's live children (a stopped instance's mount
    namespace lives exactly as long as its child)."""
    from lxmgr.instances import files_api

    proc = files_api._SERVER.proc
    assert proc is not None
    for _ in range(50):  # the last child may still be exiting after closing its pipe
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            pids = f.read().split()
        if not pids:
            break
        time.sleep(0.05)
    return pids


# The rootfs kinds a stopped instance can have: an overlay upper over the idmapped image
# (files stored shifted), a dir copy used through an idmapped mount (stored unshifted), and
# a privileged instance (no map).
STOPPED_KINDS = {"overlay": {}, "dir": {"storage": "dir"},
                 "privileged": {"config": {"security.privileged": "true"}}}


@pytest.fixture(params=list(STOPPED_KINDS))
async def stopped_api(manager, request) -> AsyncIterator[tuple[TestClient, str]]:  # type: ignore[no-untyped-def]
    """The daemon app in-process and an instance created but never started."""
    from lxmgr.daemon.app import create_app
    from lxmgr.instances import files_api

    name = f"s{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian", **STOPPED_KINDS[request.param])
    client = TestClient(TestServer(create_app(manager, background=False)))
    await client.start_server()
    try:
        yield client, name
    finally:
        await client.close()
        files_api.shutdown()


async def test_stopped_instance_files(manager, stopped_api) -> None:  # type: ignore[no-untyped-def]
    """Push, pull, mkdir, symlinks and delete before the first start (LXD serves files of
    stopped instances), nothing escaping to the host, owners as the container then sees
    them, nothing left mounted."""
    client, name = stopped_api
    marker = f"lxmgr-canary-{uuid.uuid4().hex[:8]}"
    await push(client, name, "/etc/app.conf", b"key=1\n", uid="1000", gid="1001", mode="0640")
    back, headers = await pull(client, name, "/etc/app.conf")
    assert back == b"key=1\n"
    assert (headers["X-LXD-uid"], headers["X-LXD-gid"], headers["X-LXD-mode"]) == \
        ("1000", "1001", "0640")
    assert (await pull(client, name, "/etc/hostname"))[0] == f"{name}\n".encode()
    # On disk: the host ids the container's map gives (an idmapped tree stores them as is).
    spec = manager.store.get(name)
    idmap = manager._idmap(spec)
    rootfs = manager.pools.driver_for(spec).rootfs_spec(name, manager._image(spec).rootfs, idmap)
    top = rootfs.upper if rootfs.kind == "overlay" else rootfs.source
    st = os.stat(f"{top}/etc/app.conf")
    shifted = idmap is not None and not (rootfs.kind == "bind" and rootfs.idmap_lower)
    assert (st.st_uid, st.st_gid) == ((idmap.host_uid(1000), idmap.host_gid(1001))
                                      if shifted else (1000, 1001)), rootfs
    _, headers = await pull(client, name, "/etc/passwd")  # from the image: root's
    assert headers["X-LXD-uid"] == "0"
    await push(client, name, "/srv/d", type="directory", mode="0750", uid="33")
    await push(client, name, "/srv/d/l", b"/etc/app.conf", type="symlink")
    await push(client, name, "/srv/d/l", b"more\n", write="append")  # through the link
    assert (await pull(client, name, "/etc/app.conf"))[0] == b"key=1\nmore\n"
    # Links aimed at the host's /etc stay in the instance's root.
    await push(client, name, "/srv/up", b"../../../../../../../../../etc", type="symlink")
    await push(client, name, f"/srv/up/{marker}", b"inside")
    assert not os.path.exists(f"/etc/{marker}")
    assert (await pull(client, name, f"/etc/{marker}"))[0] == b"inside"
    await push(client, name, f"/srv/abs/{marker}", b"x", status=404)  # no such dir inside
    await push(client, name, "/srv/abs", b"/etc", type="symlink")
    await push(client, name, f"/srv/abs/{marker}", b"again")
    assert not os.path.exists(f"/etc/{marker}")
    for path in (f"/etc/{marker}", "/srv/abs", "/srv/up"):
        assert (await client.delete(url(name, path))).status == 200
    await pull(client, name, f"/etc/{marker}", status=404)
    assert server_children() == []
    await asyncio.to_thread(manager.start, name)
    assert wait_running(manager, name) == "running"
    _, out, _ = exec_out(manager, name, ["stat", "-c", "%u %g %a", "/etc/app.conf", "/srv/d"])
    assert out.split() == ["1000", "1001", "640", "33", "0", "750"]
    _, out, _ = exec_out(manager, name, ["cat", "/srv/d/l"])
    assert out == "key=1\nmore\n"


def host_canaries(marker: str) -> list[str]:
    """Host paths a write escaping the container could land on."""
    return [f"{d}/{marker}" for d in ("/", "/tmp", "/root")] + \
        [f"{d}/file" for d in ("/", "/tmp", "/root")]


async def test_symlink_swap_race(manager, api) -> None:  # type: ignore[no-untyped-def]
    """A loop in the container swaps d for a symlink to / while we push and pull d/file."""
    client, name = api
    marker = f"lxmgr-race-{uuid.uuid4().hex}"
    secret = f"HOST-SECRET-{uuid.uuid4().hex}".encode()
    planted = f"/tmp/{marker}.host"
    assert not any(os.path.lexists(p) for p in host_canaries(marker))
    with open(planted, "wb") as f:
        f.write(secret)
    os.symlink(planted, f"/tmp/{marker}.lnk")
    script = (f"mkdir -p /race/d && cd /race && ln -sf /tmp/{marker}.host d/file && "
              "while true; do mv d d.x; ln -s / d; rm d; mv d.x d; done")
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        handle, pid, _ = manager.exec_start(name, ["sh", "-c", script], [devnull] * 3)
    finally:
        os.close(devnull)
    try:
        deadline = time.monotonic() + 50
        rounds = 0
        while rounds < 1000 and time.monotonic() < deadline:
            ok = (await client.post(url(name, f"/race/d/{marker}"), data=b"pushed")).status
            assert ok in (200, 404, 409)
            for path in (f"/race/d/{marker}", "/race/d/file", f"/race/d/tmp/{marker}.host"):
                resp = await client.get(url(name, path))
                assert secret not in await resp.read()
            rounds += 1
        assert rounds >= 200, rounds
    finally:
        os.kill(pid, signal.SIGKILL)  # the loop we started, by its host pid
        manager.exec_wait(handle)
        os.unlink(planted)
        os.unlink(f"/tmp/{marker}.lnk")
    assert not any(os.path.lexists(p) for p in host_canaries(marker))


async def cli(sock: str, *args: str, stdin: bytes | None = None) -> Any:
    """Run `lxmgr --socket SOCK ARGS` in a thread (the daemon shares this loop)."""
    from click.testing import CliRunner

    from lxmgr.cli.main import cli as root

    result = await asyncio.to_thread(CliRunner().invoke, root, ["--socket", sock, *args],
                                     input=stdin)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


async def test_cli_recursive_push_pull_edit_delete(manager, container, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aiohttp import web

    from lxmgr.daemon.app import create_app
    from lxmgr.instances import files_api

    sock = f"{os.environ['LXMGR_DIR']}/files.sock"
    runner = web.AppRunner(create_app(manager, background=False))
    await runner.setup()
    await web.UnixSite(runner, sock).start()
    try:
        src = tmp_path / "site"
        (src / "sub").mkdir(parents=True)
        (src / "index.html").write_bytes(b"<h1>hi</h1>")
        (src / "sub" / "run.sh").write_bytes(b"#!/bin/sh\n")
        (src / "sub" / "run.sh").chmod(0o750)
        (src / "link").symlink_to("index.html")
        await cli(sock, "file", "push", "-r", "-p", "--uid", "33", str(src),
                  f"{container}/srv/www/")
        _, out, _ = exec_out(manager, container, ["stat", "-c", "%n %u %a %F",
                                                  "/srv/www/site/sub/run.sh",
                                                  "/srv/www/site/link"])
        assert out.splitlines() == ["/srv/www/site/sub/run.sh 33 750 regular file",
                                    "/srv/www/site/link 33 777 symbolic link"]
        await cli(sock, "file", "pull", "-r", f"{container}/srv/www/site", str(tmp_path / "back"))
        back = tmp_path / "back"
        assert (back / "index.html").read_bytes() == b"<h1>hi</h1>"
        assert (back / "sub" / "run.sh").stat().st_mode & 0o777 == 0o750
        assert os.readlink(back / "link") == "index.html"
        await cli(sock, "file", "edit", f"{container}/srv/www/site/index.html", stdin=b"new")
        result = await cli(sock, "file", "pull", f"{container}/srv/www/site/index.html", "-")
        assert result.stdout_bytes == b"new"
        await cli(sock, "file", "delete", f"{container}/srv/www/site/link")
        code, _, _ = exec_out(manager, container, ["test", "-L", "/srv/www/site/link"])
        assert code == 1
    finally:
        await runner.cleanup()
        files_api.shutdown()


async def test_cli_push_pull_on_stopped_instance(manager, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aiohttp import web

    from lxmgr.daemon.app import create_app
    from lxmgr.instances import files_api

    name = f"s{uuid.uuid4().hex[:8]}"
    manager.create(name, "debian")
    sock = f"{os.environ['LXMGR_DIR']}/files.sock"
    runner = web.AppRunner(create_app(manager, background=False))
    await runner.setup()
    await web.UnixSite(runner, sock).start()
    try:
        src = tmp_path / "motd"
        src.write_bytes(b"hello\n")
        await cli(sock, "file", "push", "--uid", "7", "--mode", "0600", str(src),
                  f"{name}/etc/motd")
        result = await cli(sock, "file", "pull", f"{name}/etc/motd", "-")
        assert result.stdout_bytes == b"hello\n"
        await cli(sock, "file", "pull", f"{name}/etc/motd", str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == b"hello\n"
        assert server_children() == []
        await asyncio.to_thread(manager.start, name)
        assert wait_running(manager, name) == "running"
        _, out, _ = exec_out(manager, name, ["stat", "-c", "%u %a", "/etc/motd"])
        assert out.split() == ["7", "600"]
    finally:
        await runner.cleanup()
        files_api.shutdown()
