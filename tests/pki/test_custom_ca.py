from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certgate.pki.authority import CertificateAuthority
from certgate.pki.custom_ca import validate_custom_ca
from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import certificate_to_pem

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
# Derandomized so every run checks the same examples; CERTGATE_FUZZ_DEEP=1 explores afresh.
DEEP = bool(os.environ.get("CERTGATE_FUZZ_DEEP"))
FUZZ = settings(
    max_examples=5000 if DEEP else 300,
    deadline=None,
    database=None,
    derandomize=not DEEP,
    suppress_health_check=[HealthCheck.too_slow],
)
ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")

BuildCert = Callable[..., x509.Certificate]


def reason_of(data: Any, now: dt.datetime = NOW, **kwargs: Any) -> str:
    with pytest.raises(PKIError) as err:
        validate_custom_ca(data, now=now, **kwargs)
    return err.value.reason


def vector_now(pem: bytes) -> dt.datetime:
    """A time inside an OpenSSL vector's validity (they start when they were generated)."""
    return x509.load_pem_x509_certificate(pem).not_valid_before_utc + dt.timedelta(days=1)


# -- accepted -------------------------------------------------------------------------------------


def test_accepts_the_managed_ca(ca: CertificateAuthority) -> None:
    assert validate_custom_ca(certificate_to_pem(ca.certificate), now=NOW) == ca.certificate
    assert validate_custom_ca(certificate_to_pem(ca.certificate).encode(), now=NOW) == ca.certificate


@pytest.mark.parametrize("name", ["default-ca.pem", "easyrsa-ca.pem"])
def test_accepts_openssl_and_easyrsa_cas(vector: Callable[[str], bytes], name: str) -> None:
    pem = vector("openssl/" + name)
    assert validate_custom_ca(pem, now=vector_now(pem)).subject.rfc4514_string()


def test_accepts_an_intermediate(
    ca: CertificateAuthority, private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    intermediate = build_cert(
        key=private_keys[KeyType.ECDSA_P384],
        cn="Issuing CA",
        issuer=(ca.certificate, ca.private_key),
        ca=True,
    )
    assert intermediate.issuer != intermediate.subject
    assert validate_custom_ca(certificate_to_pem(intermediate), now=NOW) == intermediate


@pytest.mark.parametrize(
    "options",
    [
        {"key_usage": None},  # openssl req -x509 default
        {"ski": False, "aki": False},
        {"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]},
        {"eku": [ExtendedKeyUsageOID.SERVER_AUTH, ANY_EKU]},
        {"path_length": 3},
        {"extra": [(x509.NameConstraints([x509.DNSName("example.com")], None), True)]},
        {
            "extra": [
                (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), False)
            ]
        },
    ],
)
def test_accepts_common_ca_shapes(
    private_keys: dict[KeyType, Any], build_cert: BuildCert, options: dict[str, Any]
) -> None:
    cert = build_cert(key=private_keys[KeyType.ECDSA_P256], cn="My CA", ca=True, **options)
    assert validate_custom_ca(certificate_to_pem(cert), now=NOW) == cert


@pytest.mark.parametrize("key_name", ["p521"])
def test_accepts_p521(odd_keys: dict[str, Any], build_cert: BuildCert, key_name: str) -> None:
    cert = build_cert(key=odd_keys[key_name], cn="P-521 CA", ca=True, hash_algorithm=hashes.SHA512())
    assert validate_custom_ca(certificate_to_pem(cert), now=NOW) == cert


@pytest.mark.parametrize("key_type", [KeyType.RSA2048, KeyType.RSA3072, KeyType.ECDSA_P384])
def test_accepts_rsa_and_p384(
    private_keys: dict[KeyType, Any], build_cert: BuildCert, key_type: KeyType
) -> None:
    cert = build_cert(key=private_keys[key_type], cn="CA", ca=True, hash_algorithm=hashes.SHA384())
    assert validate_custom_ca(certificate_to_pem(cert), now=NOW) == cert


# -- refused, one reason each ---------------------------------------------------------------------


def test_size_limit(ca: CertificateAuthority) -> None:
    pem = certificate_to_pem(ca.certificate)
    assert validate_custom_ca(pem, now=NOW, max_bytes=len(pem))
    assert reason_of(pem, max_bytes=len(pem) - 1) == "ca.too_large"
    padded = pem + " " * (16384 - len(pem))
    assert validate_custom_ca(padded, now=NOW)
    assert reason_of(padded + " ") == "ca.too_large"


@pytest.mark.parametrize("blank", ["", " \n", b""])
def test_empty(blank: str | bytes) -> None:
    assert reason_of(blank) == "ca.empty"


def test_malformed(
    ca: CertificateAuthority,
    private_keys: dict[KeyType, Any],
    make_csr: Callable[..., bytes],
    wrap_pem: Callable[[bytes, str], str],
    build_cert: BuildCert,
) -> None:
    pem = certificate_to_pem(ca.certificate)
    empty_issuer = build_cert(
        key=private_keys[KeyType.ECDSA_P256], ca=True, subject=x509.Name([]), issuer=None, cn=None
    )
    cases: list[Any] = [
        "not a certificate",
        pem.replace("M", "?", 1),
        pem.replace("-----END CERTIFICATE-----", ""),
        wrap_pem(b"\x30\x03\x02\x01\x00", "CERTIFICATE"),
        wrap_pem(b"\x30\x00", "CERTIFICATE"),
        make_csr(private_keys[KeyType.ECDSA_P256]),
        ca.certificate.public_bytes(serialization.Encoding.DER),  # the API takes PEM text
        certificate_to_pem(empty_issuer),
        7,
    ]
    for data in cases:
        assert reason_of(data) == "ca.malformed", data


def test_empty_name_constraints_are_malformed(
    private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    empty = x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.30"), b"\x30\x00")
    cert = build_cert(key=private_keys[KeyType.ECDSA_P256], ca=True, extra=[(empty, True)])
    assert reason_of(certificate_to_pem(cert)) == "ca.malformed"


def test_private_key_in_upload(ca: CertificateAuthority) -> None:
    upload = certificate_to_pem(ca.certificate) + private_key_to_pem(ca.private_key)
    with pytest.raises(PKIError) as err:
        validate_custom_ca(upload, now=NOW)
    assert err.value.reason == "ca.contains_private_key"
    assert "keep its key secret" in err.value.message


def test_two_certificates(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    upload = certificate_to_pem(ca.certificate) + "\n" + certificate_to_pem(other_ca.certificate)
    assert reason_of(upload) == "ca.multiple_certificates"
    assert reason_of(certificate_to_pem(ca.certificate) * 2) == "ca.multiple_certificates"


def test_not_a_ca(
    ca: CertificateAuthority, now: dt.datetime, private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    leaf = ca.issue_client_certificate(
        now=now, validity_days=30, key_type=KeyType.ECDSA_P256, common_name="leaf"
    )
    assert reason_of(certificate_to_pem(leaf.certificate)) == "ca.not_a_ca"
    no_constraints = build_cert(key=private_keys[KeyType.ECDSA_P256], cn="CA?", ca=None, key_usage=None)
    assert reason_of(certificate_to_pem(no_constraints)) == "ca.not_a_ca"
    ca_false = build_cert(key=private_keys[KeyType.ECDSA_P256], cn="CA?", ca=False, key_usage=None)
    assert reason_of(certificate_to_pem(ca_false)) == "ca.not_a_ca"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"bc_critical": False}, "ca.unusable_extension"),
        ({"eku": [ExtendedKeyUsageOID.CLIENT_AUTH], "eku_critical": True}, "ca.unusable_extension"),
        (
            {
                "extra": [
                    (
                        x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
                        True,
                    )
                ]
            },
            "ca.unusable_extension",
        ),
        (
            {
                "extra": [
                    (
                        x509.CertificatePolicies(
                            [x509.PolicyInformation(x509.ObjectIdentifier("2.5.29.32.0"), None)]
                        ),
                        True,
                    )
                ]
            },
            "ca.unusable_extension",
        ),
        (
            {"key_usage": x509.KeyUsage(True, False, False, False, False, False, True, False, False)},
            "ca.no_cert_sign",
        ),
        ({"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "ca.no_client_auth"),
    ],
)
def test_extension_rules(
    private_keys: dict[KeyType, Any], build_cert: BuildCert, options: dict[str, Any], reason: str
) -> None:
    cert = build_cert(key=private_keys[KeyType.ECDSA_P256], cn="CA", ca=True, **options)
    assert reason_of(certificate_to_pem(cert)) == reason


def test_validity_boundaries(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> None:
    start, end = NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1)
    pem = certificate_to_pem(
        build_cert(key=private_keys[KeyType.ECDSA_P256], cn="CA", ca=True, not_before=start, not_after=end)
    )
    second = dt.timedelta(seconds=1)
    assert validate_custom_ca(pem, now=start)
    assert validate_custom_ca(pem, now=end)
    assert reason_of(pem, now=end + second) == "ca.expired"
    assert reason_of(pem, now=start - second) == "ca.not_yet_valid"
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_custom_ca(pem, now=NOW.replace(tzinfo=None))


def test_expired_message_names_the_date(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> None:
    end = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cert = build_cert(
        key=private_keys[KeyType.ECDSA_P256], ca=True, not_before=end - dt.timedelta(days=9), not_after=end
    )
    with pytest.raises(PKIError) as err:
        validate_custom_ca(certificate_to_pem(cert), now=NOW)
    assert err.value.reason == "ca.expired"
    assert "2026-01-02T03:04:05Z" in err.value.message


@pytest.mark.parametrize("name", ["sha1-ca.pem", "md5-ca.pem"])
def test_weak_signature_vectors(vector: Callable[[str], bytes], name: str) -> None:
    pem = vector("openssl/" + name)
    assert reason_of(pem, now=vector_now(pem)) == "ca.weak_signature"


def test_sha224_is_weak(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> None:
    cert = build_cert(key=private_keys[KeyType.ECDSA_P256], ca=True, hash_algorithm=hashes.SHA224())
    assert reason_of(certificate_to_pem(cert)) == "ca.weak_signature"


@pytest.mark.parametrize(
    ("key_name", "reason"),
    [
        ("rsa1024", "key.rsa_too_small"),
        ("secp256k1", "key.unsupported_curve"),
        ("ed25519", "key.unsupported_type"),
    ],
)
def test_ca_key_rules(odd_keys: dict[str, Any], build_cert: BuildCert, key_name: str, reason: str) -> None:
    cert = build_cert(key=odd_keys[key_name], cn="CA", ca=True)
    assert reason_of(certificate_to_pem(cert)) == reason


def test_corrupted_self_signed_ca(
    ca: CertificateAuthority, flip_last_byte: Callable[[bytes], bytes], wrap_pem: Callable[[bytes, str], str]
) -> None:
    broken = flip_last_byte(ca.certificate.public_bytes(serialization.Encoding.DER))
    assert reason_of(wrap_pem(broken, "CERTIFICATE")) == "ca.bad_signature"


def test_corrupted_intermediate_is_not_checked_for_a_signature_it_cannot_verify(
    ca: CertificateAuthority,
    private_keys: dict[KeyType, Any],
    build_cert: BuildCert,
    flip_last_byte: Callable[[bytes], bytes],
    wrap_pem: Callable[[bytes, str], str],
) -> None:
    # Its issuer is unknown here, and the verifier never checks an anchor's own signature.
    intermediate = build_cert(
        key=private_keys[KeyType.ECDSA_P256], issuer=(ca.certificate, ca.private_key), ca=True
    )
    broken = flip_last_byte(intermediate.public_bytes(serialization.Encoding.DER))
    assert validate_custom_ca(wrap_pem(broken, "CERTIFICATE"), now=NOW).subject == intermediate.subject


def test_self_issued_rollover_certificate_is_not_checked_against_its_own_key(
    ca: CertificateAuthority, private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    # Same name, signed by the old key: the AKI names another key than the SKI.
    rollover = build_cert(
        key=private_keys[KeyType.ECDSA_P256],
        subject=ca.certificate.subject,
        issuer=(ca.certificate, ca.private_key),
        ca=True,
    )
    assert rollover.subject == rollover.issuer
    assert validate_custom_ca(certificate_to_pem(rollover), now=NOW) == rollover


# cryptography warns (UserWarning) when it parses a name attribute longer than X.520 allows;
# that is a warning on a parseable input, not a failure, so the fuzzers let it pass.
@pytest.mark.filterwarnings("ignore:Attribute's length must be")
@FUZZ
@given(st.one_of(st.binary(max_size=2048), st.text(max_size=2048)))
def test_fuzz_random_input_raises_only_pki_errors(data: str | bytes) -> None:
    try:
        validate_custom_ca(data, now=NOW)
    except PKIError:
        pass


# cryptography warns (UserWarning) when it parses a name attribute longer than X.520 allows;
# that is a warning on a parseable input, not a failure, so the fuzzers let it pass.
@pytest.mark.filterwarnings("ignore:Attribute's length must be")
@FUZZ
@given(data=st.data())
def test_fuzz_mutated_ca_raises_only_pki_errors(ca: CertificateAuthority, data: st.DataObject) -> None:
    import base64

    der = bytearray(ca.certificate.public_bytes(serialization.Encoding.DER))
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    pem = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(bytes(der)).decode()
        + "\n-----END CERTIFICATE-----\n"
    )
    try:
        validate_custom_ca(pem, now=NOW)
    except PKIError:
        pass
