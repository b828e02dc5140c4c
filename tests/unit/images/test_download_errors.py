"""Why a simplestreams request failed, in words: no Python reprs, and which failures mean the
server cannot be reached at all (the rest are answered by a server that misbehaves)."""

from __future__ import annotations

import socket
import ssl

import aiohttp
import pytest

from lxmgr.images import download


@pytest.mark.parametrize(("err", "said"), [
    (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"), "Connection refused"),
    (socket.gaierror(-2, "Name or service not known"), "Name or service not known"),
    (socket.gaierror(-3, "Temporary failure in name resolution"),
     "Temporary failure in name resolution"),
    (OSError(101, "Network is unreachable"), "Network is unreachable"),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS error"),
])
def test_os_reasons_are_words(err: OSError, said: str) -> None:
    assert download._os_reason(err).startswith(said)
    assert "(" not in said and "'" not in download._os_reason(err)


def test_timeouts_and_payload_errors() -> None:
    assert download._describe(TimeoutError()) == "timed out"
    assert download._describe(aiohttp.ClientPayloadError("Response ended at 3 of 9 bytes")) \
        == "Response ended at 3 of 9 bytes"
    assert not download._unreachable(TimeoutError())  # a read that stalled
    assert not download._unreachable(aiohttp.ClientPayloadError("cut"))
    assert download._unreachable(aiohttp.ConnectionTimeoutError("connect timed out"))
