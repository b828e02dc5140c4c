"""Parent<->child stage messages over a real SOCK_SEQPACKET socketpair."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from lxmgr.runtime import sync


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    parent, child = sync.socketpair()
    with parent, child:
        yield parent, child


def test_socketpair_is_seqpacket_and_not_inherited(
        pair: tuple[socket.socket, socket.socket]) -> None:
    for sock in pair:
        assert sock.type == socket.SOCK_SEQPACKET
        assert not sock.get_inheritable()


def test_stage_with_data(pair: tuple[socket.socket, socket.socket]) -> None:
    parent, child = pair
    sync.send(child, sync.INIT_PID, pid=1234)
    assert sync.recv(parent, sync.INIT_PID) == {"stage": sync.INIT_PID, "pid": 1234}


def test_messages_keep_their_boundaries(pair: tuple[socket.socket, socket.socket]) -> None:
    parent, child = pair
    sync.send(child, sync.UNSHARED)
    sync.send(child, sync.INIT_PID, pid=7)
    assert sync.recv(parent, sync.UNSHARED) == {"stage": sync.UNSHARED}
    assert sync.recv(parent, None)["pid"] == 7


def test_unexpected_stage(pair: tuple[socket.socket, socket.socket]) -> None:
    parent, child = pair
    sync.send(parent, sync.MAPPED)
    with pytest.raises(sync.SyncError, match="sent stage 'mapped', expected 'unshared'"):
        sync.recv(child, sync.UNSHARED)


def test_error_propagates(pair: tuple[socket.socket, socket.socket]) -> None:
    parent, child = pair
    sync.send_error(child, "Failed to mount /proc: Permission denied")
    with pytest.raises(sync.SyncError, match="^Failed to mount /proc: Permission denied$"):
        sync.recv(parent, sync.INIT_PID)
    sync.send_error(child, "boom")
    with pytest.raises(sync.SyncError, match="boom"):
        sync.recv(parent, None)  # errors win even when any stage is accepted


def test_eof() -> None:
    parent, child = sync.socketpair()
    with parent:
        child.close()
        assert sync.recv(parent, None) == {}  # init exec'd: the close-on-exec end went away
        with pytest.raises(sync.SyncError, match="ended before stage 'init-pid'"):
            sync.recv(parent, sync.INIT_PID)


def test_send_error_to_a_closed_peer_is_silent() -> None:
    parent, child = sync.socketpair()
    with child:
        parent.close()
        sync.send_error(child, "nobody listens")
