from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from certgate.pki.authority import (
    SERIAL_LIMIT,
    CertificateAuthority,
    create_certificate_authority,
)
from certgate.pki.csr import load_csr
from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyType
from certgate.pki.profiles import ClientCertificateProfile

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
CLIENT_PROFILE_EXTENSIONS = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
}


def spki(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(*SPKI))


def assert_client_profile(
    certificate: x509.Certificate, ca: CertificateAuthority, *, now: dt.datetime, days: int
) -> None:
    """Everything PRODUCT §2 requires of an issued client certificate, checked one by one."""
    assert certificate.version is x509.Version.v3
    assert 0 < certificate.serial_number < SERIAL_LIMIT
    assert certificate.serial_number.bit_length() > 64  # 159 random bits; < 2**64 has odds 2**-95
    assert certificate.issuer == ca.certificate.subject
    assert certificate.not_valid_before_utc == now - dt.timedelta(seconds=60)
    assert certificate.not_valid_after_utc == now + dt.timedelta(days=days)
    extensions = certificate.extensions
    oids = {e.oid for e in extensions}
    assert oids - {ExtensionOID.SUBJECT_ALTERNATIVE_NAME} == CLIENT_PROFILE_EXTENSIONS

    bc = extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(ca=False, path_length=None)

    ku = extensions.get_extension_for_class(x509.KeyUsage)
    is_rsa = isinstance(certificate.public_key(), rsa.RSAPublicKey)
    assert ku.critical
    assert ku.value == x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=is_rsa,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )

    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(certificate.public_key())

    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert not aki.critical
    assert aki.value.key_identifier == ca_ski.digest
    assert aki.value.authority_cert_issuer is None and aki.value.authority_cert_serial_number is None

    hash_algorithm = certificate.signature_hash_algorithm
    assert hash_algorithm is not None and hash_algorithm.name == "sha256"  # the test CA is P-256
    certificate.verify_directly_issued_by(ca.certificate)


# -- the managed CA ----------------------------------------------------------------------------


def test_create_certificate_authority_profile(now: dt.datetime) -> None:
    ca = create_certificate_authority("Acme Devices", now=now, organization="certgate")
    cert = ca.certificate
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=Acme Devices,O=certgate"
    assert cert.version is x509.Version.v3
    assert cert.not_valid_before_utc == now - dt.timedelta(seconds=60)
    assert cert.not_valid_after_utc == now + dt.timedelta(days=7300)
    assert isinstance(ca.private_key, ec.EllipticCurvePrivateKey) and ca.private_key.curve.name == "secp256r1"
    assert spki(ca.private_key.public_key()) == spki(cert.public_key())
    extensions = {e.oid: e for e in cert.extensions}
    assert set(extensions) == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
    bc = extensions[ExtensionOID.BASIC_CONSTRAINTS]
    assert bc.critical and bc.value == x509.BasicConstraints(ca=True, path_length=0)
    ku = extensions[ExtensionOID.KEY_USAGE]
    assert ku.critical
    assert ku.value == x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    ski = extensions[ExtensionOID.SUBJECT_KEY_IDENTIFIER]
    assert not ski.critical and ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = extensions[ExtensionOID.AUTHORITY_KEY_IDENTIFIER]
    assert aki.value.key_identifier == ski.value.digest
    cert.verify_directly_issued_by(cert)
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"


def test_ca_serials_are_random(now: dt.datetime) -> None:
    a = create_certificate_authority("a", now=now, validity_days=1)
    b = create_certificate_authority("a", now=now, validity_days=1)
    assert a.certificate.serial_number != b.certificate.serial_number


@pytest.mark.parametrize(
    ("key_type", "hash_name"), [(KeyType.ECDSA_P384, "sha384"), (KeyType.RSA2048, "sha256")]
)
def test_ca_key_types(now: dt.datetime, key_type: KeyType, hash_name: str) -> None:
    ca = create_certificate_authority("CA", now=now, key_type=key_type, validity_days=30)
    assert ca.certificate.signature_hash_algorithm is not None
    assert ca.certificate.signature_hash_algorithm.name == hash_name
    issued = ca.issue_client_certificate(
        now=now, validity_days=7, key_type=KeyType.ECDSA_P256, common_name="x"
    )
    assert issued.certificate.signature_hash_algorithm is not None
    assert issued.certificate.signature_hash_algorithm.name == hash_name
    issued.certificate.verify_directly_issued_by(ca.certificate)


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "tab\there", 7])
def test_ca_name_must_be_sane(now: dt.datetime, name: Any) -> None:
    with pytest.raises(PKIError) as err:
        create_certificate_authority(name, now=now)
    assert err.value.reason == "name.invalid"
    with pytest.raises(PKIError):
        create_certificate_authority("ok", now=now, organization=name)


def test_ca_misuse(now: dt.datetime) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        create_certificate_authority("CA", now=now.replace(tzinfo=None))
    with pytest.raises(ValueError, match="validity_days"):
        create_certificate_authority("CA", now=now, validity_days=0)


def test_certificate_authority_checks_its_parts(
    ca: CertificateAuthority, other_ca: CertificateAuthority, now: dt.datetime
) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        CertificateAuthority(certificate=ca.certificate, private_key=other_ca.private_key)
    leaf = ca.issue_client_certificate(
        now=now, validity_days=1, key_type=KeyType.ECDSA_P256, common_name="leaf"
    )
    assert leaf.private_key is not None
    with pytest.raises(ValueError, match="not a CA"):
        CertificateAuthority(certificate=leaf.certificate, private_key=leaf.private_key)
    with pytest.raises(TypeError):
        CertificateAuthority(certificate=ca.certificate, private_key="key")  # type: ignore[arg-type]
    assert "private_key" not in repr(ca)


# -- client certificates ------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_issue_with_server_generated_key(
    ca: CertificateAuthority, now: dt.datetime, key_type: KeyType
) -> None:
    issued = ca.issue_client_certificate(
        now=now, validity_days=365, key_type=key_type, common_name="0123456789abcdef0123456789abcdef"
    )
    cert, key = issued.certificate, issued.private_key
    assert key is not None
    assert spki(key.public_key()) == spki(cert.public_key())  # the generated key matches
    if key_type.algorithm == "RSA":
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == int(key_type.value[3:])
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == {"ECDSA_P256": "secp256r1", "ECDSA_P384": "secp384r1"}[key_type.value]
    assert cert.subject.rfc4514_string() == "CN=0123456789abcdef0123456789abcdef"
    assert ExtensionOID.SUBJECT_ALTERNATIVE_NAME not in {e.oid for e in cert.extensions}
    assert_client_profile(cert, ca, now=now, days=365)
    assert "private_key" not in repr(issued)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_issue_from_csr(
    ca: CertificateAuthority,
    now: dt.datetime,
    key_type: KeyType,
    private_keys: dict[KeyType, Any],
    make_csr: Callable[..., bytes],
) -> None:
    key = private_keys[key_type]
    csr = load_csr(make_csr(key, cn="device-42"))
    issued = ca.issue_client_certificate(now=now, validity_days=30, csr=csr)
    assert issued.private_key is None
    assert spki(issued.certificate.public_key()) == spki(key.public_key())
    assert issued.certificate.subject == csr.subject
    assert_client_profile(issued.certificate, ca, now=now, days=30)


def test_csr_subject_and_sans_are_kept(
    ca: CertificateAuthority, now: dt.datetime, vector: Callable[[str], bytes]
) -> None:
    csr = load_csr(vector("openssl/csr-p256-san.pem"))
    cert = ca.issue_client_certificate(now=now, validity_days=1, csr=csr).certificate
    assert cert.subject == csr.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value == csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert_client_profile(cert, ca, now=now, days=1)


def test_csr_cannot_ask_for_more_than_the_profile(
    ca: CertificateAuthority,
    now: dt.datetime,
    private_keys: dict[KeyType, Any],
    make_csr: Callable[..., bytes],
) -> None:
    """A CSR requesting CA powers, other usages or odd extensions gets the plain profile."""
    requested = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(True, True, True, True, True, True, True, False, False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]), False),
        (
            x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None),
            True,
        ),
    ]
    csr = load_csr(make_csr(private_keys[KeyType.ECDSA_P256], cn="sneaky", extensions=requested))
    cert = ca.issue_client_certificate(now=now, validity_days=1, csr=csr).certificate
    assert_client_profile(cert, ca, now=now, days=1)


def test_empty_subject_makes_the_san_critical(
    ca: CertificateAuthority,
    now: dt.datetime,
    private_keys: dict[KeyType, Any],
    make_csr: Callable[..., bytes],
) -> None:
    csr = load_csr(
        make_csr(private_keys[KeyType.ECDSA_P256], subject=x509.Name([]), sans=[x509.DNSName("d.example")])
    )
    cert = ca.issue_client_certificate(now=now, validity_days=1, csr=csr).certificate
    assert len(cert.subject) == 0
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_issue_rechecks_the_csr_policy(
    ca: CertificateAuthority, now: dt.datetime, odd_keys: dict[str, Any], make_csr: Callable[..., bytes]
) -> None:
    csr = x509.load_pem_x509_csr(make_csr(odd_keys["rsa1024"]))  # not via load_csr
    with pytest.raises(PKIError) as err:
        ca.issue_client_certificate(now=now, validity_days=1, csr=csr)
    assert err.value.reason == "key.rsa_too_small"


@pytest.mark.parametrize(("days", "ok"), [(0, False), (1, True), (3650, True), (3651, False)])
def test_validity_bounds(ca: CertificateAuthority, now: dt.datetime, days: int, ok: bool) -> None:
    if ok:
        cert = ca.issue_client_certificate(
            now=now, validity_days=days, key_type=KeyType.ECDSA_P256, common_name="v"
        ).certificate
        assert cert.not_valid_after_utc - now == dt.timedelta(days=days)
    else:
        with pytest.raises(PKIError) as err:
            ca.issue_client_certificate(
                now=now, validity_days=days, key_type=KeyType.ECDSA_P256, common_name="v"
            )
        assert err.value.reason == "validity.out_of_range"


def test_profile_is_applied(ca: CertificateAuthority, now: dt.datetime) -> None:
    profile = ClientCertificateProfile(max_validity_days=30, backdate=dt.timedelta(0))
    cert = ca.issue_client_certificate(
        now=now, validity_days=30, key_type=KeyType.ECDSA_P256, common_name="p", profile=profile
    ).certificate
    assert cert.not_valid_before_utc == now
    with pytest.raises(PKIError):
        ca.issue_client_certificate(
            now=now, validity_days=31, key_type=KeyType.ECDSA_P256, common_name="p", profile=profile
        )


def test_certificates_never_outlive_or_predate_their_ca(now: dt.datetime) -> None:
    young = create_certificate_authority("young CA", now=now, validity_days=30)
    cert = young.issue_client_certificate(
        now=now, validity_days=30, key_type=KeyType.ECDSA_P256, common_name="x"
    )
    # The CA itself was backdated 60 s from the same "now": the leaf starts no earlier than its CA.
    assert cert.certificate.not_valid_before_utc == young.certificate.not_valid_before_utc
    with pytest.raises(PKIError) as err:
        young.issue_client_certificate(
            now=now, validity_days=31, key_type=KeyType.ECDSA_P256, common_name="x"
        )
    assert err.value.reason == "validity.exceeds_issuer"
    ca_end = young.certificate.not_valid_after_utc
    for when in (
        ca_end + dt.timedelta(seconds=1),
        young.certificate.not_valid_before_utc - dt.timedelta(seconds=1),
    ):
        with pytest.raises(PKIError) as err:
            young.issue_client_certificate(
                now=when, validity_days=1, key_type=KeyType.ECDSA_P256, common_name="x"
            )
        assert err.value.reason == "issuer.not_valid"


def test_now_is_normalised_to_utc_seconds(ca: CertificateAuthority) -> None:
    local = dt.datetime(2026, 6, 1, 20, 0, 0, 987654, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    cert = ca.issue_client_certificate(
        now=local, validity_days=1, key_type=KeyType.ECDSA_P256, common_name="tz"
    ).certificate
    assert cert.not_valid_after_utc == dt.datetime(2026, 6, 2, 12, 0, 0, tzinfo=dt.UTC)


def test_given_serial_is_used(ca: CertificateAuthority, now: dt.datetime) -> None:
    for serial in (1, SERIAL_LIMIT - 1):
        cert = ca.issue_client_certificate(
            now=now, validity_days=1, key_type=KeyType.ECDSA_P256, common_name="s", serial=serial
        ).certificate
        assert cert.serial_number == serial


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # neither csr nor key_type
        {"key_type": KeyType.ECDSA_P256},  # no common name
        {"key_type": KeyType.ECDSA_P256, "common_name": "x", "serial": 0},
        {"key_type": KeyType.ECDSA_P256, "common_name": "x", "serial": -5},
        {"key_type": KeyType.ECDSA_P256, "common_name": "x", "serial": SERIAL_LIMIT},
        {"key_type": KeyType.ECDSA_P256, "common_name": "x", "serial": True},
    ],
)
def test_issue_misuse(ca: CertificateAuthority, now: dt.datetime, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ca.issue_client_certificate(now=now, validity_days=1, **kwargs)


def test_issue_misuse_with_csr(
    ca: CertificateAuthority,
    now: dt.datetime,
    private_keys: dict[KeyType, Any],
    make_csr: Callable[..., bytes],
) -> None:
    csr = load_csr(make_csr(private_keys[KeyType.ECDSA_P256]))
    with pytest.raises(ValueError, match="exactly one"):
        ca.issue_client_certificate(now=now, validity_days=1, csr=csr, key_type=KeyType.ECDSA_P256)
    with pytest.raises(ValueError, match="common_name"):
        ca.issue_client_certificate(now=now, validity_days=1, csr=csr, common_name="x")
    with pytest.raises(ValueError, match="timezone-aware"):
        ca.issue_client_certificate(now=now.replace(tzinfo=None), validity_days=1, csr=csr)


def test_a_key_pair_made_by_the_caller(
    ca: CertificateAuthority, now: dt.datetime, private_keys: dict[KeyType, Any], odd_keys: dict[str, Any]
) -> None:
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for kt in (KeyType.ECDSA_P384, KeyType.RSA2048):
        key = private_keys[kt]
        issued = ca.issue_client_certificate(now=now, validity_days=1, private_key=key, common_name="made")
        assert issued.private_key is key
        assert issued.certificate.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
        assert issued.facts.common_name == "made"
    with pytest.raises(ValueError, match="exactly one"):
        ca.issue_client_certificate(
            now=now,
            validity_days=1,
            private_key=private_keys[KeyType.ECDSA_P256],
            key_type=KeyType.ECDSA_P256,
            common_name="x",
        )
    with pytest.raises(ValueError, match="common_name"):
        ca.issue_client_certificate(now=now, validity_days=1, private_key=private_keys[KeyType.ECDSA_P256])
    with pytest.raises(TypeError):
        ca.issue_client_certificate(
            now=now, validity_days=1, private_key=odd_keys["ed25519"], common_name="x"
        )
    for name, reason in (("rsa1024", "key.rsa_too_small"), ("secp256k1", "key.unsupported_curve")):
        with pytest.raises(PKIError) as err:
            ca.issue_client_certificate(now=now, validity_days=1, private_key=odd_keys[name], common_name="x")
        assert err.value.reason == reason


def test_generated_common_name_is_checked(ca: CertificateAuthority, now: dt.datetime) -> None:
    with pytest.raises(PKIError) as err:
        ca.issue_client_certificate(
            now=now, validity_days=1, key_type=KeyType.ECDSA_P256, common_name="x" * 65
        )
    assert err.value.reason == "name.invalid"


# -- edge server certificates ---------------------------------------------------------------------


def test_issue_server_certificate(ca: CertificateAuthority, now: dt.datetime) -> None:
    issued = ca.issue_server_certificate(
        ["a.example.com", "*.b.example.com", "127.0.0.1", "::1"], now=now, validity_days=90
    )
    cert, key = issued.certificate, issued.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert spki(key.public_key()) == spki(cert.public_key())
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.example.com")])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["a.example.com", "*.b.example.com"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    # A real web-PKI-profile server verifier accepts it for each name.
    for name in ("a.example.com", "x.b.example.com"):
        verifier = (
            xv.PolicyBuilder()
            .store(xv.Store([ca.certificate]))
            .time(now)
            .build_server_verifier(x509.DNSName(name))
        )
        assert verifier.verify(cert, [])[-1] == ca.certificate


def test_server_certificate_rsa_and_long_names(ca: CertificateAuthority, now: dt.datetime) -> None:
    long_name = ("a" * 60) + ".example.com"
    issued = ca.issue_server_certificate([long_name], now=now, validity_days=1, key_type=KeyType.RSA2048)
    assert isinstance(issued.private_key, rsa.RSAPrivateKey)
    assert len(issued.certificate.subject) == 0  # a CN holds at most 64 characters
    assert issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert issued.certificate.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


@pytest.mark.parametrize(
    "bad", ["", "bad..name", "a.example.com:443", "ünïcode.example", "a b.example", "-" * 300]
)
def test_server_certificate_refuses_bad_hostnames(
    ca: CertificateAuthority, now: dt.datetime, bad: str
) -> None:
    with pytest.raises(PKIError) as err:
        ca.issue_server_certificate(["ok.example", bad], now=now, validity_days=1)
    assert err.value.reason == "name.invalid"


def test_server_certificate_misuse(ca: CertificateAuthority, now: dt.datetime) -> None:
    with pytest.raises(ValueError):
        ca.issue_server_certificate([], now=now, validity_days=1)
    with pytest.raises(ValueError):
        ca.issue_server_certificate("a.example.com", now=now, validity_days=1)
    with pytest.raises(PKIError) as err:
        ca.issue_server_certificate(["a.example"], now=now, validity_days=0)
    assert err.value.reason == "validity.out_of_range"
