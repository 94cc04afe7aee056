from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certgate.pki.authority import CertificateAuthority, create_certificate_authority
from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyType
from certgate.pki.pem import certificate_to_pem
from certgate.pki.revocation import build_crl, load_crl, revoked_serials

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=7)


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def test_build_crl(ca: CertificateAuthority) -> None:
    revoked = [(30, NOW - dt.timedelta(hours=1)), (10, NOW - dt.timedelta(days=2)), (30, NOW)]
    crl = build_crl(ca, revoked, now=NOW, next_update=LATER)
    assert crl.issuer == ca.certificate.subject
    assert crl.last_update_utc == NOW and crl.next_update_utc == LATER
    assert [(r.serial_number, r.revocation_date_utc) for r in crl] == [
        (10, NOW - dt.timedelta(days=2)),
        (30, NOW - dt.timedelta(hours=1)),  # one entry per serial, the first one given
    ]
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == int(NOW.timestamp())
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert crl.signature_hash_algorithm is not None and crl.signature_hash_algorithm.name == "sha256"


def test_empty_crl_and_explicit_number(ca: CertificateAuthority) -> None:
    crl = build_crl(ca, [], now=NOW, next_update=LATER, crl_number=7)
    assert len(crl) == 0
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7


def test_crl_of_an_rsa_ca() -> None:
    rsa_ca = create_certificate_authority("RSA CA", now=NOW, key_type=KeyType.RSA2048, validity_days=30)
    crl = build_crl(rsa_ca, [(5, NOW)], now=NOW, next_update=LATER)
    assert load_crl(crl_pem(crl), rsa_ca.certificate) == crl


@pytest.mark.parametrize(
    "kwargs",
    [
        {"next_update": NOW},
        {"next_update": NOW - dt.timedelta(seconds=1)},
        {"next_update": LATER, "crl_number": -1},
        {"next_update": LATER, "crl_number": 1 << 160},
        {"next_update": LATER.replace(tzinfo=None)},
    ],
)
def test_build_crl_misuse(ca: CertificateAuthority, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_crl(ca, [], now=NOW, **kwargs)  # type: ignore[arg-type]


def test_load_crl_pem_and_der(ca: CertificateAuthority) -> None:
    crl = build_crl(ca, [(1, NOW), (2, NOW)], now=NOW, next_update=LATER)
    assert load_crl(crl_pem(crl), ca.certificate) == crl
    assert load_crl(crl.public_bytes(serialization.Encoding.DER), ca.certificate) == crl
    assert revoked_serials(load_crl(crl_pem(crl), ca.certificate)) == {1, 2}


def test_load_crl_checks_the_issuer(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    crl = build_crl(other_ca, [(1, NOW)], now=NOW, next_update=LATER)
    with pytest.raises(PKIError) as err:
        load_crl(crl_pem(crl), ca.certificate)
    assert err.value.reason == "crl.wrong_issuer"


def test_load_crl_checks_the_signature(
    ca: CertificateAuthority, flip_last_byte: Callable[[bytes], bytes]
) -> None:
    # Same subject, different key: the name matches but the signature cannot.
    impostor = create_certificate_authority("certgate test CA", now=NOW - dt.timedelta(days=30))
    crl = build_crl(impostor, [(1, NOW)], now=NOW, next_update=LATER)
    with pytest.raises(PKIError) as err:
        load_crl(crl_pem(crl), ca.certificate)
    assert err.value.reason == "crl.bad_signature"
    genuine = build_crl(ca, [(1, NOW)], now=NOW, next_update=LATER).public_bytes(serialization.Encoding.DER)
    with pytest.raises(PKIError) as err:
        load_crl(flip_last_byte(genuine), ca.certificate)
    assert err.value.reason == "crl.bad_signature"


def test_load_crl_malformed(ca: CertificateAuthority, wrap_pem: Callable[[bytes, str], str]) -> None:
    crl = crl_pem(build_crl(ca, [], now=NOW, next_update=LATER))
    for data in (
        "",
        "garbage",
        b"\x30\x03\x02\x01\x00",
        certificate_to_pem(ca.certificate),
        crl + crl,
        wrap_pem(b"\x30\x00", "X509 CRL"),
        crl.replace("M", "*", 1),
    ):
        with pytest.raises(PKIError) as err:
            load_crl(data, ca.certificate)
        assert err.value.reason == "crl.malformed", data
