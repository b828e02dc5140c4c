#!/usr/bin/env python3
"""One TCP bulk transfer between a Python end (this file) and a perl end (perl_argv()).

The perl end always listens (in a container through exec, or on 127.0.0.1 for the loopback
reference) and this end always connects, so no port is ever opened towards a bridge on the
host. Run as a script so the benchmark can start it inside another network namespace:

    python3 bench/tcp_pair.py send HOST PORT SECONDS   # 64 KiB sendall for SECONDS, then EOF
    python3 bench/tcp_pair.py recv HOST PORT SECONDS   # read SECONDS from the first byte, close
    python3 bench/tcp_pair.py probe HOST PORT SECONDS  # until HOST refuses a connect to PORT

Both print one JSON line {"bytes": N, "seconds": S}. `send` times from connect until the perl
receiver has read everything and closed (so the bytes still queued count); `recv` times from
the first byte to the last read. `probe` connects every 20 ms to a port where nothing listens
until the kernel answers with a reset (the address is up in the container and the path through
the bridge works) and prints {"at": time.monotonic()} (one clock for every process here).
Imports only the stdlib.
"""

from __future__ import annotations

import json
import socket
import sys
import time

CHUNK = 64 * 1024
CONNECT_TIMEOUT = 20.0  # the perl end is started through exec just before


def perl_argv(mode: str, port: int, bind: str = "0.0.0.0") -> list[str]:
    """The perl end (the image has perl, not iperf3): `recv` counts bytes until EOF, `send`
    writes 64 KiB chunks until the peer closes; both print the byte count."""
    listen = (f"$s=IO::Socket::INET->new(LocalAddr=>'{bind}',LocalPort=>{port},Listen=>1,"
              "ReuseAddr=>1) or die \"listen: $!\"; $c=$s->accept; close $s; $n=0; ")
    if mode == "recv":
        body = "while (($r=sysread($c,$b,65536))>0) { $n+=$r } print \"$n\\n\"; close $c"
    else:
        body = ("$SIG{PIPE}='IGNORE'; $b='x' x 65536; "
                "while (($w=syswrite($c,$b))>0) { $n+=$w } print \"$n\\n\"")
    return ["perl", "-MIO::Socket::INET", "-e", listen + body]


def connect(host: str, port: int) -> socket.socket:
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            return socket.create_connection((host, port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def send(host: str, port: int, seconds: float) -> dict[str, float]:
    payload = b"x" * CHUNK
    sent = 0
    with connect(host, port) as conn:
        conn.settimeout(60)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            conn.sendall(payload)
            sent += CHUNK
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(CHUNK):  # the receiver closes once it has read everything
            pass
        elapsed = time.perf_counter() - t0
    return {"bytes": sent, "seconds": elapsed}


def recv(host: str, port: int, seconds: float) -> dict[str, float]:
    buf = bytearray(CHUNK)
    got = 0
    with connect(host, port) as conn:
        conn.settimeout(60)
        n = conn.recv_into(buf)
        t0 = last = time.perf_counter()
        while n and last - t0 < seconds:
            n = conn.recv_into(buf)
            got += n
            last = time.perf_counter()
    # the first read started the clock: count what came after it
    return {"bytes": got, "seconds": last - t0}


def probe(host: str, port: int, seconds: float) -> dict[str, float]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.05):
                pass
            return {"at": time.monotonic(), "listening": 1}  # something listens: also up
        except ConnectionRefusedError:
            return {"at": time.monotonic()}
        except OSError:  # no answer yet (ARP unresolved, unreachable)
            time.sleep(0.02)
    raise TimeoutError(f"{host} did not answer on port {port} within {seconds:.0f} s")


def main(argv: list[str]) -> int:
    mode, host, port, seconds = argv[0], argv[1], int(argv[2]), float(argv[3])
    result = {"send": send, "recv": recv, "probe": probe}[mode](host, port, seconds)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
