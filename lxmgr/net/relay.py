"""`python -S -m lxmgr.net.relay SPEC.json PID`: the port-forward relay of one container
(LXD's forkproxy), serving every proxy device without nat=true.

It listens in the HOST network namespace (the one it starts in) on each device's listen
address, and opens every outgoing socket INSIDE the network namespace of PID (the
container's PID 1). A network namespace switch is per thread on Linux and a socket stays in
the namespace it was created in, so one worker thread setns()es into the container once and
creates the sockets there; the event loop in the main thread connects them and relays bytes
both ways. TCP: one outgoing connection per accepted one, half-closes passed on. UDP: one
outgoing socket per client address, closed after UDP_IDLE seconds without traffic.

The supervisor starts it after each boot and SIGTERMs it when the container ends; it also
exits by itself when PID exits (a pidfd in the loop), so it never outlives its container.
It belongs to the supervisor, not the daemon: port forwards survive daemon restarts.
Exit status: 0 after SIGTERM or PID's end, 1 when a listen address is taken or PID is gone
(one line on stderr naming the device), 2 for bad usage. Imports asyncio, lxmgr.net.proxy
and lxmgr.linux only (no pyroute2): it sits on the container's start path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import select
import signal
import socket
import sys
import time
from typing import Any, cast

from lxmgr.errors import KernelError, LxmgrError, NotFound
from lxmgr.linux import consts as c
from lxmgr.linux import libc
from lxmgr.net.proxy import ProxySpec, bind_listener, family_of

log = logging.getLogger("lxmgr.net.relay")

USAGE = "usage: python -m lxmgr.net.relay SPEC.json PID"
CONNECT_TIMEOUT = 10.0  # seconds for a connection inside the container to be accepted
CHUNK = 64 * 1024
UDP_IDLE = 60.0  # seconds a UDP session lives without a datagram either way
UDP_PENDING = 64  # datagrams queued per client while its session opens


class Netns:
    """One worker thread inside a network namespace that creates sockets there."""

    def __init__(self, nsfd: int) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="netns", initializer=libc.setns,
            initargs=(nsfd, c.CLONE_NEWNET))
        try:
            inside = self.pool.submit(os.stat, "/proc/thread-self/ns/net").result().st_ino
        except (concurrent.futures.BrokenExecutor, OSError) as err:
            self.pool.shutdown(wait=False)
            raise KernelError(f"Failed to enter the container's network namespace: "
                              f"{err}") from err
        if inside != os.fstat(nsfd).st_ino:
            self.pool.shutdown(wait=False)
            raise KernelError("Failed to enter the container's network namespace")

    async def socket(self, family: int, kind: int) -> socket.socket:
        """A non-blocking socket of the container's namespace (connect it from any thread:
        the namespace of a socket is fixed when it is created)."""
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(self.pool, socket.socket, family, kind)
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Relay:
    """Serves a list of proxy devices for one container."""

    def __init__(self, specs: list[ProxySpec], listeners: list[socket.socket], netns: Netns,
                 pidfd: int) -> None:
        self.specs = specs
        self.listeners = listeners
        self.netns = netns
        self.pidfd = pidfd
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Relay until SIGTERM/SIGINT or the container's PID 1 exits."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        loop.add_reader(self.pidfd, self._on_pid_exit)
        servers: list[Any] = []
        for spec, sock in zip(self.specs, self.listeners, strict=True):
            if spec.listen_proto == "tcp":
                servers.append(await asyncio.start_server(
                    lambda r, w, s=spec: self._spawn(self._tcp(s, r, w)), sock=sock))
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda s=spec: UdpListener(self, s), sock=sock)
                servers.append(transport)
            log.info("Relaying %s", spec.describe())
        await self.stop.wait()
        for server in servers:
            server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _on_pid_exit(self) -> None:
        log.info("Container process exited: stopping the relay")
        asyncio.get_running_loop().remove_reader(self.pidfd)
        self.stop.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def open(self, spec: ProxySpec) -> socket.socket:
        """A socket connected to spec's connect address inside the container."""
        kind = socket.SOCK_STREAM if spec.connect_proto == "tcp" else socket.SOCK_DGRAM
        sock = await self.netns.socket(family_of(spec.connect_addr), kind)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
                sock, (spec.connect_addr, spec.connect_port)), CONNECT_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _tcp(self, spec: ProxySpec, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
        try:
            sock = await self.open(spec)
            up_reader, up_writer = await asyncio.open_connection(sock=sock)
        except (OSError, TimeoutError) as err:
            log.warning("Proxy '%s': could not connect to %s: %s", spec.device, spec.connect,
                        err)
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (a client's shutdown(SHUT_WR)
    reaches the server, whose answer still comes back)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


class UdpListener(asyncio.DatagramProtocol):
    """The host side of one UDP device: a session per client address."""

    def __init__(self, relay: Relay, spec: ProxySpec) -> None:
        self.relay = relay
        self.spec = spec
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[Any, UdpSession] = {}
        self.sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport does not subclass DatagramTransport: no isinstance)
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._schedule_sweep()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        session = self.sessions.get(addr)
        if session is None:
            session = self.sessions[addr] = UdpSession(self, addr)
            self.relay._spawn(session.open())
        session.send(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        for session in list(self.sessions.values()):
            session.close()

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self.sweeper = loop.call_later(UDP_IDLE / 4, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if now - session.active > UDP_IDLE:
                session.close()
        self._schedule_sweep()

    def reply(self, data: bytes, addr: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


class UdpSession(asyncio.DatagramProtocol):
    """One client address: a connected socket inside the container, replies sent back."""

    def __init__(self, listener: UdpListener, client: Any) -> None:
        self.listener = listener
        self.client = client
        self.active = time.monotonic()
        self.pending: list[bytes] | None = []  # None once the socket is open
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = False

    async def open(self) -> None:
        spec = self.listener.spec
        try:
            sock = await self.listener.relay.open(spec)
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=sock)
        except (OSError, TimeoutError) as err:
            log.warning("Proxy '%s': could not open %s: %s", spec.device, spec.connect, err)
            self.close()
            return
        if self.closed:  # idle-swept or shut down while opening
            self.close()
            return
        for data in self.pending or []:
            cast(asyncio.DatagramTransport, self.transport).sendto(data)
        self.pending = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def send(self, data: bytes) -> None:
        self.active = time.monotonic()
        if self.pending is not None:
            if len(self.pending) < UDP_PENDING:
                self.pending.append(data)
        elif self.transport is not None:
            self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.active = time.monotonic()
        self.listener.reply(data, self.client)

    def error_received(self, exc: Exception) -> None:
        log.debug("Proxy '%s': %s", self.listener.spec.device, exc)  # ICMP unreachable

    def close(self) -> None:
        self.closed = True
        if self.listener.sessions.get(self.client) is self:
            del self.listener.sessions[self.client]
        if self.transport is not None:
            self.transport.close()


# -- setup -----------------------------------------------------------------------------------


def read_specs(path: str) -> list[ProxySpec]:
    """The relayed devices of SPEC.json (a JSON list of ProxySpec dicts); nat ones skipped."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ValueError("expected a JSON list of objects")
    return [spec for spec in map(ProxySpec.from_dict, data) if not spec.nat]


def open_container(pid: int) -> tuple[int, int]:
    """(pidfd, netns fd) of pid; NotFound when it is gone. The pidfd is taken first and
    checked after: the namespace then surely is that process's, not a recycled pid's."""
    try:
        pidfd = libc.pidfd_open(pid)
    except ProcessLookupError as err:
        raise NotFound(f"Container process {pid} not found") from err
    try:
        nsfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        os.close(pidfd)
        raise NotFound(f"Container process {pid} not found: {err.strerror}") from err
    if select.select([pidfd], [], [], 0)[0]:
        os.close(nsfd)
        os.close(pidfd)
        raise NotFound(f"Container process {pid} exited")
    return pidfd, nsfd


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s lxmgr-relay[{os.getpid()}]: "
                               "%(message)s")
    try:
        specs = read_specs(argv[0])
    except (OSError, ValueError, TypeError, LxmgrError) as err:
        print(f"Failed to read proxy specs '{argv[0]}': {err}", file=sys.stderr)
        return 1
    if not specs:
        return 0
    with contextlib.suppress(OSError):
        libc.set_process_name("lxmgr-relay")
    listeners: list[socket.socket] = []
    try:
        pidfd, nsfd = open_container(int(argv[1]))
        for spec in specs:  # every port before serving any: all or nothing
            listeners.append(bind_listener(spec))
        netns = Netns(nsfd)
    except LxmgrError as err:
        print(err, file=sys.stderr)
        for sock in listeners:
            sock.close()
        return 1
    try:
        asyncio.run(Relay(specs, listeners, netns, pidfd).run())
    finally:
        netns.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
