from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certgate.pki.authority import CertificateAuthority, IssuedCertificate, create_certificate_authority
from certgate.pki.csr import load_csr
from certgate.pki.describe import _ISSUER_NAMES, CertificateFacts, _issuer_der, describe_certificate
from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyType
from certgate.pki.pem import PARSE_ERRORS, load_certificate

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
BuildCert = Callable[..., x509.Certificate]
# Derandomized so every run checks the same examples; CERTGATE_FUZZ_DEEP=1 explores afresh.
DEEP = bool(os.environ.get("CERTGATE_FUZZ_DEEP"))
FUZZ = settings(
    max_examples=5000 if DEEP else 300,
    deadline=None,
    database=None,
    derandomize=not DEEP,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_facts_of_an_issued_certificate(ca: CertificateAuthority, vector: Callable[[str], bytes]) -> None:
    csr = load_csr(vector("openssl/csr-p256-san.pem"))
    cert = ca.issue_client_certificate(
        now=NOW, validity_days=365, csr=csr, serial=0xBABADED901474B96
    ).certificate
    facts = describe_certificate(cert)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    assert facts == CertificateFacts(
        common_name="device-1.example",
        subject_dn="CN=device-1.example,O=Example",
        issuer_dn="CN=certgate test CA",
        issuer_common_name="certgate test CA",
        serial_number=0xBABADED901474B96,
        serial_hex="babaded901474b96",
        fingerprint_sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        signature_algorithm="ECDSA-SHA256",
        public_key_algorithm="ECDSA",
        public_key_bits=256,
        san="device-1.example,spiffe://acct42/device-1,dev1@example.com",
        san_values=("device-1.example", "spiffe://acct42/device-1", "dev1@example.com"),
        ski=cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex(),
        issuer_ski=ca_ski,
        not_before=NOW - dt.timedelta(seconds=60),
        not_after=NOW + dt.timedelta(days=365),
        is_ca=False,
    )
    assert facts.not_before.tzinfo is dt.UTC


def test_facts_of_a_ca(ca: CertificateAuthority) -> None:
    facts = describe_certificate(ca.certificate)
    assert facts.is_ca
    assert facts.ski == facts.issuer_ski
    assert facts.san == "" and facts.san_values == ()


@pytest.mark.parametrize(
    ("key_type", "signature", "algorithm", "bits"),
    [
        (KeyType.ECDSA_P256, "ECDSA-SHA256", "ECDSA", 256),
        (KeyType.ECDSA_P384, "ECDSA-SHA384", "ECDSA", 384),
        (KeyType.RSA2048, "SHA256-RSA", "RSA", 2048),
    ],
)
def test_go_style_algorithm_names(key_type: KeyType, signature: str, algorithm: str, bits: int) -> None:
    ca = create_certificate_authority("CA", now=NOW, key_type=key_type, validity_days=2)
    facts = describe_certificate(ca.certificate)
    assert (facts.signature_algorithm, facts.public_key_algorithm, facts.public_key_bits) == (
        signature,
        algorithm,
        bits,
    )


@pytest.mark.parametrize(
    ("name", "signature", "algorithm"),
    [
        ("sha1-ca.pem", "ECDSA-SHA1", "ECDSA"),
        ("md5-ca.pem", "MD5-RSA", "RSA"),
        ("easyrsa-ca.pem", "SHA256-RSA", "RSA"),
    ],
)
def test_algorithm_names_of_openssl_vectors(
    vector: Callable[[str], bytes], name: str, signature: str, algorithm: str
) -> None:
    facts = describe_certificate(load_certificate(vector("openssl/" + name)))
    assert (facts.signature_algorithm, facts.public_key_algorithm) == (signature, algorithm)


def test_other_signature_algorithms(private_keys: dict[KeyType, Any], odd_keys: dict[str, Any]) -> None:
    key = private_keys[KeyType.RSA2048]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pss")])
    base = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
    )
    builder = base.public_key(key.public_key())
    pss = builder.sign(key, hashes.SHA384(), rsa_padding=padding.PSS(padding.MGF1(hashes.SHA384()), 48))
    assert describe_certificate(pss).signature_algorithm == "SHA384-RSAPSS"
    ed = odd_keys["ed25519"]
    ed_cert = base.public_key(ed.public_key()).sign(ed, None)
    facts = describe_certificate(ed_cert)
    assert (facts.signature_algorithm, facts.public_key_algorithm, facts.public_key_bits) == (
        "Ed25519",
        "Ed25519",
        None,
    )
    sha224 = builder.sign(key, hashes.SHA224())
    assert describe_certificate(sha224).signature_algorithm == "SHA224-RSA"


def test_serial_hex_has_no_padding(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> None:
    for serial, expected in (
        (1, "1"),
        (0xFF, "ff"),
        (0x0ABC, "abc"),
        ((1 << 158) + 5, format((1 << 158) + 5, "x")),
    ):
        cert = build_cert(key=private_keys[KeyType.ECDSA_P256], serial=serial)
        assert describe_certificate(cert).serial_hex == expected


def test_names_without_or_with_several_cns(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> None:
    two = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "first"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ou"),
            x509.NameAttribute(NameOID.COMMON_NAME, "last"),
        ]
    )
    facts = describe_certificate(build_cert(key=private_keys[KeyType.ECDSA_P256], subject=two))
    assert facts.common_name == "last"  # as Go's pkix.Name.CommonName
    assert facts.subject_dn == "CN=last,OU=ou,CN=first"
    none = describe_certificate(
        build_cert(
            key=private_keys[KeyType.ECDSA_P256], subject=x509.Name([]), san=[x509.DNSName("d.example")]
        )
    )
    assert none.common_name == "" and none.subject_dn == ""
    assert none.san == "d.example"


def test_ip_sans_and_unsupported_name_types(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> None:
    import ipaddress

    san = [
        x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
        x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
    ]
    facts = describe_certificate(build_cert(key=private_keys[KeyType.ECDSA_P256], san=san))
    assert facts.san == "192.0.2.1,2001:db8::1"


def test_v1_certificate(vector: Callable[[str], bytes]) -> None:
    facts = describe_certificate(load_certificate(vector("openssl/default-ca-leaf-v1.pem")))
    assert facts.common_name == "device-0001"
    assert facts.ski is None and facts.issuer_ski is None and not facts.is_ca
    assert facts.issuer_common_name == "Example Device CA"


@pytest.fixture(scope="module")
def seed_der(ca: CertificateAuthority, vector: Callable[[str], bytes]) -> bytes:
    csr = load_csr(vector("openssl/csr-p256-san.pem"))
    return ca.issue_client_certificate(
        now=NOW, validity_days=1, csr=csr, serial=12345
    ).certificate.public_bytes(serialization.Encoding.DER)


@pytest.mark.filterwarnings("ignore:Attribute's length must be")
@FUZZ
@given(data=st.data())
def test_fuzz_describe_is_total_on_parseable_certificates(seed_der: bytes, data: st.DataObject) -> None:
    """The edge describes whatever a client presents: it must never raise on a parsed cert."""
    der = bytearray(seed_der)
    for _ in range(data.draw(st.integers(1, 3))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    text = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(bytes(der)).decode()
        + "\n-----END CERTIFICATE-----"
    )
    try:
        cert = load_certificate(text)
    except PKIError:
        return
    facts = describe_certificate(cert)
    assert len(facts.fingerprint_sha256) == 64


# -- the issuer memo ------------------------------------------------------------------------------


def test_issuer_der_is_the_issuer_names_encoding(
    ca: CertificateAuthority, other_ca: CertificateAuthority, vector: Callable[[str], bytes]
) -> None:
    v1 = load_certificate(vector("openssl/default-ca-leaf-v1.pem"))
    leaf = ca.issue_client_certificate(
        now=NOW, validity_days=1, key_type=KeyType.ECDSA_P256, common_name="device"
    ).certificate
    for cert in (leaf, v1, ca.certificate, other_ca.certificate):
        der = cert.public_bytes(serialization.Encoding.DER)
        assert _issuer_der(der) == cert.issuer.public_bytes()
    assert _issuer_der(b"") is None
    assert _issuer_der(b"\x30\x82\xff\xff") is None  # runs past the end
    assert _issuer_der(b"\x04\x00") is None  # not a SEQUENCE


def test_remembered_issuers_give_the_same_facts_as_a_fresh_parse(
    ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    leaves = [
        issuer.issue_client_certificate(
            now=NOW, validity_days=1, key_type=KeyType.ECDSA_P256, common_name=f"device-{n}"
        ).certificate
        for n, issuer in enumerate([ca, other_ca, ca, other_ca])
    ]
    _ISSUER_NAMES.clear()
    fresh = [describe_certificate(leaf) for leaf in leaves]  # the first of each issuer parses
    remembered = [describe_certificate(leaf) for leaf in leaves]  # all from the memo
    assert fresh == remembered
    assert [f.issuer_dn for f in fresh] == [leaf.issuer.rfc4514_string() for leaf in leaves]
    assert fresh[0].issuer_dn != fresh[1].issuer_dn


@pytest.mark.filterwarnings("ignore:Attribute's length must be")
@FUZZ
@given(data=st.data())
def test_fuzz_issuer_der_finds_the_issuer_or_nothing(seed_der: bytes, data: st.DataObject) -> None:
    der = bytearray(seed_der)
    for _ in range(data.draw(st.integers(1, 3))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    try:
        cert = x509.load_der_x509_certificate(bytes(der))
        issuer = cert.issuer.public_bytes()
    except PARSE_ERRORS:
        return
    found = _issuer_der(cert.public_bytes(serialization.Encoding.DER))
    assert found is None or found == issuer


# -- the facts an issuance returns (IssuedCertificate.facts) equal describe_certificate ------------

_SANS: list[x509.GeneralName] = [
    x509.DNSName("device-1.example"),
    x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
    x509.RFC822Name("dev1@example.com"),
    x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),  # not shown by describe
    x509.UniformResourceIdentifier("spiffe://acct42/device-1"),
    x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
]
_ODD_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),  # PrintableString
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Example, Inc. + "friends"'),
        x509.NameAttribute(NameOID.COMMON_NAME, "#first =cn "),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Zoë <ops>;\\"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Größe ✓", _type=_ASN1Type.UTF8String),
    ]
)


def _ca_variants(
    private_keys: dict[KeyType, Any], odd_keys: dict[str, Any], build_cert: BuildCert
) -> dict[str, CertificateAuthority]:
    """CAs of every signing hash and AKI shape, with plain and awkward names."""
    variants = {
        "p256": create_certificate_authority("certgate P-256 CA", now=NOW - dt.timedelta(days=30)),
        "p384": create_certificate_authority(
            "certgate P-384 CA", now=NOW - dt.timedelta(days=30), key_type=KeyType.ECDSA_P384
        ),
        "rsa2048": create_certificate_authority(
            "certgate RSA CA", now=NOW - dt.timedelta(days=30), key_type=KeyType.RSA2048, organization="Org"
        ),
    }
    p521 = odd_keys["p521"]
    # P-521 (ECDSA-SHA512), an awkward subject, no SKI (the AKI is then made from the key),
    # starting 10 s before NOW (the backdated notBefore is clipped to the CA's) and ending after
    # 2050 (GeneralizedTime).
    odd = build_cert(
        key=p521,
        subject=_ODD_NAME,
        ca=True,
        ski=False,
        aki=False,
        not_before=NOW - dt.timedelta(seconds=10),
        not_after=dt.datetime(2080, 1, 1, tzinfo=dt.UTC),
        hash_algorithm=hashes.SHA512(),
    )
    variants["p521-odd-name-no-ski"] = CertificateAuthority(certificate=odd, private_key=p521)
    rsa_key = private_keys[KeyType.RSA3072]
    plain = build_cert(key=rsa_key, cn="RSA-3072 CA with SKI", ca=True, hash_algorithm=hashes.SHA256())
    variants["rsa3072"] = CertificateAuthority(certificate=plain, private_key=rsa_key)
    return variants


def _csr_shapes(private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]) -> list[bytes]:
    shapes = [make_csr(private_keys[kt], cn=f"device {kt.value}") for kt in KeyType]
    key = private_keys[KeyType.ECDSA_P256]
    shapes += [
        make_csr(key, subject=_ODD_NAME),
        make_csr(key, subject=x509.Name([]), sans=_SANS),  # identity only in the (critical) SAN
        make_csr(key, cn="with sans", sans=_SANS),
        make_csr(
            private_keys[KeyType.RSA2048],
            subject=x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "O")]),
            sans=_SANS[:1],
        ),
        make_csr(
            key,
            subject=x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, "printable", _type=_ASN1Type.PrintableString)]
            ),
        ),
    ]
    return shapes


def _facts_match(issued: IssuedCertificate) -> None:
    _ISSUER_NAMES.clear()  # a fresh parse, not the remembered issuer
    assert issued.facts == describe_certificate(issued.certificate)
    # and the same again from the certificate's own DER, as a client would present it
    reloaded = load_certificate(issued.certificate.public_bytes(serialization.Encoding.DER))
    assert issued.facts == describe_certificate(reloaded)


def test_issued_facts_equal_describe_for_every_ca_key_type_and_path(
    private_keys: dict[KeyType, Any],
    odd_keys: dict[str, Any],
    make_csr: Callable[..., bytes],
    build_cert: BuildCert,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Server-made keys of every type, without waiting for RSA-4096 generation per case.
    monkeypatch.setattr("certgate.pki.authority.generate_private_key", lambda kt: private_keys[kt])
    csrs = [load_csr(data) for data in _csr_shapes(private_keys, make_csr)]
    common_names = ["0123456789abcdef0123456789abcdef", "a,b+c=d", " lead#", "Zoë"]
    late = dt.datetime(2049, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)  # valid until past 2050
    runs = []
    for label, ca in _ca_variants(private_keys, odd_keys, build_cert).items():
        for now in (NOW, late) if ca.certificate.not_valid_after_utc.year > 2050 else (NOW,):
            runs.append((label, now))
            for kt in KeyType:
                for cn in common_names:
                    _facts_match(
                        ca.issue_client_certificate(now=now, validity_days=30, key_type=kt, common_name=cn)
                    )
                _facts_match(
                    ca.issue_client_certificate(
                        now=now, validity_days=30, private_key=private_keys[kt], common_name="k"
                    )
                )
            for csr in csrs:
                _facts_match(ca.issue_client_certificate(now=now, validity_days=365, csr=csr))
            for hostnames in (["edge.example", "192.0.2.7", "*.wild.example"], ["x" * 63 + "." + "y" * 63]):
                _facts_match(ca.issue_server_certificate(hostnames, now=now, validity_days=30))
    assert len(runs) == 6  # five CAs, one of them also across 2050


def test_issued_facts_carry_the_serial_given(ca: CertificateAuthority) -> None:
    issued = ca.issue_client_certificate(
        now=NOW, validity_days=1, key_type=KeyType.ECDSA_P256, common_name="s", serial=0x00FF
    )
    assert issued.facts.serial_number == 0xFF and issued.facts.serial_hex == "ff"
    assert issued.facts.not_before.tzinfo is dt.UTC and issued.facts.not_after.tzinfo is dt.UTC
    _facts_match(issued)
