"""Shared helpers of the network kernel tests: run a body in a private network namespace,
query a DNS server, build a bridge network.

The `netns` fixture runs a function in a forked child that first unshares CLONE_NEWNET, so
the links, nft tables and sockets it makes exist only there and vanish with it; dnsmasq
(which would keep the namespace alive) is stopped by the body, and the parent kills any
dnsmasq still naming the test's private state dir. Import the fixture with
`from tests.kernel.netns_helpers import netns_fixture  # noqa: F401`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import signal
import socket
import struct
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lxmgr.linux import consts, libc

NFT, DNSMASQ = "/usr/sbin/nft", "/usr/sbin/dnsmasq"


@pytest.fixture(name="netns")
def netns_fixture(monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[Callable[[Callable[[], object]], object]]:
    """Run a function in a forked child inside a fresh network namespace; return its result."""
    for tool in (NFT, DNSMASQ):
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} is not installed")
    root = Path(f"/tmp/lxmt-{uuid.uuid4().hex[:8]}")
    root.mkdir(mode=0o755)
    monkeypatch.setenv("LXMGR_DIR", str(root))

    def run(body: Callable[[], object]) -> object:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            os.close(rfd)
            code = 0
            try:
                from lxmgr.linux import consts, libc
                from lxmgr.net import links

                libc.unshare(consts.CLONE_NEWNET)
                links.set_up("lo")
                result: object = ("ok", body())
            except BaseException:  # noqa: B036 - report everything to the parent
                result, code = ("error", traceback.format_exc()), 1
            with os.fdopen(wfd, "wb") as out:
                out.write(pickle.dumps(result))
            os._exit(code)
        os.close(wfd)
        data = b""
        with os.fdopen(rfd, "rb") as inp:
            while select.select([inp], [], [], 90)[0]:
                chunk = inp.read()
                if not chunk:
                    break
                data += chunk
        os.waitpid(pid, 0)
        kind, value = pickle.loads(data) if data else ("error", "child died silently")
        if kind == "error":
            pytest.fail(f"in the network namespace:\n{value}")
        return value

    try:
        yield run
    finally:
        kill_our_dnsmasq(root)
        shutil.rmtree(root, ignore_errors=True)


def kill_our_dnsmasq(root: Path) -> None:
    """Safety net: SIGKILL any dnsmasq whose argv names our private state dir."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if argv.startswith(DNSMASQ.encode()) and str(root).encode() + b"/" in argv:
            os.kill(int(entry), signal.SIGKILL)


def dns_query(server: str, name: str) -> list[str]:
    """A records for name from server:53 over UDP (a minimal stdlib resolver)."""
    qid = int.from_bytes(os.urandom(2), "big")
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(packet, (server, 53))
        reply = sock.recv(1500)
    rid, _flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert rid == qid and qd == 1
    pos = 12 + len(question) + 4
    out = []
    for _ in range(an):
        pos += 2 if reply[pos] & 0xC0 else reply.index(b"\0", pos) + 1 - pos
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", reply[pos:pos + 10])
        pos += 10
        if rtype == 1:
            out.append(socket.inet_ntoa(reply[pos:pos + 4]))
        pos += length
    return out


def new_network(name: str, config: dict[str, str]):  # type: ignore[no-untyped-def]
    from lxmgr.net.base import load

    cls = load("bridge")
    return cls(name, cls.plan_config(name, config, others={}))


@contextlib.contextmanager
def standin_container(serve: Callable[[int], None] | None = None,
                      settle: float = 0.0) -> Iterator[int]:
    """A forked child alone in a new network namespace standing in for a container's PID 1;
    yields its pid. `serve(hold_fd)` runs in the child after unshare (else it just waits on
    hold_fd); the child ends when we close the pipe, and is killed by pid at the end."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(ready_r)
            os.close(hold_w)
            libc.unshare(consts.CLONE_NEWNET)
            os.write(ready_w, b"1")
            if serve is None:
                os.read(hold_r, 1)
            else:
                serve(hold_r)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        assert os.read(ready_r, 1) == b"1", "the stand-in container failed to start"
        time.sleep(settle)
        yield pid
    finally:
        os.close(ready_r)
        os.close(hold_w)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
