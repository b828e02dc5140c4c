"""Control-socket messages: JSON framing and descriptors passed with SCM_RIGHTS."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from lxmgr.supervisor import protocol


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        yield a, b


def test_encode_decode() -> None:
    msg = {"cmd": protocol.EXEC, "argv": ["sh", "-c", "echo é"], "pty": True}
    raw = protocol.encode(msg)
    assert b" " not in raw.replace(b"echo ", b"")  # compact separators
    assert protocol.decode(raw) == msg


def test_decode_refuses_non_objects() -> None:
    with pytest.raises(ValueError, match="not an object"):
        protocol.decode(b"[1, 2]")
    with pytest.raises(ValueError):
        protocol.decode(b"{truncated")


def test_send_recv_without_fds(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    protocol.send(a, {"cmd": protocol.GET_STATE})
    assert protocol.recv(b) == ({"cmd": protocol.GET_STATE}, [])


def test_send_recv_passes_fds(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    r, w = os.pipe()
    try:
        protocol.send(a, {"cmd": protocol.EXEC, "argv": ["true"]}, [w, w, w])
        msg, fds = protocol.recv(b)
        assert msg == {"cmd": protocol.EXEC, "argv": ["true"]}
        assert len(fds) == 3 and w not in fds
        try:
            os.write(fds[1], b"hello")
            assert os.read(r, 5) == b"hello"
        finally:
            for fd in fds:
                os.close(fd)
    finally:
        os.close(r)
        os.close(w)


def test_recv_eof() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with b:
        a.close()
        assert protocol.recv(b) == (None, [])


def test_commands_are_unique() -> None:
    assert len(set(protocol.COMMANDS)) == len(protocol.COMMANDS)
