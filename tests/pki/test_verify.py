from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from certgate.errors import CertGateError, InvalidArgument
from certgate.pki.authority import CertificateAuthority, create_certificate_authority
from certgate.pki.custom_ca import validate_custom_ca
from certgate.pki.errors import ClientCertificateRejected
from certgate.pki.keys import KeyType
from certgate.pki.pem import certificate_to_pem, load_certificate
from certgate.pki.verify import ClientVerifier, VerifiedClient

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]
BuildCert = Callable[..., x509.Certificate]
DER = serialization.Encoding.DER


def rejected(
    verifier: ClientVerifier,
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate] | None = None,
    *,
    now: dt.datetime = NOW,
) -> str:
    with pytest.raises(ClientCertificateRejected) as err:
        verifier.verify(leaf, intermediates or [], now=now)
    return err.value.reason


@pytest.fixture(scope="module")
def leaf(ca: CertificateAuthority) -> x509.Certificate:
    return ca.issue_client_certificate(
        now=NOW - dt.timedelta(days=1), validity_days=30, key_type=KeyType.ECDSA_P256, common_name="device-1"
    ).certificate


@pytest.fixture(scope="module")
def chain(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> dict[str, Any]:
    """root → intermediate → leaf, as a customer's own PKI would be."""
    root_key, int_key, leaf_key = (
        private_keys[k] for k in (KeyType.ECDSA_P384, KeyType.ECDSA_P256, KeyType.RSA2048)
    )
    root = build_cert(key=root_key, cn="Customer Root", ca=True, path_length=1, serial=1)
    intermediate = build_cert(
        key=int_key, cn="Customer Issuing CA", issuer=(root, root_key), ca=True, path_length=0, serial=2
    )
    leaf = build_cert(key=leaf_key, cn="sensor-9", issuer=(intermediate, int_key), eku=CLIENT_AUTH, serial=3)
    return {
        "root": root,
        "root_key": root_key,
        "intermediate": intermediate,
        "int_key": int_key,
        "leaf": leaf,
        "leaf_key": leaf_key,
    }


# -- construction ---------------------------------------------------------------------------------


def test_construction_misuse(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="at least one trust anchor"):
        ClientVerifier([])
    with pytest.raises(ValueError, match="at least one trust anchor"):
        ClientVerifier(ca.certificate)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ClientVerifier([certificate_to_pem(ca.certificate)])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        ClientVerifier([ca.certificate], max_chain_depth=17)
    with pytest.raises(ValueError):
        ClientVerifier([ca.certificate], max_intermediates=-1)
    verifier = ClientVerifier([ca.certificate])
    assert verifier.anchors == (ca.certificate,)


def test_now_must_be_aware(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ClientVerifier([ca.certificate]).verify(leaf, now=NOW.replace(tzinfo=None))


def test_rejection_is_not_an_api_caller_error() -> None:
    assert issubclass(ClientCertificateRejected, CertGateError)
    assert not issubclass(ClientCertificateRejected, InvalidArgument)


# -- the matrix -----------------------------------------------------------------------------------


def test_valid_leaf_of_the_managed_ca(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    verified = ClientVerifier([ca.certificate]).verify(leaf, [], now=NOW)
    assert isinstance(verified, VerifiedClient)
    assert verified.chain == (leaf, ca.certificate)
    assert verified.leaf == leaf and verified.anchor == ca.certificate


def test_chain_through_a_sent_intermediate(chain: dict[str, Any]) -> None:
    verifier = ClientVerifier([chain["root"]])
    verified = verifier.verify(chain["leaf"], [chain["intermediate"]], now=NOW)
    assert verified.chain == (chain["leaf"], chain["intermediate"], chain["root"])
    assert verified.anchor == chain["root"]
    # Without the intermediate there is no path.
    assert rejected(verifier, chain["leaf"]) == "untrusted"


def test_extra_and_unrelated_intermediates_are_harmless(
    chain: dict[str, Any], other_ca: CertificateAuthority
) -> None:
    verifier = ClientVerifier([chain["root"]])
    verified = verifier.verify(
        chain["leaf"], [other_ca.certificate, chain["leaf"], chain["intermediate"], chain["root"]], now=NOW
    )
    assert verified.anchor == chain["root"]


def test_anchor_that_is_an_intermediate(chain: dict[str, Any]) -> None:
    """A custom CA uploaded as 'CA' may be an intermediate; it is trusted as it is."""
    verifier = ClientVerifier([chain["intermediate"]])
    verified = verifier.verify(chain["leaf"], [], now=NOW)
    assert verified.chain == (chain["leaf"], chain["intermediate"])
    assert verified.anchor == chain["intermediate"]
    # Also trusting the root changes nothing: the path stops at the first anchor it meets.
    with_root_anchor = ClientVerifier([chain["intermediate"], chain["root"]])
    assert with_root_anchor.verify(chain["leaf"], [], now=NOW).anchor == chain["intermediate"]


def test_intermediate_anchor_does_not_trust_its_siblings(
    chain: dict[str, Any], private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    other_int_key = private_keys[KeyType.ECDSA_P384]
    other_intermediate = build_cert(
        key=other_int_key,
        cn="Other Issuing CA",
        issuer=(chain["root"], chain["root_key"]),
        ca=True,
        serial=20,
    )
    cousin = build_cert(
        key=chain["leaf_key"], cn="cousin", issuer=(other_intermediate, other_int_key), eku=CLIENT_AUTH
    )
    verifier = ClientVerifier([chain["intermediate"]])
    assert rejected(verifier, cousin, [other_intermediate]) == "untrusted"
    assert (
        ClientVerifier([chain["root"]]).verify(cousin, [other_intermediate], now=NOW).anchor == chain["root"]
    )


def test_untrusted(ca: CertificateAuthority, other_ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    assert rejected(ClientVerifier([other_ca.certificate]), leaf) == "untrusted"
    # Sending the real CA as an "intermediate" does not make it trusted.
    assert rejected(ClientVerifier([other_ca.certificate]), leaf, [ca.certificate]) == "untrusted"


def test_several_anchors(
    ca: CertificateAuthority, other_ca: CertificateAuthority, leaf: x509.Certificate, chain: dict[str, Any]
) -> None:
    verifier = ClientVerifier([other_ca.certificate, ca.certificate, chain["intermediate"]])
    assert verifier.verify(leaf, now=NOW).anchor == ca.certificate
    assert verifier.verify(chain["leaf"], now=NOW).anchor == chain["intermediate"]


def test_expiry_boundaries(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    verifier = ClientVerifier([ca.certificate])
    not_after = leaf.not_valid_after_utc
    assert verifier.verify(leaf, now=not_after).leaf == leaf
    assert verifier.verify(leaf, now=not_after - SECOND).leaf == leaf
    assert rejected(verifier, leaf, now=not_after + SECOND) == "expired"
    with pytest.raises(ClientCertificateRejected) as err:
        verifier.verify(leaf, now=not_after + dt.timedelta(microseconds=999_999) + SECOND)
    assert err.value.reason == "expired" and "notAfter" in err.value.detail


def test_not_yet_valid_boundaries(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    verifier = ClientVerifier([ca.certificate])
    not_before = leaf.not_valid_before_utc
    assert verifier.verify(leaf, now=not_before).leaf == leaf
    assert verifier.verify(leaf, now=not_before + SECOND).leaf == leaf
    assert rejected(verifier, leaf, now=not_before - SECOND) == "not_yet_valid"


def test_validity_checked_before_trust(other_ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    # An expired certificate from an untrusted CA reports "expired": the exact reason first.
    assert (
        rejected(ClientVerifier([other_ca.certificate]), leaf, now=leaf.not_valid_after_utc + SECOND)
        == "expired"
    )


def test_verifier_is_reused_across_times(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    verifier = ClientVerifier([ca.certificate])
    for _ in range(2):  # the cached inner verifier must follow "now", both ways
        assert verifier.verify(leaf, now=NOW).leaf == leaf
        assert rejected(verifier, leaf, now=leaf.not_valid_after_utc + SECOND) == "expired"


@pytest.mark.parametrize(
    ("eku", "accepted"),
    [
        (CLIENT_AUTH, True),
        ([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], True),
        (None, True),  # no EKU means any usage (RFC 5280; OpenSSL and nginx agree)
        ([ExtendedKeyUsageOID.SERVER_AUTH], False),
        ([ExtendedKeyUsageOID.CODE_SIGNING], False),
        ([x509.ObjectIdentifier("2.5.29.37.0")], False),  # anyExtendedKeyUsage alone is not clientAuth
    ],
)
def test_extended_key_usage(
    ca: CertificateAuthority,
    private_keys: dict[KeyType, Any],
    build_cert: BuildCert,
    eku: Any,
    accepted: bool,
) -> None:
    cert = build_cert(key=private_keys[KeyType.ECDSA_P256], issuer=(ca.certificate, ca.private_key), eku=eku)
    verifier = ClientVerifier([ca.certificate])
    if accepted:
        assert verifier.verify(cert, now=NOW).leaf == cert
    else:
        assert rejected(verifier, cert) == "untrusted"


def test_cn_only_leaf_without_san(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    assert x509.SubjectAlternativeName not in {type(e.value) for e in leaf.extensions}
    assert ClientVerifier([ca.certificate]).verify(leaf, now=NOW).leaf == leaf


def test_leaf_with_sans(
    ca: CertificateAuthority, private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    cert = build_cert(
        key=private_keys[KeyType.ECDSA_P256],
        issuer=(ca.certificate, ca.private_key),
        eku=CLIENT_AUTH,
        san=[x509.DNSName("device.example"), x509.UniformResourceIdentifier("spiffe://acct/dev")],
    )
    assert ClientVerifier([ca.certificate]).verify(cert, now=NOW).leaf == cert


def test_leaf_without_aki_from_a_ca_without_key_usage(
    private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    ca_key = private_keys[KeyType.ECDSA_P256]
    bare_ca = build_cert(key=ca_key, cn="bare CA", ca=True, key_usage=None, ski=False, aki=False)
    leaf = build_cert(
        key=private_keys[KeyType.RSA2048], issuer=(bare_ca, ca_key), aki=False, ski=False, eku=CLIENT_AUTH
    )
    assert ClientVerifier([bare_ca]).verify(leaf, now=NOW).anchor == bare_ca


def test_ca_key_usage_must_allow_cert_sign(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> None:
    ca_key = private_keys[KeyType.ECDSA_P256]
    no_sign = x509.KeyUsage(True, False, False, False, False, False, True, False, False)
    weak_ca = build_cert(key=ca_key, cn="no certSign", ca=True, key_usage=no_sign)
    leaf = build_cert(key=private_keys[KeyType.RSA2048], issuer=(weak_ca, ca_key), eku=CLIENT_AUTH)
    assert rejected(ClientVerifier([weak_ca]), leaf) == "untrusted"


def test_ca_certificate_presented_as_the_leaf(ca: CertificateAuthority, chain: dict[str, Any]) -> None:
    assert rejected(ClientVerifier([ca.certificate]), ca.certificate) == "untrusted"
    assert rejected(ClientVerifier([chain["root"]]), chain["intermediate"]) == "untrusted"


def test_leaf_signed_by_a_non_ca(
    ca: CertificateAuthority, leaf: x509.Certificate, private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    # The holder of a client certificate cannot mint more of them.
    leaf_key = private_keys[KeyType.ECDSA_P384]
    holder = ca.issue_client_certificate(
        now=NOW, validity_days=1, key_type=KeyType.ECDSA_P256, common_name="holder"
    )
    minted = build_cert(key=leaf_key, issuer=(holder.certificate, holder.private_key), eku=CLIENT_AUTH)
    assert rejected(ClientVerifier([ca.certificate]), minted, [holder.certificate]) == "untrusted"


def test_expired_intermediate_or_anchor(
    chain: dict[str, Any], private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    old_intermediate = build_cert(
        key=chain["int_key"],
        cn="Customer Issuing CA",
        issuer=(chain["root"], chain["root_key"]),
        ca=True,
        not_before=NOW - dt.timedelta(days=400),
        not_after=NOW - SECOND,
    )
    assert rejected(ClientVerifier([chain["root"]]), chain["leaf"], [old_intermediate]) == "untrusted"
    assert rejected(ClientVerifier([old_intermediate]), chain["leaf"]) == "untrusted"


def test_tampered_leaf(
    ca: CertificateAuthority, leaf: x509.Certificate, flip_last_byte: Callable[[bytes], bytes]
) -> None:
    tampered = x509.load_der_x509_certificate(flip_last_byte(leaf.public_bytes(DER)))
    assert rejected(ClientVerifier([ca.certificate]), tampered) == "untrusted"


def test_rsa_and_p384_cas(private_keys: dict[KeyType, Any]) -> None:
    for key_type in (KeyType.RSA2048, KeyType.ECDSA_P384):
        rsa_ca = create_certificate_authority(
            "CA " + key_type.value, now=NOW - dt.timedelta(days=1), key_type=key_type, validity_days=30
        )
        issued = rsa_ca.issue_client_certificate(
            now=NOW, validity_days=1, key_type=KeyType.RSA2048, common_name="r"
        )
        assert (
            ClientVerifier([rsa_ca.certificate]).verify(issued.certificate, now=NOW).anchor
            == rsa_ca.certificate
        )


def test_every_issued_key_type_verifies(
    ca: CertificateAuthority, private_keys: dict[KeyType, Any], make_csr: Callable[..., bytes]
) -> None:
    from certgate.pki.csr import load_csr

    verifier = ClientVerifier([ca.certificate])
    for key_type in KeyType:
        cert = ca.issue_client_certificate(
            now=NOW, validity_days=1, csr=load_csr(make_csr(private_keys[key_type]))
        ).certificate
        assert verifier.verify(cert, now=NOW).leaf == cert


# -- interoperability with certificates made by other tools -------------------------------------------


def _vector_now(pem: bytes) -> dt.datetime:
    return load_certificate(pem).not_valid_before_utc + dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("ca_name", "leaf_name"),
    [("default-ca.pem", "default-ca-leaf-v3.pem"), ("easyrsa-ca.pem", "easyrsa-client.pem")],
)
def test_openssl_and_easyrsa_pkis_verify(
    vector: Callable[[str], bytes], ca_name: str, leaf_name: str
) -> None:
    ca_pem = vector("openssl/" + ca_name)
    now = _vector_now(ca_pem)
    anchor = validate_custom_ca(ca_pem, now=now)  # what an upload stores is what the edge trusts
    client = load_certificate(vector("openssl/" + leaf_name))
    assert ClientVerifier([anchor]).verify(client, now=now).anchor == anchor


def test_v1_leaf_is_refused(vector: Callable[[str], bytes]) -> None:
    """Documented limit: the webpki profile needs X.509 v3 leaves."""
    ca_pem = vector("openssl/default-ca.pem")
    now = _vector_now(ca_pem)
    v1 = load_certificate(vector("openssl/default-ca-leaf-v1.pem"))
    assert v1.version is x509.Version.v1
    with pytest.raises(ClientCertificateRejected) as err:
        ClientVerifier([load_certificate(ca_pem)]).verify(v1, now=now)
    assert err.value.reason == "untrusted" and "v3" in err.value.detail.lower().replace("x509v3", "v3")


@pytest.mark.parametrize(
    "options",
    [
        {"key_usage": None},
        {"ski": False, "aki": False},
        {"eku": CLIENT_AUTH},
        {"eku": [ExtendedKeyUsageOID.SERVER_AUTH, x509.ObjectIdentifier("2.5.29.37.0")]},
        {"path_length": None},
        {"extra": [(x509.NameConstraints([x509.DNSName("example.com")], None), True)]},
        {
            "extra": [
                (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), False)
            ]
        },
    ],
)
def test_every_accepted_custom_ca_actually_verifies_its_clients(
    private_keys: dict[KeyType, Any], build_cert: BuildCert, options: dict[str, Any]
) -> None:
    """validate_custom_ca and ClientVerifier must agree: an accepted CA is never useless."""
    ca_key = private_keys[KeyType.ECDSA_P384]
    anchor = build_cert(key=ca_key, cn="Uploaded CA", ca=True, **options)
    assert validate_custom_ca(certificate_to_pem(anchor), now=NOW) == anchor
    client = build_cert(
        key=private_keys[KeyType.ECDSA_P256], cn="client", issuer=(anchor, ca_key), eku=CLIENT_AUTH
    )
    assert ClientVerifier([anchor]).verify(client, now=NOW).anchor == anchor


# -- DER input from the wire ----------------------------------------------------------------------------


def test_verify_der(ca: CertificateAuthority, leaf: x509.Certificate, chain: dict[str, Any]) -> None:
    assert ClientVerifier([ca.certificate]).verify_der(leaf.public_bytes(DER), now=NOW).leaf == leaf
    verified = ClientVerifier([chain["root"]]).verify_der(
        chain["leaf"].public_bytes(DER),
        [chain["leaf"].public_bytes(DER), chain["intermediate"].public_bytes(DER)],
        now=NOW,
    )
    assert verified.chain == (chain["leaf"], chain["intermediate"], chain["root"])


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"\x30\x03\x02\x01\x01", b"hello", "text"])
def test_verify_der_garbage_is_invalid(
    ca: CertificateAuthority, leaf: x509.Certificate, garbage: Any
) -> None:
    verifier = ClientVerifier([ca.certificate])
    for leaf_der, chain_der in ((garbage, []), (leaf.public_bytes(DER), [garbage])):
        with pytest.raises(ClientCertificateRejected) as err:
            verifier.verify_der(leaf_der, chain_der, now=NOW)
        assert err.value.reason == "invalid"


def test_zero_serial_leaf_is_invalid(
    ca: CertificateAuthority, private_keys: dict[KeyType, Any], build_cert: BuildCert
) -> None:
    der = build_cert(
        key=private_keys[KeyType.ECDSA_P256], issuer=(ca.certificate, ca.private_key), serial=1
    ).public_bytes(DER)
    zero = der.replace(bytes.fromhex("a003020102020101"), bytes.fromhex("a003020102020100"))
    with pytest.raises(ClientCertificateRejected) as err:
        ClientVerifier([ca.certificate]).verify_der(zero, now=NOW)
    assert err.value.reason == "invalid"


def test_too_many_intermediates(ca: CertificateAuthority, leaf: x509.Certificate) -> None:
    verifier = ClientVerifier([ca.certificate], max_intermediates=2)
    assert verifier.verify(leaf, [ca.certificate, ca.certificate], now=NOW).leaf == leaf
    for call in (
        lambda: verifier.verify(leaf, [ca.certificate] * 3, now=NOW),
        lambda: verifier.verify_der(leaf.public_bytes(DER), [b"x"] * 3, now=NOW),
    ):
        with pytest.raises(ClientCertificateRejected) as err:
            call()
        assert err.value.reason == "invalid"


def test_chain_depth_limit(private_keys: dict[KeyType, Any], build_cert: BuildCert) -> None:
    key = private_keys[KeyType.ECDSA_P256]
    root = build_cert(key=key, cn="root", ca=True, serial=100)
    cas = [root]
    for depth in range(3):
        cas.append(
            build_cert(key=key, cn=f"level {depth}", issuer=(cas[-1], key), ca=True, serial=101 + depth)
        )
    client = build_cert(key=key, cn="deep client", issuer=(cas[-1], key), eku=CLIENT_AUTH, serial=200)
    intermediates = list(reversed(cas[1:]))
    assert ClientVerifier([root]).verify(client, intermediates, now=NOW).anchor == root
    assert rejected(ClientVerifier([root], max_chain_depth=2), client, intermediates) == "untrusted"
