"""Trust tokens as LXD encodes them, certificate loading and fingerprints."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from lxmgr.api.certificate import (
    TrustToken,
    decode_token,
    fingerprint,
    generate_certificate,
    load_certificate,
)
from lxmgr.errors import InvalidConfig


def test_token_round_trip_is_base64_json() -> None:
    token = TrustToken("web-panel", "ab" * 32, ["10.0.0.1:8443"], "s3cret",
                       "2030-01-01T00:00:00Z")
    body = json.loads(base64.b64decode(token.encode()))
    assert set(body) == {"client_name", "fingerprint", "addresses", "secret", "expires_at"}
    assert decode_token(token.encode()) == token


def test_token_without_expiry_uses_go_zero_time() -> None:
    token = TrustToken("c", "f", [], "s")
    assert json.loads(base64.b64decode(token.encode()))["expires_at"].startswith("0001-")
    assert decode_token(token.encode()).expires_at == ""


@pytest.mark.parametrize("text", ["not a token", base64.b64encode(b"[1]").decode(),
                                  base64.b64encode(b'{"secret": ""}').decode()])
def test_bad_tokens_are_refused(text: str) -> None:
    with pytest.raises(InvalidConfig):
        decode_token(text)


def test_certificate_forms_and_fingerprint() -> None:
    pem, _key = generate_certificate("client", ["localhost", "127.0.0.1"], client=True)
    cert = load_certificate(pem)
    der = base64.b64decode("".join(pem.decode().splitlines()[1:-1]))
    assert fingerprint(cert) == hashlib.sha256(der).hexdigest() == fingerprint(der)
    assert fingerprint(load_certificate(der)) == fingerprint(cert)
    assert fingerprint(load_certificate(base64.b64encode(der).decode())) == fingerprint(cert)
    with pytest.raises(InvalidConfig):
        load_certificate("garbage")
