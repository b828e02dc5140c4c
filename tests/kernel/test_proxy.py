"""The proxy relay on the real kernel, without a real container: a forked child alone in a
private network namespace (only `lo`, up) stands in for the container's PID 1 and echoes
TCP and UDP on 127.0.0.1:80 there. The relay listens on the host's loopback at a free port
(never 0.0.0.0); nothing leaves the machine. Every process is started here and killed by
its pid."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxmgr import paths
from lxmgr.errors import Conflict
from lxmgr.net.proxy import ProxySpec, check_listen_free
from tests.kernel.netns_helpers import standin_container

pytestmark = pytest.mark.kernel

SIOCGIFFLAGS = 0x8913  # linux/sockios.h
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _lo_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _echo_forever(hold: int) -> None:  # pragma: no cover - runs in the child
    """TCP and UDP echo on 127.0.0.1:80 until the hold pipe closes."""
    sel = selectors.DefaultSelector()
    tcp = socket.create_server(("127.0.0.1", 80))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 80))
    sel.register(tcp, selectors.EVENT_READ, "accept")
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(hold, selectors.EVENT_READ, "hold")
    while True:
        for key, _ in sel.select():
            if key.data == "hold":
                return
            if key.data == "accept":
                conn, _ = tcp.accept()
                sel.register(conn, selectors.EVENT_READ, "conn")
            elif key.data == "udp":
                data, addr = udp.recvfrom(65536)
                udp.sendto(b"udp:" + data, addr)
            else:
                conn = key.fileobj
                data = conn.recv(65536)  # type: ignore[union-attr]
                if data:
                    conn.sendall(data)  # type: ignore[union-attr]
                else:  # the client half-closed: answer once more, then close
                    conn.sendall(b"bye")  # type: ignore[union-attr]
                    sel.unregister(conn)
                    conn.close()  # type: ignore[union-attr]


def _serve(hold: int) -> None:  # pragma: no cover - runs in the child
    _lo_up()
    _echo_forever(hold)


def fake_container() -> contextlib.AbstractContextManager[int]:
    """A stand-in container in a new network namespace serving the echoes."""
    # The echo sockets bind right after the ready byte: give them a moment.
    return standin_container(_serve, settle=0.05)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spec(proto: str, port: int, device: str = "web") -> ProxySpec:
    return ProxySpec(device, proto, "127.0.0.1", port, proto, "127.0.0.1", 80)


@contextlib.contextmanager
def relay(tmp_path: Path, specs: list[ProxySpec], pid: int) -> Iterator[subprocess.Popen[str]]:
    """The relay as the supervisor runs it; killed by its pid at the end."""
    path = tmp_path / f"proxies-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps([s.to_dict() for s in specs]))
    proc = subprocess.Popen(
        [sys.executable, "-S", "-m", "lxmgr.net.relay", str(path), str(pid)],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": paths.child_pythonpath()})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to the relay, retried while it starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def recv_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_tcp_is_relayed_into_the_namespace_with_half_close(tmp_path: Path) -> None:
    port = free_port()
    with fake_container() as pid, relay(tmp_path, [spec("tcp", port)], pid) as proc:
        with connect(port) as a, connect(port) as b:
            a.sendall(b"hello")
            b.sendall(b"x" * 300_000)
            assert a.recv(100) == b"hello"
            a.shutdown(socket.SHUT_WR)  # EOF reaches the server, its answer still comes
            assert recv_all(a) == b"bye"
            b.shutdown(socket.SHUT_WR)
            assert recv_all(b) == b"x" * 300_000 + b"bye"
        assert proc.poll() is None


def test_udp_sessions_per_client(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with fake_container() as pid, relay(tmp_path, [spec("udp", port)], pid):
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        try:
            for n, client in enumerate(clients):
                client.settimeout(0.2)
                deadline = time.monotonic() + 10
                while True:  # datagrams sent before the relay binds are lost: resend
                    client.sendto(b"ping%d" % n, ("127.0.0.1", port))
                    try:
                        data, addr = client.recvfrom(100)
                        break
                    except TimeoutError:
                        assert time.monotonic() < deadline, "no UDP answer through the relay"
                assert (data, addr) == (b"udp:ping%d" % n, ("127.0.0.1", port))
        finally:
            for client in clients:
                client.close()


def test_tcp_and_udp_devices_in_one_relay(tmp_path: Path) -> None:
    tport, uport = free_port(), free_port(socket.SOCK_DGRAM)
    with fake_container() as pid, \
            relay(tmp_path, [spec("tcp", tport, "t"), spec("udp", uport, "u")], pid):
        with connect(tport) as conn:
            conn.sendall(b"both")
            assert conn.recv(100) == b"both"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"dgram", ("127.0.0.1", uport))
            assert client.recvfrom(100)[0] == b"udp:dgram"


def test_refused_connection_inside_closes_the_client_only(tmp_path: Path) -> None:
    port = free_port()
    nothing = ProxySpec("web", "tcp", "127.0.0.1", port, "tcp", "127.0.0.1", 81)
    with fake_container() as pid, relay(tmp_path, [nothing], pid) as proc:
        with connect(port) as conn:
            assert recv_all(conn) == b""
        assert proc.poll() is None


def test_relay_exits_when_the_container_process_dies(tmp_path: Path) -> None:
    port = free_port()
    with fake_container() as pid, relay(tmp_path, [spec("tcp", port)], pid) as proc:
        connect(port).close()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert proc.wait(timeout=10) == 0
        check_listen_free(spec("tcp", port))  # the port is free again


def test_relay_exits_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    with fake_container() as pid, relay(tmp_path, [spec("tcp", port)], pid) as proc:
        held = connect(port)  # an open connection does not keep it alive
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        held.close()


def test_second_relay_on_the_same_port_is_refused(tmp_path: Path) -> None:
    port = free_port()
    with fake_container() as pid, relay(tmp_path, [spec("tcp", port)], pid) as first:
        connect(port).close()
        with pytest.raises(Conflict, match="already in use"):
            check_listen_free(spec("tcp", port, "other"))
        with relay(tmp_path, [spec("tcp", port, "other")], pid) as second:
            _, err = second.communicate(timeout=10)
            assert second.returncode == 1
            assert f"Proxy 'other': tcp:127.0.0.1:{port} is already in use" in err
        assert first.poll() is None


def test_relay_refuses_a_missing_process(tmp_path: Path) -> None:
    with fake_container() as pid:
        pass  # reaped: the pid is gone
    with relay(tmp_path, [spec("tcp", free_port())], pid) as proc:
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert f"Container process {pid}" in err


def test_udp_listen_in_use_is_a_conflict() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(Conflict, match=f"udp:127.0.0.1:{port} is already in use"):
            check_listen_free(spec("udp", port))


ECHO = ("use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1:8000', "
        "Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { "
        "while (my $l = <$c>) { print $c \"echo:$l\" } close $c }")


def test_real_container_port_forward(manager, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A booted container (no NIC: the relay reaches its loopback) with a proxy device;
    the relay comes with the boot and goes with the stop."""
    from tests.kernel.conftest import exec_out, wait_running

    port = free_port()
    device = {"type": "proxy", "listen": f"tcp:127.0.0.1:{port}",
              "connect": "tcp:127.0.0.1:8000"}
    manager.create("px1", "debian", devices={"web": device})
    with socket.socket() as squatter:  # a port in use on the host: refused, nothing started
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(Conflict, match=f"Proxy 'web': tcp:127.0.0.1:{port} is already"):
            manager.start("px1")
    assert not manager.is_running("px1")
    manager.start("px1")
    wait_running(manager, "px1")
    code, _, err = exec_out(manager, "px1", [  # $0: the script, untouched by sh
        "sh", "-c", 'perl -e "$0" >/dev/null 2>&1 </dev/null &', ECHO])
    assert code == 0, err
    deadline = time.monotonic() + 20
    while True:
        with connect(port) as conn:
            conn.sendall(b"hi\n")
            conn.settimeout(5)
            answer = recv_line(conn)
        if answer == b"echo:hi\n" or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the perl server is not listening yet: the relay closed on us
    assert answer == b"echo:hi\n"
    manager.stop("px1", force=True)
    check_listen_free(spec("tcp", port))  # the relay went with the container


def recv_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and (chunk := conn.recv(100)):
        data += chunk
    return data
