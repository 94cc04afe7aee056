"""Per-request client-certificate verdicts, from DER as ``tls.peer_certificates`` returns it.

Handshakes are covered by test_tls.py; here the interest is the verdict itself, the cache and
everything that must *not* be cached (dates, revocation). ECDSA P-256 PKI, built once.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certgate.clock import FixedClock
from certgate.edge.clientauth import (
    CERT_STATUSES,
    NO_CERTIFICATE,
    RFC9440_HEADER_NAMES,
    ClientAuth,
    ClientAuthenticator,
    rfc9440_headers,
)
from certgate.edge.state import EdgeState, HostState
from certgate.edge.tls import TLSContextFactory
from certgate.pki.authority import CertificateAuthority, create_certificate_authority
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.rules import EDGE_SCHEME, compile_filter, parse
from certgate.rules.edge_scheme import CERT_STATUSES as SCHEME_STATUSES
from certgate.rules.edge_scheme import CLIENT_AUTH_PREFIX
from certgate.snapshot.format import (
    EdgeTLSCertificate,
    HostPolicy,
    OriginPolicy,
    SitePolicy,
    Snapshot,
    TrustAnchor,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)
DER = serialization.Encoding.DER

KeyPair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _certificate(
    subject: str,
    issuer: KeyPair | None,
    *,
    ca: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
    eku: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    signer = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return builder.sign(signer, hashes.SHA256()), key


@dataclasses.dataclass(frozen=True)
class PKI:
    managed: CertificateAuthority
    custom_root: x509.Certificate
    edge: EdgeTLSCertificate
    chains: dict[str, tuple[bytes, ...]]  # leaf DER first, then the intermediates the client sends

    def leaf(self, name: str) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.chains[name][0])

    def serial(self, name: str) -> str:
        return format(self.leaf(name).serial_number, "x")

    def snapshot(
        self,
        *,
        version: int = 1,
        revoked: tuple[str, ...] = (),
        custom_revoked: tuple[str, ...] = (),
        extra_anchors: dict[str, TrustAnchor] | None = None,
        extra_trust: dict[str, tuple[str, ...]] | None = None,
    ) -> Snapshot:
        anchors = {
            "managed": TrustAnchor(
                "managed", "managed", certificate_to_pem(self.managed.certificate), revoked
            ),
            "custom": TrustAnchor("custom", "custom", certificate_to_pem(self.custom_root), custom_revoked),
            **(extra_anchors or {}),
        }
        trust = {
            "managed.example.com": ("managed",),
            "both.example.com": ("custom", "managed"),
            "plain.example.com": (),
            **(extra_trust or {}),
        }
        return Snapshot(
            version=version,
            generated_at=int(NOW.timestamp()),
            anchors=anchors,
            sites={1: SitePolicy(id=1, account_id="acct", name="example.com")},
            hosts={
                name: HostPolicy(name, 1, OriginPolicy("127.0.0.1"), self.edge, bound)
                for name, bound in trust.items()
            },
        )


def _der_chain(*certificates: x509.Certificate) -> tuple[bytes, ...]:
    return tuple(c.public_bytes(DER) for c in certificates)


@pytest.fixture(scope="module")
def pki() -> PKI:
    managed = create_certificate_authority("Managed CA", now=NOW - 400 * DAY, validity_days=3650)
    rogue = create_certificate_authority("Rogue CA", now=NOW - 400 * DAY, validity_days=3650)

    def issue(ca: CertificateAuthority, cn: str, at: dt.datetime, days: int) -> tuple[bytes, ...]:
        issued = ca.issue_client_certificate(
            now=at, validity_days=days, key_type=KeyType.ECDSA_P256, common_name=cn
        )
        return _der_chain(issued.certificate)

    root = _certificate("Custom Root", None, ca=True, not_before=NOW - 400 * DAY, not_after=NOW + 3000 * DAY)
    # The intermediate expires 10 days from NOW, before the leaf it issued.
    intermediate = _certificate(
        "Custom Issuing CA", root, ca=True, not_before=NOW - 400 * DAY, not_after=NOW + 10 * DAY
    )
    custom_leaf = _certificate(
        "partner-7", intermediate, ca=False, not_before=NOW - DAY, not_after=NOW + 300 * DAY
    )
    assert isinstance(managed.private_key, ec.EllipticCurvePrivateKey)
    wrong_eku = _certificate(
        "server-only",
        (managed.certificate, managed.private_key),
        ca=False,
        not_before=NOW - DAY,
        not_after=NOW + 300 * DAY,
        eku=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    edge_cert, edge_key = _certificate(
        "edge", None, ca=False, not_before=NOW - DAY, not_after=NOW + 300 * DAY
    )
    chains = {
        "valid": issue(managed, "device-1", NOW - DAY, 365),
        "revoked": issue(managed, "device-revoked", NOW - DAY, 365),
        "expired": issue(managed, "device-expired", NOW - 200 * DAY, 30),
        "not_yet_valid": issue(managed, "device-future", NOW + 10 * DAY, 30),
        "untrusted": issue(rogue, "mallory", NOW - DAY, 365),
        "wrong_eku": _der_chain(wrong_eku[0]),
        "custom": _der_chain(custom_leaf[0], intermediate[0]),
        "custom_leaf_only": _der_chain(custom_leaf[0]),
    }
    edge = EdgeTLSCertificate(certificate_to_pem(edge_cert), private_key_to_pem(edge_key))
    return PKI(managed, root[0], edge, chains)


@pytest.fixture(scope="module")
def factory() -> TLSContextFactory:
    return TLSContextFactory()  # one factory: contexts are reused between the tests' states


def build(pki: PKI, factory: TLSContextFactory, **kwargs: object) -> EdgeState:
    return EdgeState.from_snapshot(pki.snapshot(**kwargs), now=NOW, tls_factory=factory)  # type: ignore[arg-type]


def host(state: EdgeState, name: str) -> HostState:
    found = state.host(name)
    assert found is not None
    return found


def judge(
    authenticator: ClientAuthenticator,
    state: EdgeState,
    hostname: str,
    chain: tuple[bytes, ...] | None,
    now: dt.datetime = NOW,
) -> ClientAuth:
    leaf, intermediates = (chain[0], chain[1:]) if chain else (None, ())
    return authenticator.authenticate(state, host(state, hostname), leaf, intermediates, now=now)


MATRIX = [
    ("managed.example.com", None, "none"),
    ("managed.example.com", "valid", "valid"),
    ("managed.example.com", "untrusted", "untrusted"),
    ("managed.example.com", "expired", "expired"),
    ("managed.example.com", "not_yet_valid", "not_yet_valid"),
    ("managed.example.com", "wrong_eku", "untrusted"),
    ("managed.example.com", "revoked", "revoked"),
    ("managed.example.com", "custom", "untrusted"),
    ("both.example.com", "custom", "valid"),
    ("both.example.com", "custom_leaf_only", "untrusted"),  # the intermediate is needed
    ("both.example.com", "valid", "valid"),
    ("plain.example.com", "valid", "untrusted"),  # nothing is trusted on a non-mTLS hostname
]


@pytest.mark.parametrize(("hostname", "case", "expected"), MATRIX)
def test_status_matrix(
    pki: PKI, factory: TLSContextFactory, hostname: str, case: str | None, expected: str
) -> None:
    state = build(pki, factory, revoked=(pki.serial("revoked"),))
    auth = judge(ClientAuthenticator(), state, hostname, pki.chains[case] if case else None)
    assert auth.cert_status == expected
    assert auth.cert_status in CERT_STATUSES
    assert auth.cert_presented is (case is not None)
    assert auth.cert_verified is (expected == "valid")
    assert auth.cert_revoked is (expected == "revoked")


def test_valid_certificate_exposes_every_field(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    auth = judge(ClientAuthenticator(), state, "managed.example.com", pki.chains["valid"])
    leaf = pki.leaf("valid")
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki is not None
    assert auth == ClientAuth(
        cert_presented=True,
        cert_verified=True,
        cert_revoked=False,
        cert_status="valid",
        cert_fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        cert_serial=format(leaf.serial_number, "x"),
        cert_subject_dn="CN=device-1",
        cert_issuer_dn="CN=Managed CA",
        cert_ski=ski,
        cert_issuer_ski=aki.hex(),
        cert_not_before=int(leaf.not_valid_before_utc.timestamp()),
        cert_not_after=int(leaf.not_valid_after_utc.timestamp()),
        anchor_id="managed",
        client_cert=b":" + base64.b64encode(pki.chains["valid"][0]) + b":",
        client_cert_chain=b"",
    )


def test_no_certificate_is_the_empty_verdict(pki: PKI, factory: TLSContextFactory) -> None:
    auth = judge(ClientAuthenticator(), build(pki, factory), "managed.example.com", None)
    assert auth is NO_CERTIFICATE
    assert (auth.cert_presented, auth.cert_verified, auth.cert_status) == (False, False, "none")
    assert rfc9440_headers(auth) == [(b"Client-Cert-Status", b"none")]


def test_garbage_is_invalid_and_never_raises(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    authenticator = ClientAuthenticator()
    for chain in [(b"not a certificate",), (b"",), (pki.chains["valid"][0], b"\x30\x03\x02\x01\x00")]:
        auth = judge(authenticator, state, "managed.example.com", chain)
        assert (auth.cert_presented, auth.cert_verified, auth.cert_status) == (True, False, "invalid")
    garbage = judge(authenticator, state, "managed.example.com", (b"junk",))
    assert garbage.cert_fingerprint_sha256 == "" and garbage.cert_not_after == 0
    assert garbage.client_cert == b":" + base64.b64encode(b"junk") + b":"


def test_rfc9440_headers_carry_leaf_and_client_sent_chain(pki: PKI, factory: TLSContextFactory) -> None:
    auth = judge(ClientAuthenticator(), build(pki, factory), "both.example.com", pki.chains["custom"])
    headers = dict(rfc9440_headers(auth))
    assert list(headers) == [b"Client-Cert", b"Client-Cert-Chain", b"Client-Cert-Status"]
    assert {name.lower() for name in headers} == set(RFC9440_HEADER_NAMES)
    assert headers[b"Client-Cert-Status"] == b"valid"
    leaf_value = headers[b"Client-Cert"]
    assert leaf_value.startswith(b":") and leaf_value.endswith(b":")
    assert base64.b64decode(leaf_value[1:-1]) == pki.chains["custom"][0]
    items = headers[b"Client-Cert-Chain"].split(b", ")
    assert [base64.b64decode(item[1:-1]) for item in items] == list(pki.chains["custom"][1:])
    # Untrusted certificates are forwarded too; the status says what they are worth.
    untrusted = judge(
        ClientAuthenticator(), build(pki, factory), "managed.example.com", pki.chains["untrusted"]
    )
    assert dict(rfc9440_headers(untrusted))[b"Client-Cert-Status"] == b"untrusted"
    assert b"Client-Cert" in dict(rfc9440_headers(untrusted))


def test_revocation_swapped_into_the_state_flips_a_cached_verdict(
    pki: PKI, factory: TLSContextFactory
) -> None:
    authenticator = ClientAuthenticator()
    before = build(pki, factory)
    assert judge(authenticator, before, "managed.example.com", pki.chains["valid"]).cert_status == "valid"
    after = EdgeState.from_snapshot(
        pki.snapshot(version=2, revoked=(pki.serial("valid"),)), now=NOW, previous=before
    )
    assert host(after, "managed.example.com").trust is host(before, "managed.example.com").trust
    revoked = judge(authenticator, after, "managed.example.com", pki.chains["valid"])
    assert (revoked.cert_status, revoked.cert_verified, revoked.cert_revoked) == ("revoked", False, True)
    # The old state (a request that started before the swap) still answers from its own snapshot.
    assert judge(authenticator, before, "managed.example.com", pki.chains["valid"]).cert_status == "valid"
    assert (authenticator.misses, authenticator.hits) == (1, 2)


def test_revocation_is_per_anchor(pki: PKI, factory: TLSContextFactory) -> None:
    # The same serial listed by another anchor does not revoke a managed certificate.
    state = build(pki, factory, custom_revoked=(pki.serial("valid"),))
    assert judge(ClientAuthenticator(), state, "both.example.com", pki.chains["valid"]).cert_status == "valid"


def test_revoking_an_intermediate_revokes_what_it_issued(pki: PKI, factory: TLSContextFactory) -> None:
    intermediate = x509.load_der_x509_certificate(pki.chains["custom"][1])
    state = build(pki, factory, custom_revoked=(format(intermediate.serial_number, "X"),))
    auth = judge(ClientAuthenticator(), state, "both.example.com", pki.chains["custom"])
    assert (auth.cert_status, auth.cert_revoked) == ("revoked", True)


def test_an_anchor_listed_twice_is_revoked_through_either_id(pki: PKI, factory: TLSContextFactory) -> None:
    twin = TrustAnchor("twin", "custom", certificate_to_pem(pki.managed.certificate), (pki.serial("valid"),))
    state = build(
        pki, factory, extra_anchors={"twin": twin}, extra_trust={"twin.example.com": ("managed", "twin")}
    )
    auth = judge(ClientAuthenticator(), state, "twin.example.com", pki.chains["valid"])
    assert (auth.cert_status, auth.cert_revoked) == ("revoked", True)


def test_expired_and_revoked_reports_both_facts(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory, revoked=(pki.serial("expired"),))
    auth = judge(ClientAuthenticator(), state, "managed.example.com", pki.chains["expired"])
    assert (auth.cert_status, auth.cert_revoked, auth.cert_verified) == ("expired", True, False)


def test_expiry_is_never_cached(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    authenticator = ClientAuthenticator()
    clock = FixedClock(NOW)
    not_after = pki.leaf("valid").not_valid_after_utc
    answers = []
    for moment in (NOW, not_after - SECOND, not_after, not_after + SECOND, NOW):
        clock.set(moment)
        answers.append(
            judge(authenticator, state, "managed.example.com", pki.chains["valid"], clock.now()).cert_status
        )
    assert answers == ["valid", "valid", "valid", "expired", "valid"]
    assert authenticator.misses == 1


def test_not_yet_valid_becomes_valid_without_a_new_verification(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    authenticator = ClientAuthenticator()
    not_before = pki.leaf("not_yet_valid").not_valid_before_utc
    statuses = [
        judge(authenticator, state, "managed.example.com", pki.chains["not_yet_valid"], moment).cert_status
        for moment in (NOW, not_before - SECOND, not_before)
    ]
    assert statuses == ["not_yet_valid", "not_yet_valid", "valid"]
    assert authenticator.misses == 1


def test_an_intermediate_expiring_makes_the_chain_untrusted(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    authenticator = ClientAuthenticator()
    expires = x509.load_der_x509_certificate(pki.chains["custom"][1]).not_valid_after_utc
    statuses = [
        judge(authenticator, state, "both.example.com", pki.chains["custom"], moment).cert_status
        for moment in (NOW, expires, expires + SECOND)
    ]
    assert statuses == ["valid", "valid", "untrusted"]
    assert authenticator.misses == 1
    # Uncached, the verifier agrees (an expired intermediate is "untrusted", not "expired").
    fresh = judge(ClientAuthenticator(), state, "both.example.com", pki.chains["custom"], expires + SECOND)
    assert fresh.cert_status == "untrusted"


def test_negative_verdicts_are_rechecked_after_their_ttl(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    authenticator = ClientAuthenticator(negative_ttl=60)
    for moment in (NOW, NOW + 59 * SECOND, NOW + 60 * SECOND):
        judge(authenticator, state, "managed.example.com", pki.chains["untrusted"], moment)
    assert (authenticator.misses, authenticator.hits) == (2, 1)


def test_cache_is_keyed_by_trust_set_and_intermediates(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    authenticator = ClientAuthenticator()
    assert judge(authenticator, state, "managed.example.com", pki.chains["custom"]).cert_status == "untrusted"
    assert judge(authenticator, state, "both.example.com", pki.chains["custom"]).cert_status == "valid"
    assert (
        judge(authenticator, state, "both.example.com", pki.chains["custom_leaf_only"]).cert_status
        == "untrusted"
    )
    assert authenticator.misses == 3 and len(authenticator) == 3


def test_cache_survives_a_revocation_only_snapshot_but_not_a_trust_change(
    pki: PKI, factory: TLSContextFactory
) -> None:
    authenticator = ClientAuthenticator()
    first = build(pki, factory)
    judge(authenticator, first, "managed.example.com", pki.chains["valid"])
    second = EdgeState.from_snapshot(pki.snapshot(version=2, revoked=("abc",)), now=NOW, previous=first)
    judge(authenticator, second, "managed.example.com", pki.chains["valid"])
    assert authenticator.misses == 1
    # Binding the custom CA to the hostname changes its trust set: the verdict is recomputed.
    third = EdgeState.from_snapshot(
        pki.snapshot(version=3, extra_trust={"managed.example.com": ("custom", "managed")}),
        now=NOW,
        previous=second,
    )
    assert judge(authenticator, third, "managed.example.com", pki.chains["custom"]).cert_status == "valid"
    assert authenticator.misses == 2


def test_cache_is_bounded_lru(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    authenticator = ClientAuthenticator(cache_size=2)
    for case in ("valid", "revoked", "valid", "expired"):  # "revoked" is the least recently used
        judge(authenticator, state, "managed.example.com", pki.chains[case])
    assert len(authenticator) == 2
    judge(authenticator, state, "managed.example.com", pki.chains["valid"])
    judge(authenticator, state, "managed.example.com", pki.chains["revoked"])
    assert (authenticator.hits, authenticator.misses) == (2, 4)
    with pytest.raises(ValueError):
        ClientAuthenticator(cache_size=0)


def test_repeated_verdicts_are_shared_objects(pki: PKI, factory: TLSContextFactory) -> None:
    state = build(pki, factory)
    authenticator = ClientAuthenticator()
    first = judge(authenticator, state, "managed.example.com", pki.chains["valid"])
    assert judge(authenticator, state, "managed.example.com", pki.chains["valid"]) is first


def test_every_scheme_field_is_answered_with_its_type(pki: PKI, factory: TLSContextFactory) -> None:
    # The rule language's list of tls.client_auth.* fields is the contract this module serves.
    assert CERT_STATUSES == SCHEME_STATUSES
    fields = [f.name for f in EDGE_SCHEME.fields if f.name.startswith(CLIENT_AUTH_PREFIX)]
    assert {name.removeprefix(CLIENT_AUTH_PREFIX) for name in fields} <= set(ClientAuth.__dataclass_fields__)
    state = build(pki, factory)
    auth = judge(ClientAuthenticator(), state, "managed.example.com", pki.chains["valid"])
    rule = compile_filter(
        parse(
            'cf.tls_client_auth.cert_verified and tls.client_auth.cert_status eq "valid" '
            'and tls.client_auth.cert_subject_dn eq "CN=device-1" and tls.client_auth.cert_not_after gt 0 '
            f'and tls.client_auth.cert_serial eq "{auth.cert_serial}" and not tls.client_auth.cert_revoked',
            EDGE_SCHEME,
        )
    )
    context = EDGE_SCHEME.context(lambda name: getattr(auth, name.removeprefix(CLIENT_AUTH_PREFIX)))
    assert rule.execute(context)
    for name in fields:  # every field type-checks (the context raises FieldValueError otherwise)
        context.get(name)


def test_window_is_where_the_verdict_cannot_change(pki: PKI, factory: TLSContextFactory) -> None:
    authenticator = ClientAuthenticator()
    state = build(pki, factory)
    managed = host(state, "managed.example.com")
    leaf_der = pki.chains["valid"][0]
    auth, lo, hi = authenticator.authenticate_window(state, managed, leaf_der, now=NOW)
    assert auth.cert_status == "valid" and lo < NOW.timestamp() < hi
    leaf = pki.leaf("valid")
    # The nearest bounds: the leaf's own dates here (the CA's window is wider on both sides).
    assert (lo, hi) == (leaf.not_valid_before_utc.timestamp(), leaf.not_valid_after_utc.timestamp())
    for moment in (lo + 1e-3, hi - 1e-3):
        assert (
            authenticator.authenticate(state, managed, leaf_der, now=dt.datetime.fromtimestamp(moment, UTC))
            is auth
        )
    # Exactly on a bound there is nothing to reuse; past it the verdict differs.
    on_bound = authenticator.authenticate_window(state, managed, leaf_der, now=leaf.not_valid_after_utc)
    assert on_bound[0].cert_status == "valid" and on_bound[1] == on_bound[2] == hi
    after = authenticator.authenticate(state, managed, leaf_der, now=leaf.not_valid_after_utc + SECOND)
    assert after.cert_status == "expired"
    assert authenticator.authenticate_window(state, managed, None, now=NOW) == (
        NO_CERTIFICATE,
        float("-inf"),
        float("inf"),
    )


def test_window_of_an_untrusted_verdict_ends_at_its_recheck(pki: PKI, factory: TLSContextFactory) -> None:
    authenticator = ClientAuthenticator(negative_ttl=60)
    state = build(pki, factory)
    auth, lo, hi = authenticator.authenticate_window(
        state,
        host(state, "managed.example.com"),
        pki.chains["untrusted"][0],
        pki.chains["untrusted"][1:],
        now=NOW,
    )
    assert auth.cert_status == "untrusted" and lo < NOW.timestamp() < hi == NOW.timestamp() + 60
