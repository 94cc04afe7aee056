from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from certgate.pki.errors import PKIError
from certgate.pki.keys import (
    KeyPurpose,
    KeyType,
    check_public_key,
    generate_private_key,
    load_private_key_pem,
    private_key_to_pem,
    public_key_algorithm,
)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("RSA", KeyType.RSA2048),
        ("rsa", KeyType.RSA2048),
        ("RSA2048", KeyType.RSA2048),
        ("rsa-2048", KeyType.RSA2048),
        ("RSA3072", KeyType.RSA3072),
        ("RSA4096", KeyType.RSA4096),
        ("Rsa4096", KeyType.RSA4096),
        ("ECDSA", KeyType.ECDSA_P256),
        ("ecdsa", KeyType.ECDSA_P256),
        ("EC", KeyType.ECDSA_P256),
        ("ECDSA256", KeyType.ECDSA_P256),
        ("ECDSA_P256", KeyType.ECDSA_P256),
        ("ecdsa-p256", KeyType.ECDSA_P256),
        (" ECDSA ", KeyType.ECDSA_P256),
        ("ECDSA384", KeyType.ECDSA_P384),
        ("ECDSA_P384", KeyType.ECDSA_P384),
        ("ecdsa_p384", KeyType.ECDSA_P384),
    ],
)
def test_parse_accepts_esa_and_console_spellings(wire: str, expected: KeyType) -> None:
    assert KeyType.parse(wire) is expected


@pytest.mark.parametrize(
    "wire", ["", "  ", "DSA", "RSA1024", "RSA8192", "ECDSA521", "ED25519", "SM2", "RSA 2048"]
)
def test_parse_refuses_unknown_types(wire: str) -> None:
    with pytest.raises(PKIError) as err:
        KeyType.parse(wire)
    assert err.value.reason == "key.unsupported_type"
    assert "RSA2048" in err.value.message  # tells the caller what would work


def test_parse_refuses_non_strings_and_does_not_echo_long_input() -> None:
    with pytest.raises(PKIError) as err:
        KeyType.parse(2048)  # type: ignore[arg-type]
    assert err.value.reason == "key.unsupported_type"
    with pytest.raises(PKIError) as err:
        KeyType.parse("X" * 10_000 + "\x00")
    assert len(err.value.message) < 200


def test_algorithm_property() -> None:
    assert [kt.algorithm for kt in KeyType] == ["RSA", "RSA", "RSA", "ECDSA", "ECDSA"]


@pytest.mark.parametrize(
    ("key_type", "kind", "size"),
    [
        (KeyType.RSA2048, rsa.RSAPrivateKey, 2048),
        (KeyType.RSA3072, rsa.RSAPrivateKey, 3072),
        (KeyType.RSA4096, rsa.RSAPrivateKey, 4096),
        (KeyType.ECDSA_P256, ec.EllipticCurvePrivateKey, 256),
        (KeyType.ECDSA_P384, ec.EllipticCurvePrivateKey, 384),
    ],
)
def test_generated_keys_have_the_requested_type(
    private_keys: dict[KeyType, Any], key_type: KeyType, kind: type, size: int
) -> None:
    key = private_keys[key_type]  # made by generate_private_key in the session fixture
    assert isinstance(key, kind)
    assert key.key_size == size
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.public_key().public_numbers().e == 65537
    check_public_key(key.public_key(), KeyPurpose.CLIENT)


def test_generate_makes_a_fresh_key_each_time() -> None:
    a = generate_private_key(KeyType.ECDSA_P256)
    b = generate_private_key(KeyType.ECDSA_P256)
    assert a.private_numbers().private_value != b.private_numbers().private_value


@pytest.mark.parametrize("key_type", list(KeyType))
def test_private_key_pem_round_trip(private_keys: dict[KeyType, Any], key_type: KeyType) -> None:
    key = private_keys[key_type]
    text = private_key_to_pem(key)
    assert text.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    loaded = load_private_key_pem(text)
    assert loaded.private_numbers() == key.private_numbers()
    assert load_private_key_pem(text.encode()).private_numbers() == key.private_numbers()


def test_load_private_key_accepts_traditional_formats(private_keys: dict[KeyType, Any]) -> None:
    for key_type, header in ((KeyType.RSA2048, "RSA PRIVATE KEY"), (KeyType.ECDSA_P256, "EC PRIVATE KEY")):
        key = private_keys[key_type]
        traditional = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        assert header in traditional.decode()
        assert load_private_key_pem(traditional).private_numbers() == key.private_numbers()


def test_load_private_key_errors(private_keys: dict[KeyType, Any]) -> None:
    with pytest.raises(PKIError) as err:
        load_private_key_pem("not a key")
    assert err.value.reason == "key.malformed"
    encrypted = private_keys[KeyType.ECDSA_P256].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(PKIError) as err:
        load_private_key_pem(encrypted)
    assert err.value.reason == "key.encrypted"
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(PKIError) as err:
        load_private_key_pem(ed)
    assert err.value.reason == "key.unsupported_type"


def test_public_key_algorithm_names(private_keys: dict[KeyType, Any], odd_keys: dict[str, Any]) -> None:
    assert public_key_algorithm(private_keys[KeyType.RSA2048].public_key()) == "RSA"
    assert public_key_algorithm(private_keys[KeyType.ECDSA_P384].public_key()) == "ECDSA"
    assert public_key_algorithm(odd_keys["secp256k1"].public_key()) == "ECDSA"
    assert public_key_algorithm(odd_keys["ed25519"].public_key()) == "Ed25519"
    assert public_key_algorithm(ed448.Ed448PrivateKey.generate().public_key()) == "Ed448"
    assert public_key_algorithm(odd_keys["dsa"].public_key()) == "DSA"


def _rsa_public(bits: int) -> rsa.RSAPublicKey:
    # A syntactically valid public key of any size, without the cost of generating one.
    modulus = (1 << (bits - 1)) | (1 << 40) | 1
    return rsa.RSAPublicNumbers(65537, modulus).public_key()


@pytest.mark.parametrize("purpose", list(KeyPurpose))
def test_rsa_size_limits(purpose: KeyPurpose, odd_keys: dict[str, Any]) -> None:
    for bits in (2048, 3072, 4096, 8192):
        check_public_key(_rsa_public(bits), purpose)
    for bits, reason in (
        (2047, "key.rsa_too_small"),
        (1024, "key.rsa_too_small"),
        (8193, "key.rsa_too_large"),
    ):
        with pytest.raises(PKIError) as err:
            check_public_key(_rsa_public(bits), purpose)
        assert err.value.reason == reason
        assert str(bits) in err.value.message
    with pytest.raises(PKIError) as err:
        check_public_key(odd_keys["rsa1024"].public_key(), purpose)
    assert err.value.reason == "key.rsa_too_small"


@pytest.mark.parametrize(
    ("curve", "client", "ca"),
    [
        (ec.SECP256R1(), True, True),
        (ec.SECP384R1(), True, True),
        (ec.SECP521R1(), False, True),
        (ec.SECP256K1(), False, False),
        (ec.SECP224R1(), False, False),
        (ec.BrainpoolP256R1(), False, False),
    ],
)
def test_curve_policy(curve: ec.EllipticCurve, client: bool, ca: bool) -> None:
    public_key = ec.generate_private_key(curve).public_key()
    for purpose, allowed in ((KeyPurpose.CLIENT, client), (KeyPurpose.CA, ca), (KeyPurpose.SERVER, ca)):
        if allowed:
            check_public_key(public_key, purpose)
        else:
            with pytest.raises(PKIError) as err:
                check_public_key(public_key, purpose)
            assert err.value.reason == "key.unsupported_curve"
            assert curve.name in err.value.message


@pytest.mark.parametrize("purpose", list(KeyPurpose))
def test_other_algorithms_are_unsupported(purpose: KeyPurpose, odd_keys: dict[str, Any]) -> None:
    for public_key in (
        odd_keys["ed25519"].public_key(),
        ed448.Ed448PrivateKey.generate().public_key(),
        odd_keys["dsa"].public_key(),
    ):
        with pytest.raises(PKIError) as err:
            check_public_key(public_key, purpose)
        assert err.value.reason == "key.unsupported_type"
