"""PURE trust material shared by the daemon and the client: LXD's certificate add token
(`shared/api/certificate.go` CertificateAddToken: base64 of its JSON), certificate
fingerprints (sha256 of the DER form) and self-signed certificate generation.

Imports only the stdlib and `cryptography`; no file or network I/O (callers write the PEMs).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lxmgr.errors import InvalidConfig

CERT_DAYS = 3650


@dataclass
class TrustToken:
    """What `lxc config trust add --name X` prints: who may join, where, with which secret."""

    client_name: str
    fingerprint: str
    addresses: list[str] = field(default_factory=list)
    secret: str = ""
    expires_at: str = ""  # RFC 3339, "" for never

    def encode(self) -> str:
        """base64(JSON), as LXD's CertificateAddToken.String()."""
        body = {"client_name": self.client_name, "fingerprint": self.fingerprint,
                "addresses": self.addresses, "secret": self.secret,
                "expires_at": self.expires_at or "0001-01-01T00:00:00Z"}
        return base64.b64encode(json.dumps(body).encode()).decode()


def decode_token(text: str) -> TrustToken:
    """The token a user pasted; InvalidConfig when it is not one."""
    try:
        body = json.loads(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError) as err:
        raise InvalidConfig(f"Invalid trust token: {err}") from None
    if not isinstance(body, dict) or not isinstance(body.get("secret"), str) \
            or not body["secret"]:
        raise InvalidConfig("Invalid trust token: no secret")
    expires = str(body.get("expires_at") or "")
    return TrustToken(client_name=str(body.get("client_name") or ""),
                      fingerprint=str(body.get("fingerprint") or ""),
                      addresses=[str(a) for a in body.get("addresses") or []],
                      secret=body["secret"],
                      expires_at="" if expires.startswith("0001-") else expires)


def load_certificate(data: str | bytes) -> x509.Certificate:
    """A certificate given as PEM, DER or base64 DER (LXD's POST /1.0/certificates body)."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if b"-----BEGIN CERTIFICATE-----" in raw:
            return x509.load_pem_x509_certificate(raw)
        try:
            return x509.load_der_x509_certificate(raw)
        except ValueError:
            return x509.load_der_x509_certificate(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error) as err:
        raise InvalidConfig(f"Invalid certificate: {err}") from None


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def fingerprint(cert: x509.Certificate | bytes) -> str:
    """sha256 of the DER form, lower-case hex (LXD's CertFingerprint)."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def generate_certificate(common_name: str, names: list[str], *, client: bool = False) \
        -> tuple[bytes, bytes]:
    """A self-signed EC P-384 certificate and its key, both PEM; SANs from `names`."""
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lxmgr"),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client \
        else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    sans = _subject_alt_names(names)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(key, hashes.SHA384())
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _subject_alt_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out
