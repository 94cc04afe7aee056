from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certgate.pki.authority import CertificateAuthority
from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import (
    certificate_to_der,
    certificate_to_pem,
    fingerprint_sha256,
    load_certificate,
    load_certificates,
    load_der_certificate,
    split_pem,
)

# Derandomized so every run checks the same examples; CERTGATE_FUZZ_DEEP=1 explores afresh.
DEEP = bool(os.environ.get("CERTGATE_FUZZ_DEEP"))
FUZZ = settings(
    max_examples=5000 if DEEP else 300,
    deadline=None,
    database=None,
    derandomize=not DEEP,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture
def ca_pem(ca: CertificateAuthority) -> str:
    return certificate_to_pem(ca.certificate)


def test_split_pem_single_block(ca: CertificateAuthority, ca_pem: str) -> None:
    assert split_pem(ca_pem) == [("CERTIFICATE", certificate_to_der(ca.certificate))]
    assert split_pem(ca_pem.encode()) == split_pem(ca_pem)


def test_split_pem_keeps_order_and_ignores_text_between_blocks(
    ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    text = (
        "Subject: CN=first\nissuer: whoever\n"
        + certificate_to_pem(ca.certificate)
        + "\n\n# the second one, with an explanation: é ü\n"
        + certificate_to_pem(other_ca.certificate)
        + "trailing words"
    )
    blocks = split_pem(text)
    assert [der for _, der in blocks] == [
        certificate_to_der(ca.certificate),
        certificate_to_der(other_ca.certificate),
    ]
    assert split_pem(text.encode("utf-8")) == blocks


@pytest.mark.parametrize(
    "reshape",
    [
        lambda p: p.replace("\n", "\r\n"),  # CRLF
        lambda p: "\n".join("   " + line + "\t" for line in p.splitlines()),  # indented, trailing tabs
        lambda p: p.replace("\n", " "),  # pasted onto one line (form fields)
        lambda p: p.replace("\n", ""),  # no separators at all
        lambda p: p.replace("\n", "\\n"),  # literal \n left by a JSON round trip
        lambda p: p.replace("\n", "\\r\\n"),
        lambda p: "\n\n\n" + p + "\n\n",
    ],
)
def test_split_pem_is_lenient_about_layout(
    ca: CertificateAuthority, ca_pem: str, reshape: Callable[[str], str]
) -> None:
    assert split_pem(reshape(ca_pem)) == [("CERTIFICATE", certificate_to_der(ca.certificate))]


def test_split_pem_without_blocks_is_empty() -> None:
    assert split_pem("") == []
    assert split_pem("just some text, no PEM here") == []
    assert split_pem(b"\x30\x82\x01\x00") == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("-----BEGIN CERTIFICATE-----\nAAAA\n", "no END marker"),
        ("AAAA\n-----END CERTIFICATE-----\n", "END marker has no matching BEGIN"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n", "different label"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n"
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not closed",
        ),
        ("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n", "empty"),
        ("-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----\n", "base64"),
        ("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n", "base64"),  # bad padding
        ("-----BEGIN CERTIFICATE-----\nAAAA====\n-----END CERTIFICATE-----\n", "base64"),
        ("-----BEGIN CERTIFICATE-----\nAAéA\n-----END CERTIFICATE-----\n", "base64"),
        (
            "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END CERTIFICATE-----\n",
            "base64",
        ),
        ("-----BEGIN certificate-----\nAAAA\n-----END certificate-----\n", "marker"),
        ("-----BEGIN -----\nAAAA\n-----END -----\n", "marker"),
        ("-----BEGIN " + "A" * 65 + "-----\nAAAA\n-----END " + "A" * 65 + "-----\n", "marker"),
        ("-----BEGIN CERTIFICATE\nAAAA\n-----END CERTIFICATE-----\n", "marker"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE", "marker"),
    ],
)
def test_split_pem_is_strict_about_content(text: str, why: str) -> None:
    with pytest.raises(PKIError) as err:
        split_pem(text)
    assert err.value.reason == "pem.malformed"
    assert why in err.value.message


def test_split_pem_accepts_a_64_character_label() -> None:
    label = "A" * 64
    assert split_pem(f"-----BEGIN {label}-----\nAAAA\n-----END {label}-----") == [(label, b"\x00\x00\x00")]


def test_split_pem_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        split_pem(12)  # type: ignore[arg-type]


def test_split_pem_is_linear_on_hostile_input() -> None:
    # A quadratic scan would take minutes on this; a linear one takes milliseconds.
    hostile = "-----BEGIN A-----" * 60_000
    started = time.perf_counter()
    with pytest.raises(PKIError):
        split_pem(hostile)
    hostile_end = "-----END A-----" * 60_000
    with pytest.raises(PKIError):
        split_pem(hostile_end)
    assert time.perf_counter() - started < 2.0


def test_load_certificate_pem_der_and_legacy_label(ca: CertificateAuthority, ca_pem: str) -> None:
    der = certificate_to_der(ca.certificate)
    assert load_certificate(ca_pem) == ca.certificate
    assert load_certificate(ca_pem.encode()) == ca.certificate
    assert load_certificate(der) == ca.certificate
    assert load_certificate(ca_pem.replace("CERTIFICATE", "X509 CERTIFICATE")) == ca.certificate


def test_load_certificates_returns_all_in_order(
    ca: CertificateAuthority, other_ca: CertificateAuthority, ca_pem: str
) -> None:
    bundle = ca_pem + certificate_to_pem(other_ca.certificate)
    assert load_certificates(bundle) == [ca.certificate, other_ca.certificate]
    assert load_certificates(certificate_to_der(ca.certificate)) == [ca.certificate]


@pytest.mark.parametrize("blank", ["", "   \n\t", b"", b"\r\n"])
def test_load_certificate_empty(blank: str | bytes) -> None:
    with pytest.raises(PKIError) as err:
        load_certificate(blank)
    assert err.value.reason == "pem.empty"


def test_load_certificate_errors(
    ca: CertificateAuthority,
    other_ca: CertificateAuthority,
    ca_pem: str,
    make_csr: Callable[..., bytes],
    wrap_pem: Callable[[bytes, str], str],
) -> None:
    cases: list[tuple[str | bytes, str]] = [
        (ca_pem + certificate_to_pem(other_ca.certificate), "pem.multiple_certificates"),
        (make_csr(ca.private_key), "pem.wrong_type"),
        (ca_pem + private_key_to_pem(ca.private_key), "pem.contains_private_key"),
        ("hello world", "pem.malformed"),
        (b"\x30\x03\x02\x01\x01", "pem.malformed"),  # DER, but not a certificate
        (b"\x01\x02garbage", "pem.malformed"),
        (wrap_pem(b"\x30\x00", "CERTIFICATE"), "pem.malformed"),
        (ca_pem.replace("M", "!", 1), "pem.malformed"),
    ]
    for data, reason in cases:
        with pytest.raises(PKIError) as err:
            load_certificate(data)
        assert err.value.reason == reason, data


def test_private_key_message_is_helpful(ca: CertificateAuthority) -> None:
    with pytest.raises(PKIError) as err:
        load_certificates(private_key_to_pem(ca.private_key))
    assert "private key" in err.value.message


def test_certificate_to_pem_round_trip(ca: CertificateAuthority) -> None:
    text = certificate_to_pem(ca.certificate)
    assert text.startswith("-----BEGIN CERTIFICATE-----\n") and text.endswith("-----END CERTIFICATE-----\n")
    assert x509.load_pem_x509_certificate(text.encode()) == ca.certificate
    assert certificate_to_der(ca.certificate) == ca.certificate.public_bytes(serialization.Encoding.DER)


def test_fingerprint_sha256(ca: CertificateAuthority) -> None:
    fingerprint = fingerprint_sha256(ca.certificate)
    assert len(fingerprint) == 64 and fingerprint == fingerprint.lower()
    assert fingerprint == hashlib.sha256(certificate_to_der(ca.certificate)).hexdigest()
    assert fingerprint == ca.certificate.fingerprint(hashes.SHA256()).hex()


def test_fingerprint_of_openssl_vector(vector: Callable[[str], bytes]) -> None:
    text = vector("openssl/default-ca.pem")
    der = base64.b64decode(b"".join(text.split(b"\n")[1:-2]))
    assert fingerprint_sha256(load_certificate(text)) == hashlib.sha256(der).hexdigest()


@FUZZ
@given(st.one_of(st.binary(max_size=2048), st.text(max_size=2048)))
def test_fuzz_load_certificate_raises_only_pki_errors(data: str | bytes) -> None:
    try:
        load_certificate(data)
    except PKIError:
        pass


@FUZZ
@given(
    st.text(alphabet="-BEGINDCRTFA \n\r\\n=+/0123456789abcdefghijklmnopqrstuvwxyz", max_size=400),
)
def test_fuzz_split_pem_marker_soup(data: str) -> None:
    try:
        split_pem(data)
    except PKIError as err:
        assert err.reason == "pem.malformed"


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_certificates_raise_only_pki_errors(
    ca: CertificateAuthority, data: st.DataObject
) -> None:
    der = bytearray(certificate_to_der(ca.certificate))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(der) - 1))
        der[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(der)))
    pem_text = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(bytes(der[:cut])).decode()
        + "\n-----END CERTIFICATE-----\n"
    )
    for candidate in (bytes(der[:cut]), pem_text):
        try:
            load_certificate(candidate)
        except PKIError:
            pass


def test_zero_or_negative_serials_and_unknown_versions_are_malformed(
    private_keys: dict[KeyType, Any], build_cert: Callable[..., x509.Certificate]
) -> None:
    der = build_cert(key=private_keys[KeyType.ECDSA_P256], ca=True, serial=1).public_bytes(
        serialization.Encoding.DER
    )
    version_and_serial = bytes.fromhex("a003020102020101")  # [0] v3, INTEGER 1
    assert version_and_serial in der
    for patched, why in (
        ("a003020102020100", "serial number is zero or negative"),
        ("a003020102020181", "serial number is zero or negative"),
        ("a003020101020101", "cannot be parsed"),  # X.509 "v2": cryptography raises InvalidVersion
    ):
        with pytest.raises(PKIError) as err:
            load_certificate(der.replace(version_and_serial, bytes.fromhex(patched)))
        assert err.value.reason == "pem.malformed"
        assert why in err.value.message
    assert load_der_certificate(der).serial_number == 1
    with pytest.raises(PKIError):
        load_der_certificate("not bytes")  # type: ignore[arg-type]
