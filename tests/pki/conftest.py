"""Shared fixtures for the PKI tests: a fixed clock, keys made once, and certificate factories.

Key generation is the slow part (RSA-4096 takes seconds), so keys are session-scoped and the
factories take keys as arguments. Certificates are built here directly with ``cryptography``
so that tests can make the broken ones certgate itself would never issue.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from certgate.pki.authority import CertificateAuthority, create_certificate_authority
from certgate.pki.keys import KeyType, generate_private_key

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
VECTORS = Path(__file__).resolve().parent.parent / "vectors"


@pytest.fixture
def now() -> dt.datetime:
    return NOW


@pytest.fixture(scope="session")
def private_keys() -> dict[KeyType, Any]:
    """One key per KeyType, made once per test session."""
    return {kt: generate_private_key(kt) for kt in KeyType}


@pytest.fixture(scope="session")
def odd_keys() -> dict[str, Any]:
    """Keys certgate must refuse or treat specially."""
    return {
        "rsa1024": rsa.generate_private_key(65537, 1024),
        "secp256k1": ec.generate_private_key(ec.SECP256K1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "dsa": dsa.generate_private_key(2048),
    }


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    """The managed CA of the tests: ECDSA P-256, valid from a month before NOW for 20 years."""
    return create_certificate_authority("certgate test CA", now=NOW - dt.timedelta(days=30))


@pytest.fixture(scope="session")
def other_ca() -> CertificateAuthority:
    return create_certificate_authority("someone else's CA", now=NOW - dt.timedelta(days=30))


def _vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


@pytest.fixture(scope="session")
def vector() -> Callable[[str], bytes]:
    return _vector


def name_of(cn: str | None, *, org: str | None = None) -> x509.Name:
    attributes = []
    if org is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if cn is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


def _make_csr(
    key: Any,
    *,
    cn: str | None = "device-1",
    subject: x509.Name | None = None,
    sans: Sequence[x509.GeneralName] = (),
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    hash_algorithm: hashes.HashAlgorithm | None = hashes.SHA256(),  # noqa: B008
    encoding: serialization.Encoding = serialization.Encoding.PEM,
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject if subject is not None else name_of(cn)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        hash_algorithm = None
    return builder.sign(key, hash_algorithm).public_bytes(encoding)


@pytest.fixture(scope="session")
def make_csr() -> Callable[..., bytes]:
    """``make_csr(key, cn=..., sans=[...], extensions=[(ext, critical)], hash_algorithm=...)``."""
    return _make_csr


CA_KEY_USAGE = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
EE_KEY_USAGE = x509.KeyUsage(True, False, False, False, False, False, False, False, False)


def _build_cert(
    *,
    key: Any,
    cn: str | None = "leaf",
    subject: x509.Name | None = None,
    issuer: tuple[x509.Certificate, Any] | None = None,
    ca: bool | None = False,
    path_length: int | None = None,
    bc_critical: bool = True,
    key_usage: x509.KeyUsage | str | None = "auto",
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    eku_critical: bool = False,
    san: Sequence[x509.GeneralName] | None = None,
    ski: bool = True,
    aki: bool = True,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    serial: int = 4242,
    hash_algorithm: hashes.HashAlgorithm | None = hashes.SHA256(),  # noqa: B008
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    """A certificate with exactly the properties asked for; self-signed when ``issuer`` is None."""
    subject = subject if subject is not None else name_of(cn)
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before or NOW - dt.timedelta(days=10))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=bc_critical
        )
    if key_usage == "auto":
        key_usage = CA_KEY_USAGE if ca else EE_KEY_USAGE
    if isinstance(key_usage, x509.KeyUsage):
        builder = builder.add_extension(key_usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=eku_critical)
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    if ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        hash_algorithm = None
    return builder.sign(issuer_key, hash_algorithm)


@pytest.fixture(scope="session")
def build_cert() -> Callable[..., x509.Certificate]:
    """See :func:`_build_cert`."""
    return _build_cert


def _pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


@pytest.fixture(scope="session")
def pem() -> Callable[..., str]:
    return _pem


def _flip_last_byte(der: bytes) -> bytes:
    """Corrupt a signed DER object's signature: its last byte lies inside the signature."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


@pytest.fixture(scope="session")
def flip_last_byte() -> Callable[[bytes], bytes]:
    return _flip_last_byte


def _wrap_pem(der: bytes, label: str) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


@pytest.fixture(scope="session")
def wrap_pem() -> Callable[[bytes, str], str]:
    """``wrap_pem(der, "CERTIFICATE REQUEST")``: PEM text around arbitrary DER."""
    return _wrap_pem
