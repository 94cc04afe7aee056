from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certgate.pki.authority import CertificateAuthority
from certgate.pki.csr import check_csr, load_csr
from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import certificate_to_der, certificate_to_pem

# Derandomized so every run checks the same examples; CERTGATE_FUZZ_DEEP=1 explores afresh.
DEEP = bool(os.environ.get("CERTGATE_FUZZ_DEEP"))
FUZZ = settings(
    max_examples=5000 if DEEP else 300,
    deadline=None,
    database=None,
    derandomize=not DEEP,
    suppress_health_check=[HealthCheck.too_slow],
)
CLIENT_KEY_TYPES = list(KeyType)


def reason_of(data: Any, **kwargs: Any) -> str:
    with pytest.raises(PKIError) as err:
        load_csr(data, **kwargs)
    return err.value.reason


@pytest.mark.parametrize("key_type", CLIENT_KEY_TYPES)
def test_loads_a_good_csr_of_every_key_type(
    key_type: KeyType, private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]
) -> None:
    key = private_keys[key_type]
    pem = make_csr(key, cn="device-7")
    csr = load_csr(pem.decode())
    assert csr.subject.rfc4514_string() == "CN=device-7"
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    assert load_csr(pem).subject == csr.subject  # bytes
    der = make_csr(key, cn="device-7", encoding=serialization.Encoding.DER)
    assert load_csr(der).subject == csr.subject  # DER bytes


def test_accepts_sha384_and_sha512_signatures(
    private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]
) -> None:
    for algorithm in (hashes.SHA384(), hashes.SHA512()):
        csr = load_csr(make_csr(private_keys[KeyType.ECDSA_P256], hash_algorithm=algorithm))
        assert csr.signature_hash_algorithm is not None
        assert csr.signature_hash_algorithm.name == algorithm.name


def test_loads_openssl_csr_with_sans(vector: Callable[[str], bytes]) -> None:
    csr = load_csr(vector("openssl/csr-p256-san.pem"))
    assert csr.subject.rfc4514_string() == "CN=device-1.example,O=Example"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["device-1.example"]


def test_accepts_new_certificate_request_label_and_surrounding_text(
    private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]
) -> None:
    pem = make_csr(private_keys[KeyType.ECDSA_P256]).decode()
    legacy = pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
    assert load_csr("my csr:\r\n" + legacy.replace("\n", "\r\n") + "\r\nthanks").subject.rfc4514_string()


def test_size_limit_is_inclusive(private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]) -> None:
    pem = make_csr(private_keys[KeyType.ECDSA_P256]).decode()
    assert load_csr(pem, max_bytes=len(pem))
    assert reason_of(pem, max_bytes=len(pem) - 1) == "csr.too_large"
    # The default is 64 KiB, counted in bytes of UTF-8 (padding text is allowed around a PEM).
    padded = pem + "x" * (65536 - len(pem))
    assert load_csr(padded)
    assert reason_of(padded + "x") == "csr.too_large"
    assert reason_of(pem + "é" * ((65536 - len(pem)) // 2 + 1)) == "csr.too_large"


def test_oversize_input_is_refused_before_parsing() -> None:
    assert reason_of("-----BEGIN CERTIFICATE REQUEST-----" * 10_000) == "csr.too_large"


@pytest.mark.parametrize("blank", ["", "  \n", b"", b"\t"])
def test_empty(blank: str | bytes) -> None:
    assert reason_of(blank) == "csr.empty"


def test_malformed(
    private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes], wrap_pem: Callable[[bytes, str], str]
) -> None:
    good = make_csr(private_keys[KeyType.ECDSA_P256]).decode()
    for data in (
        "hello",
        "-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n",
        good.replace("-----END CERTIFICATE REQUEST-----", ""),
        wrap_pem(b"\x30\x03\x02\x01\x00", "CERTIFICATE REQUEST"),
        wrap_pem(b"\x04\x00", "CERTIFICATE REQUEST"),
        b"\x30\x82\x00\x01\x00",
        b"\x00binary",
        wrap_pem(b"\x30\x00", "PUBLIC KEY"),
        12345,
        None,
    ):
        assert reason_of(data) == "csr.malformed", data


def test_certificate_instead_of_csr(ca: CertificateAuthority, wrap_pem: Callable[[bytes, str], str]) -> None:
    der = certificate_to_der(ca.certificate)
    assert reason_of(certificate_to_pem(ca.certificate)) == "csr.is_certificate"
    assert reason_of(der) == "csr.is_certificate"
    assert reason_of(wrap_pem(der, "CERTIFICATE REQUEST")) == "csr.is_certificate"


def test_private_key_instead_of_csr(private_keys: dict[KeyType, Any]) -> None:
    with pytest.raises(PKIError) as err:
        load_csr(private_key_to_pem(private_keys[KeyType.ECDSA_P256]))
    assert err.value.reason == "csr.is_private_key"
    assert "never send your private key" in err.value.message


def test_two_csrs(private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]) -> None:
    pem = make_csr(private_keys[KeyType.ECDSA_P256])
    assert reason_of(pem + pem) == "csr.multiple"


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.RSA2048])
def test_bad_signature(
    key_type: KeyType,
    private_keys: dict[KeyType, Any],
    make_csr: Callable[..., bytes],
    flip_last_byte: Callable[[bytes], bytes],
    wrap_pem: Callable[[bytes, str], str],
) -> None:
    der = make_csr(private_keys[key_type], encoding=serialization.Encoding.DER)
    broken = flip_last_byte(der)
    assert reason_of(wrap_pem(broken, "CERTIFICATE REQUEST")) == "csr.bad_signature"
    assert reason_of(broken) == "csr.bad_signature"


def test_subject_swapped_after_signing_is_a_bad_signature(
    private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]
) -> None:
    der = make_csr(private_keys[KeyType.ECDSA_P256], cn="alice", encoding=serialization.Encoding.DER)
    forged = der.replace(b"alice", b"admin")
    assert reason_of(forged) == "csr.bad_signature"


@pytest.mark.parametrize(
    ("key_name", "reason"),
    [
        ("rsa1024", "key.rsa_too_small"),
        ("secp256k1", "key.unsupported_curve"),
        ("p521", "key.unsupported_curve"),
        ("ed25519", "key.unsupported_type"),
    ],
)
def test_refused_keys(
    key_name: str, reason: str, odd_keys: dict[str, Any], make_csr: Callable[..., bytes]
) -> None:
    assert reason_of(make_csr(odd_keys[key_name])) == reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("csr-rsa1024.pem", "key.rsa_too_small"),
        ("csr-secp256k1.pem", "key.unsupported_curve"),
        ("csr-p521.pem", "key.unsupported_curve"),
        ("csr-ed25519.pem", "key.unsupported_type"),
        ("csr-rsa2048-sha1.pem", "csr.weak_signature"),
    ],
)
def test_refused_openssl_vectors(name: str, reason: str, vector: Callable[[str], bytes]) -> None:
    assert reason_of(vector("openssl/" + name)) == reason


def test_weak_hash(private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]) -> None:
    with pytest.raises(PKIError) as err:
        load_csr(make_csr(private_keys[KeyType.ECDSA_P256], hash_algorithm=hashes.SHA224()))
    assert err.value.reason == "csr.weak_signature"
    assert "SHA224" in err.value.message


def test_subject_or_san_is_required(private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]) -> None:
    key = private_keys[KeyType.ECDSA_P256]
    assert reason_of(make_csr(key, subject=x509.Name([]))) == "csr.empty_subject"
    csr = load_csr(make_csr(key, subject=x509.Name([]), sans=[x509.DNSName("device.example")]))
    assert len(csr.subject) == 0


def test_check_csr_applies_the_same_policy(odd_keys: dict[str, Any], make_csr: Callable[..., bytes]) -> None:
    csr = x509.load_pem_x509_csr(make_csr(odd_keys["rsa1024"]))
    with pytest.raises(PKIError) as err:
        check_csr(csr)
    assert err.value.reason == "key.rsa_too_small"


# cryptography warns (UserWarning) when it parses a name attribute longer than X.520 allows;
# that is a warning on a parseable input, not a failure, so the fuzzers let it pass.
@pytest.mark.filterwarnings("ignore:Attribute's length must be")
@FUZZ
@given(st.one_of(st.binary(max_size=2048), st.text(max_size=2048)))
def test_fuzz_random_input_raises_only_pki_errors(data: str | bytes) -> None:
    try:
        load_csr(data)
    except PKIError:
        pass


@pytest.fixture(scope="module")
def seed_csrs(private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]) -> list[bytes]:
    # Made once: ECDSA signatures vary in length, and Hypothesis needs a stable input size.
    sans = [x509.DNSName("a.example"), x509.UniformResourceIdentifier("spiffe://x/y")]
    return [
        make_csr(private_keys[kt], sans=sans, encoding=serialization.Encoding.DER)
        for kt in (KeyType.ECDSA_P256, KeyType.RSA2048)
    ]


# cryptography warns (UserWarning) when it parses a name attribute longer than X.520 allows;
# that is a warning on a parseable input, not a failure, so the fuzzers let it pass.
@pytest.mark.filterwarnings("ignore:Attribute's length must be")
@FUZZ
@given(data=st.data())
def test_fuzz_mutated_csrs_raise_only_pki_errors(seed_csrs: list[bytes], data: st.DataObject) -> None:
    der = bytearray(data.draw(st.sampled_from(seed_csrs)))
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    der = der[: data.draw(st.integers(1, len(der)))]
    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.b64encode(bytes(der)).decode()
        + "\n-----END CERTIFICATE REQUEST-----"
    )
    for candidate in (bytes(der), pem):
        try:
            load_csr(candidate)
        except PKIError:
            pass
