"""EdgeState: snapshot → per-host TLS, trust, rules and revocation; reuse across snapshots."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certgate.edge import tls
from certgate.edge.state import EdgeState, HostState
from certgate.edge.tls import SNIRouter, TLSContextError, TLSContextFactory, TLSSettings
from certgate.pki.keys import private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.snapshot.format import (
    EdgeTLSCertificate,
    HostPolicy,
    OriginPolicy,
    OriginRuleSpec,
    SitePolicy,
    Snapshot,
    TrustAnchor,
    WafRuleSpec,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)
BROKEN = "unknown.BAD.field eq 1"  # refused by the rule language: unknown field


def _self_signed(cn: str, *, ca: bool, not_after: dt.datetime = NOW + 900 * DAY) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 900 * DAY)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate_to_pem(certificate), private_key_to_pem(key)


@dataclasses.dataclass(frozen=True)
class Material:
    ca_one: str
    ca_two: str
    edge: dict[str, EdgeTLSCertificate]


@pytest.fixture(scope="module")
def material() -> Material:
    edge = {}
    for name in ("a.example.com", "b.example.com", "c.example.com", "*.w.example.com", "d.other.org"):
        chain, key = _self_signed(name, ca=False)
        edge[name] = EdgeTLSCertificate(chain, key)
    return Material(_self_signed("CA one", ca=True)[0], _self_signed("CA two", ca=True)[0], edge)


def waf(rule_id: int, position: int, expression: str, action: str = "deny") -> WafRuleSpec:
    return WafRuleSpec(
        id=rule_id, name=f"r{rule_id}", expression=expression, action=action, position=position
    )


def make_snapshot(
    m: Material,
    *,
    version: int = 1,
    revoked: tuple[str, ...] = (),
    waf_rules: tuple[WafRuleSpec, ...] = (),
    origin_rules: tuple[OriginRuleSpec, ...] = (),
    anchors: dict[str, TrustAnchor] | None = None,
    trust: dict[str, tuple[str, ...]] | None = None,
    edge: dict[str, EdgeTLSCertificate] | None = None,
) -> Snapshot:
    anchors = anchors or {
        "one": TrustAnchor("one", "managed", m.ca_one, revoked),
        "two": TrustAnchor("two", "custom", m.ca_two),
    }
    trust = trust or {
        "a.example.com": ("one",),
        "b.example.com": ("one",),
        "c.example.com": ("one", "two"),
        "*.w.example.com": (),
        "d.other.org": (),
    }
    certificates = {**m.edge, **(edge or {})}
    hosts = {
        name: HostPolicy(
            name, 2 if name.endswith("other.org") else 1, OriginPolicy("10.0.0.1"), certificates[name], bound
        )
        for name, bound in trust.items()
    }
    sites = {
        1: SitePolicy(1, "acct", "example.com", waf_rules=waf_rules, origin_rules=origin_rules),
        2: SitePolicy(2, "acct", "other.org"),
    }
    return Snapshot(version=version, generated_at=0, anchors=anchors, sites=sites, hosts=hosts)


@pytest.fixture(scope="module")
def factory() -> TLSContextFactory:
    return TLSContextFactory()


def served(state: EdgeState, name: str) -> HostState:
    found = state.host(name)
    assert found is not None, name
    return found


def test_every_host_gets_its_context_trust_and_rules(material: Material, factory: TLSContextFactory) -> None:
    rules = (waf(7, 1, 'http.host eq "a.example.com"'),)
    state = EdgeState.from_snapshot(make_snapshot(material, waf_rules=rules), now=NOW, tls_factory=factory)
    assert state.version == 1 and state.built_at == NOW and state.problems == ()
    assert set(state.hosts) == set(state.tls_contexts) == set(make_snapshot(material).hosts)
    a, c = served(state, "a.example.com"), served(state, "c.example.com")
    assert a.mtls and a.trust is not None and [aid for aid, _ in a.trust.anchors] == ["one"]
    assert c.trust is not None and [aid for aid, _ in c.trust.anchors] == ["one", "two"]
    assert [r.spec.id for r in a.waf_rules] == [7] and a.site.id == 1
    assert served(state, "d.other.org").waf_rules == ()
    plain = served(state, "x.w.example.com")
    assert plain.hostname == "*.w.example.com" and plain.trust is None and not plain.mtls
    assert state.host("w.example.com") is None and state.host("nope.example.com") is None
    assert tls.verify_mode(a.tls_context) == 1 and tls.verify_mode(plain.tls_context) == 0
    assert state.tls_contexts["a.example.com"] is a.tls_context


def test_equal_trust_sets_share_one_verifier(material: Material, factory: TLSContextFactory) -> None:
    state = EdgeState.from_snapshot(make_snapshot(material), now=NOW, tls_factory=factory)
    a, b, c = (served(state, n).trust for n in ("a.example.com", "b.example.com", "c.example.com"))
    assert a is b and a is not None and c is not None
    assert a.verifier is not None and a.verifier is b.verifier and a.key != c.key
    one = x509.load_pem_x509_certificate(material.ca_one.encode())
    assert a.anchor_ids(one) == ("one",) and a.ca_names == (one.subject.public_bytes(),)


def test_identical_inputs_are_reused_across_snapshots(material: Material, factory: TLSContextFactory) -> None:
    rules = (waf(1, 1, 'http.host eq "a.example.com"'),)
    first = EdgeState.from_snapshot(make_snapshot(material, waf_rules=rules), now=NOW, tls_factory=factory)
    # A revocation-only snapshot: no SSLContext, verifier or rule is rebuilt.
    second = EdgeState.from_snapshot(
        make_snapshot(material, version=2, revoked=("01",), waf_rules=rules), now=NOW, previous=first
    )
    for name in first.hosts:
        assert second.hosts[name].tls_context is first.hosts[name].tls_context
        assert second.hosts[name].trust is first.hosts[name].trust
    assert (
        served(second, "a.example.com").waf_rules[0].filter
        is served(first, "a.example.com").waf_rules[0].filter
    )
    assert second.tls_factory is factory
    # A new certificate for one host rebuilds that context only.
    new_chain, new_key = _self_signed("a.example.com", ca=False)
    third = EdgeState.from_snapshot(
        make_snapshot(material, version=3, edge={"a.example.com": EdgeTLSCertificate(new_chain, new_key)}),
        now=NOW,
        previous=second,
    )
    assert third.hosts["a.example.com"].tls_context is not second.hosts["a.example.com"].tls_context
    assert third.hosts["b.example.com"].tls_context is second.hosts["b.example.com"].tls_context
    # Other TLS settings: every context is rebuilt.
    fourth = EdgeState.from_snapshot(
        make_snapshot(material, version=4),
        now=NOW,
        previous=third,
        tls_factory=TLSContextFactory(TLSSettings(minimum_version=ssl.TLSVersion.TLSv1_3)),
    )
    assert all(fourth.hosts[n].tls_context is not third.hosts[n].tls_context for n in fourth.hosts)
    assert fourth.hosts["a.example.com"].trust is third.hosts["a.example.com"].trust


def test_trust_change_builds_a_new_context_with_new_ca_names(
    material: Material, factory: TLSContextFactory
) -> None:
    first = EdgeState.from_snapshot(make_snapshot(material), now=NOW, tls_factory=factory)
    trust = {"a.example.com": ("one", "two"), "b.example.com": (), "c.example.com": ("one", "two")}
    second = EdgeState.from_snapshot(
        make_snapshot(material, version=2, trust={**trust, "*.w.example.com": (), "d.other.org": ()}),
        now=NOW,
        previous=first,
    )
    a = served(second, "a.example.com")
    assert a.tls_context is not first.hosts["a.example.com"].tls_context
    assert a.trust is first.hosts["c.example.com"].trust  # same anchors as c had: same trust set
    assert len(tls.client_ca_names(a.tls_context)) == 2
    b = served(second, "b.example.com")
    assert b.trust is None and tls.verify_mode(b.tls_context) == 0


def test_revoked_serials_are_an_o1_lookup_in_any_hex_spelling(
    material: Material, factory: TLSContextFactory
) -> None:
    snapshot = make_snapshot(material, revoked=("5eed0001", "00AB:CD", "not-hex", "ff"))
    state = EdgeState.from_snapshot(snapshot, now=NOW, tls_factory=factory)
    assert (
        state.is_revoked("one", 0x5EED0001)
        and state.is_revoked("one", 0xABCD)
        and state.is_revoked("one", 255)
    )
    assert not state.is_revoked("two", 0x5EED0001) and not state.is_revoked("one", 1)
    assert [(p.kind, p.subject) for p in state.problems] == [("revoked_serial", "anchor one")]
    later = EdgeState.from_snapshot(dataclasses.replace(snapshot, version=2), now=NOW, previous=state)
    assert later.revoked["one"] is state.revoked["one"]  # unchanged list: set reused


def test_waf_rules_run_in_position_order_and_broken_ones_are_skipped(
    material: Material, factory: TLSContextFactory
) -> None:
    rules = (
        waf(3, 30, 'http.host eq "c.example.com"'),
        waf(1, 10, "not tls.client_auth.cert_verified"),
        waf(2, 20, BROKEN),
        waf(4, 5, "not tls.client_auth.cert_verified", action="monitor"),
    )
    state = EdgeState.from_snapshot(make_snapshot(material, waf_rules=rules), now=NOW, tls_factory=factory)
    a = served(state, "a.example.com")
    assert [r.spec.id for r in a.waf_rules] == [4, 1, 3]
    assert a.waf_rules[0].filter is a.waf_rules[1].filter  # one expression, compiled once
    assert [(p.kind, p.subject) for p in a.rule_problems] == [("waf_rule", "site 1 rule 2")]
    assert "skipped" in a.rule_problems[0].message
    assert list(state.problems) == list(a.rule_problems)
    assert served(state, "d.other.org").rule_problems == ()


def test_origin_rules_compile_in_sequence_order(material: Material, factory: TLSContextFactory) -> None:
    origin = (
        OriginRuleSpec(
            id=2, name="late", expression='http.host eq "a.example.com"', sequence=2, http_port=8080
        ),
        OriginRuleSpec(
            id=1, name="early", expression='http.host eq "b.example.com"', sequence=1, host="b.internal"
        ),
        OriginRuleSpec(id=3, name="broken", expression=BROKEN, sequence=3),
    )
    state = EdgeState.from_snapshot(
        make_snapshot(material, origin_rules=origin), now=NOW, tls_factory=factory
    )
    a = served(state, "a.example.com")
    assert [r.spec.id for r in a.origin_rules] == [1, 2]
    assert [p.subject for p in a.rule_problems] == ["site 1 origin rule 3"]


def test_unusable_anchors_trust_nothing_and_are_reported(
    material: Material, factory: TLSContextFactory
) -> None:
    expired_pem, _ = _self_signed("Old CA", ca=True, not_after=NOW - DAY)
    anchors = {
        "one": TrustAnchor("one", "managed", material.ca_one),
        "junk": TrustAnchor(
            "junk", "custom", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ),
        "old": TrustAnchor("old", "custom", expired_pem),
    }
    trust = {"a.example.com": ("junk", "one"), "b.example.com": ("junk",), "c.example.com": ("old",)}
    state = EdgeState.from_snapshot(
        make_snapshot(material, anchors=anchors, trust=trust), now=NOW, tls_factory=factory
    )
    assert {(p.kind, p.subject) for p in state.problems} == {
        ("anchor", "anchor junk"),
        ("anchor", "anchor old"),
    }
    a, b = served(state, "a.example.com"), served(state, "b.example.com")
    assert a.trust is not None and [aid for aid, _ in a.trust.anchors] == ["one"]
    # Still an mTLS hostname: a certificate is requested, and nothing can verify.
    assert b.mtls and b.trust is not None and b.trust.verifier is None and b.trust.ca_names == ()
    assert tls.verify_mode(b.tls_context) == 1 and tls.client_ca_names(b.tls_context) == []


def test_a_host_whose_certificate_does_not_load_is_not_served(
    material: Material, factory: TLSContextFactory
) -> None:
    broken = dataclasses.replace(
        material.edge["a.example.com"], key_pem=material.edge["b.example.com"].key_pem
    )
    state = EdgeState.from_snapshot(
        make_snapshot(material, edge={"a.example.com": broken}), now=NOW, tls_factory=factory
    )
    assert state.host("a.example.com") is None and "a.example.com" not in state.tls_contexts
    assert served(state, "b.example.com").hostname == "b.example.com"
    assert [(p.kind, p.subject) for p in state.problems] == [("host", "host a.example.com")]


def test_empty_snapshot_and_naive_time(factory: TLSContextFactory) -> None:
    state = EdgeState.from_snapshot(Snapshot(version=0, generated_at=0), now=NOW, tls_factory=factory)
    assert state.hosts == {} and state.tls_contexts == {} and state.problems == ()
    with pytest.raises(ValueError, match="timezone"):
        EdgeState.from_snapshot(Snapshot(version=0, generated_at=0), now=dt.datetime(2026, 1, 1))


class CountingFactory(TLSContextFactory):
    """A real factory that counts the contexts it makes and refuses the names it is told to."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.made = 0
        self.refuse = refuse

    def host_context(
        self, certificate: EdgeTLSCertificate, client_ca_names: Sequence[bytes] | None
    ) -> tls.ServerContext:
        self.made += 1
        if any(certificate.chain_pem == pem for pem in self.refuse):
            raise TLSContextError("refused by the test")
        return super().host_context(certificate, client_ca_names)


def test_contexts_are_made_on_first_use_and_once(material: Material) -> None:
    factory = CountingFactory()
    first = EdgeState.from_snapshot(make_snapshot(material), now=NOW, tls_factory=factory)
    assert factory.made == 0  # building a state makes no SSLContext
    a = first.tls_contexts["a.example.com"]
    assert factory.made == 1 and first.tls_contexts["a.example.com"] is a
    second = EdgeState.from_snapshot(
        make_snapshot(material, version=2, revoked=("01",)), now=NOW, previous=first
    )
    # Made after the next snapshot was built, and still shared with it.
    b = first.tls_contexts["b.example.com"]
    assert second.tls_contexts["b.example.com"] is b and second.tls_contexts["a.example.com"] is a
    assert second.warm_tls_contexts() == []
    assert factory.made == len(second.hosts) and len(second.tls_contexts) == len(second.hosts)


def test_a_context_that_fails_late_is_refused_not_retried(material: Material) -> None:
    factory = CountingFactory(refuse=frozenset({material.edge["a.example.com"].chain_pem}))
    state = EdgeState.from_snapshot(make_snapshot(material), now=NOW, tls_factory=factory)
    assert [(p.kind, p.subject) for p in state.warm_tls_contexts()] == [("host", "host a.example.com")]
    router = SNIRouter(factory)
    router.replace(state.tls_contexts)
    made = factory.made
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with pytest.raises(ssl.SSLError):
        tls.handshake_once(router.listening_context, client, "a.example.com")
    server, _ = tls.handshake_once(router.listening_context, client, "b.example.com")
    assert router.server_name(server) == "b.example.com"
    assert factory.made == made  # the failed host was not rebuilt on its next handshake
