"""certgate.edge.decision as a table: connection facts + request head + state → Respond/Forward.

No sockets: heads come from the real `http1.RequestReader`, states from `EdgeState.from_snapshot`,
verdicts from the real `ClientAuthenticator` over certificates made here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Callable, Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certgate.edge.clientauth import NO_CERTIFICATE, ClientAuthenticator
from certgate.edge.decision import (
    PEER_CERTIFICATES,
    Decider,
    DecisionSettings,
    RequestRecord,
    _RequestView,
    field_getters,
)
from certgate.edge.http1 import RequestHead, RequestReader
from certgate.edge.proxy import ConnectionInfo, Forward, Respond
from certgate.edge.state import EdgeState
from certgate.pki.authority import create_certificate_authority
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.rules import EDGE_SCHEME, ExecutionContext, Scheme
from certgate.rules.types import value_check
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

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DER = serialization.Encoding.DER

MANAGED = create_certificate_authority("Managed", now=NOW - dt.timedelta(days=30), validity_days=3650)
ROGUE = create_certificate_authority("Rogue", now=NOW - dt.timedelta(days=30), validity_days=3650)
EDGE_CA = create_certificate_authority("Edge", now=NOW - dt.timedelta(days=30), validity_days=3650)
_edge = EDGE_CA.issue_server_certificate(["edge.test"], now=NOW - dt.timedelta(days=1), validity_days=90)
assert _edge.private_key is not None
EDGE_CERT = EdgeTLSCertificate(certificate_to_pem(_edge.certificate), private_key_to_pem(_edge.private_key))


def _leaf(ca: object = MANAGED) -> x509.Certificate:
    issued = ca.issue_client_certificate(  # type: ignore[attr-defined]
        now=NOW - dt.timedelta(days=1), validity_days=30, key_type=KeyType.ECDSA_P256, common_name="device 1"
    )
    cert: x509.Certificate = issued.certificate
    return cert


LEAF = _leaf()
LEAF_DER = LEAF.public_bytes(DER)
ROGUE_DER = _leaf(ROGUE).public_bytes(DER)

SEED_RULE = WafRuleSpec(
    id=11,
    name="mtls",
    expression='(http.host eq "api.example.com" and not tls.client_auth.cert_verified)',
    action="deny",
    position=2,
)
WATCH_RULE = WafRuleSpec(
    id=10, name="watch", expression='http.request.uri.path eq "/watch"', action="monitor", position=1
)
BLOCK_HEADER = WafRuleSpec(
    id=12,
    name="hdr",
    expression='any(http.request.headers["x-block"][*] eq "yes")',
    action="deny",
    position=3,
)
ORIGIN_V2 = OriginRuleSpec(
    id=20,
    name="v2",
    expression='starts_with(http.request.uri.path, "/v2")',
    sequence=1,
    scheme="https",
    https_port=8443,
    host="backend.internal",
    read_timeout=7,
)
ORIGIN_V2_SPECIAL = OriginRuleSpec(
    id=21,
    name="v2 special",
    expression='http.request.uri.path eq "/v2/special"',
    sequence=2,
    https_port=9443,
    sni="special.internal",
    address="10.9.9.9",
)
ORIGIN_FOLLOW = OriginRuleSpec(
    id=22, name="follow", expression='http.request.uri.path eq "/follow"', sequence=3, scheme="follow"
)
BROKEN = "http.no_such_field eq 1"


def _host(name: str, site: int, trust: tuple[str, ...] = (), address: str = "10.0.0.1") -> HostPolicy:
    return HostPolicy(name, site, OriginPolicy(address), EDGE_CERT, trust)


def snapshot(version: int = 1, revoked: tuple[str, ...] = ()) -> Snapshot:
    sites = {
        1: SitePolicy(
            1,
            "acct",
            "example.com",
            waf_rules=(WATCH_RULE, SEED_RULE, BLOCK_HEADER),
            origin_rules=(ORIGIN_V2, ORIGIN_V2_SPECIAL, ORIGIN_FOLLOW),
        ),
        2: SitePolicy(2, "acct", "broken-deny.org", waf_rules=(WafRuleSpec(30, "bad", BROKEN, "deny", 1),)),
        3: SitePolicy(
            3, "acct", "broken-monitor.org", waf_rules=(WafRuleSpec(31, "bad", BROKEN, "monitor", 1),)
        ),
        4: SitePolicy(4, "acct", "broken-origin.org", origin_rules=(OriginRuleSpec(32, "bad", BROKEN, 1),)),
    }
    hosts = {
        h.hostname: h
        for h in (
            _host("api.example.com", 1, ("managed",)),
            _host("www.example.com", 1),
            _host("*.wild.example.com", 1, address="10.0.0.2"),
            _host("broken-deny.org", 2),
            _host("broken-monitor.org", 3),
            _host("broken-origin.org", 4),
        )
    }
    anchors = {"managed": TrustAnchor("managed", "managed", certificate_to_pem(MANAGED.certificate), revoked)}
    return Snapshot(version, int(NOW.timestamp()), anchors, sites, hosts)


STATE = EdgeState.from_snapshot(snapshot(), now=NOW)


def head(raw: bytes) -> RequestHead:
    events = RequestReader().feed(raw)
    assert isinstance(events[0], RequestHead), events
    return events[0]


def get(host: str, path: str = "/", *extra: str) -> RequestHead:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *extra, "", ""]
    return head("\r\n".join(lines).encode())


def conn(
    sni: str | None = "api.example.com", *, cert: bytes | None = None, tls: bool = True
) -> ConnectionInfo:
    c = ConnectionInfo(
        id=1, peer_ip="192.0.2.7", peer_port=50000, tls=tls, ssl_object=None, sni=sni, opened_at=0.0
    )
    c.state[PEER_CERTIFICATES] = (cert, ())
    return c


def decider(state: EdgeState | None = STATE, **settings: object) -> Decider:
    d = Decider(ClientAuthenticator(), DecisionSettings(**settings))  # type: ignore[arg-type]
    if state is not None:
        d.set_state(state)
    return d


def decide(
    d: Decider, c: ConnectionInfo, h: RequestHead, now: dt.datetime = NOW
) -> tuple[Respond | Forward, RequestRecord]:
    record = RequestRecord(request_id="rid-1")
    return d.decide(c, h, record, now=now), record


def status(decision: Respond | Forward) -> int | str:
    return decision.status if isinstance(decision, Respond) else "forward"


# --- the table ---------------------------------------------------------------------------------

CASES = [
    # (id, sni, host header, path, extra headers, client cert, tls, expected, outcome)
    ("unknown host", "unknown.test", "unknown.test", "/", (), None, True, 404, "unknown_host"),
    ("unknown host, no SNI", None, "unknown.test", "/", (), None, True, 404, "unknown_host"),
    (
        "mTLS host behind a plain SNI",
        "www.example.com",
        "api.example.com",
        "/",
        (),
        LEAF_DER,
        True,
        421,
        "misdirected",
    ),
    (
        "plain host behind an mTLS SNI",
        "api.example.com",
        "www.example.com",
        "/",
        (),
        LEAF_DER,
        True,
        421,
        "misdirected",
    ),
    (
        "unknown host behind an mTLS SNI",
        "api.example.com",
        "evil.test",
        "/",
        (),
        LEAF_DER,
        True,
        421,
        "misdirected",
    ),
    ("mTLS host without SNI", None, "api.example.com", "/", (), LEAF_DER, True, 421, "misdirected"),
    ("mTLS host over plain HTTP", None, "api.example.com", "/", (), None, False, 421, "misdirected"),
    (
        "port and case in Host",
        "api.example.com",
        "API.Example.COM:443",
        "/",
        (),
        LEAF_DER,
        True,
        "forward",
        "forward",
    ),
    (
        "trailing dot in Host",
        "api.example.com",
        "api.example.com.",
        "/",
        (),
        LEAF_DER,
        True,
        "forward",
        "forward",
    ),
    (
        "two plain hosts may share a connection",
        "www.example.com",
        "x.wild.example.com",
        "/",
        (),
        None,
        True,
        "forward",
        "forward",
    ),
    ("plain host over plain HTTP", None, "www.example.com", "/", (), None, False, "forward", "forward"),
    ("seed rule: no certificate", "api.example.com", "api.example.com", "/", (), None, True, 403, "waf_deny"),
    (
        "seed rule: untrusted certificate",
        "api.example.com",
        "api.example.com",
        "/",
        (),
        ROGUE_DER,
        True,
        403,
        "waf_deny",
    ),
    (
        "seed rule: valid certificate",
        "api.example.com",
        "api.example.com",
        "/",
        (),
        LEAF_DER,
        True,
        "forward",
        "forward",
    ),
    (
        "later deny rule",
        "api.example.com",
        "api.example.com",
        "/",
        ("X-Block: yes",),
        LEAF_DER,
        True,
        403,
        "waf_deny",
    ),
    (
        "seed rule does not apply to other hosts",
        "www.example.com",
        "www.example.com",
        "/",
        (),
        None,
        True,
        "forward",
        "forward",
    ),
    ("wildcard host", "a.wild.example.com", "a.wild.example.com", "/", (), None, True, "forward", "forward"),
    (
        "site with a deny rule that did not compile",
        "broken-deny.org",
        "broken-deny.org",
        "/",
        (),
        None,
        True,
        503,
        "rule_error",
    ),
    (
        "site with an origin rule that did not compile",
        "broken-origin.org",
        "broken-origin.org",
        "/",
        (),
        None,
        True,
        503,
        "rule_error",
    ),
    (
        "site with a monitor rule that did not compile",
        "broken-monitor.org",
        "broken-monitor.org",
        "/",
        (),
        None,
        True,
        "forward",
        "forward",
    ),
]


@pytest.mark.parametrize(
    ("sni", "host", "path", "extra", "cert", "tls", "expected", "outcome"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_table(
    sni: str | None,
    host: str,
    path: str,
    extra: Sequence[str],
    cert: bytes | None,
    tls: bool,
    expected: int | str,
    outcome: str,
) -> None:
    decision, record = decide(decider(), conn(sni, cert=cert, tls=tls), get(host, path, *extra))
    assert status(decision) == expected
    assert record.outcome == outcome
    assert record.snapshot_version == 1
    if isinstance(decision, Respond):
        assert dict(decision.headers)[b"x-request-id"] == b"rid-1"
        assert b"rid-1" in decision.body


def test_no_state_yet_is_503_and_never_an_origin() -> None:
    decision, record = decide(decider(None), conn(), get("api.example.com"))
    assert status(decision) == 503
    assert record.outcome == "not_configured"


def test_unknown_host_page_escapes_the_hostname() -> None:
    d = decider()
    decision, _ = decide(d, conn("x.test"), head(b"GET / HTTP/1.0\r\nHost: a-b_c.test\r\n\r\n"))
    assert isinstance(decision, Respond) and decision.status == 404
    assert b"a-b_c.test" in decision.body and b"text/html" in dict(decision.headers)[b"content-type"]


def test_http10_without_host_uses_the_sni() -> None:
    decision, record = decide(decider(), conn("www.example.com"), head(b"GET / HTTP/1.0\r\n\r\n"))
    assert isinstance(decision, Forward)
    assert record.host == "www.example.com"


# --- what a forwarded request carries ------------------------------------------------------------


def test_forward_carries_rfc9440_and_status() -> None:
    decision, record = decide(decider(), conn(cert=LEAF_DER), get("api.example.com"))
    assert isinstance(decision, Forward)
    headers = dict(decision.extra_headers)
    assert headers[b"Client-Cert-Status"] == b"valid"
    assert headers[b"Client-Cert"] == record.auth.client_cert
    assert record.auth.cert_verified and record.auth.cert_serial == format(LEAF.serial_number, "x")


def test_forward_without_certificate_still_says_none() -> None:
    decision, record = decide(decider(), conn("www.example.com"), get("www.example.com"))
    assert isinstance(decision, Forward)
    assert list(decision.extra_headers) == [(b"Client-Cert-Status", b"none")]
    assert record.auth is NO_CERTIFICATE


def test_revocation_applies_to_the_same_connection_on_its_next_request() -> None:
    d = decider()
    c = conn(cert=LEAF_DER)
    first, _ = decide(d, c, get("api.example.com"))
    assert isinstance(first, Forward)
    d.set_state(
        EdgeState.from_snapshot(
            snapshot(2, revoked=(format(LEAF.serial_number, "x"),)), now=NOW, previous=STATE
        )
    )
    second, record = decide(d, c, get("api.example.com"))
    assert status(second) == 403
    assert record.auth.cert_status == "revoked" and record.auth.cert_revoked
    assert record.rule_id == SEED_RULE.id and record.snapshot_version == 2


def test_expiry_is_judged_at_request_time() -> None:
    d = decider()
    c = conn(cert=LEAF_DER)
    assert isinstance(decide(d, c, get("api.example.com"))[0], Forward)
    later = LEAF.not_valid_after_utc + dt.timedelta(seconds=1)
    decision, record = decide(d, c, get("api.example.com"), now=later)
    assert status(decision) == 403 and record.auth.cert_status == "expired"


def test_verdict_is_reused_on_a_connection_until_time_crosses_a_bound_or_the_state_changes() -> None:
    authenticator = ClientAuthenticator()
    d = Decider(authenticator)
    d.set_state(STATE)
    c = conn(cert=LEAF_DER)
    end = LEAF.not_valid_after_utc
    for now in (NOW, NOW + dt.timedelta(days=1), end - dt.timedelta(microseconds=1)):
        decision, record = decide(d, c, get("api.example.com"), now=now)
        assert isinstance(decision, Forward) and record.auth.cert_status == "valid"
    assert (authenticator.hits, authenticator.misses) == (0, 1)  # asked once, reused twice
    # Exactly on notAfter the certificate is still valid; a microsecond later it is not.
    assert decide(d, c, get("api.example.com"), now=end)[1].auth.cert_status == "valid"
    expired = decide(d, c, get("api.example.com"), now=end + dt.timedelta(microseconds=1))[1]
    assert expired.auth.cert_status == "expired"
    # A clock stepping back is judged again too.
    assert decide(d, c, get("api.example.com"), now=NOW)[1].auth.cert_status == "valid"
    asked = authenticator.hits + authenticator.misses
    # A new state, even with the same content, is asked again.
    d.set_state(EdgeState.from_snapshot(snapshot(2), now=NOW, previous=STATE))
    assert decide(d, c, get("api.example.com"))[1].auth.cert_status == "valid"
    assert authenticator.hits + authenticator.misses == asked + 1
    # Another connection with the same certificate shares the cached chain, not the reuse.
    decide(d, conn(cert=LEAF_DER), get("api.example.com"))
    assert authenticator.hits + authenticator.misses == asked + 2


def test_now_may_be_unix_seconds() -> None:
    later = LEAF.not_valid_after_utc + dt.timedelta(seconds=1)
    for now in (NOW, later):
        as_datetime = decide(decider(), conn(cert=LEAF_DER), get("api.example.com"), now=now)[1]
        record = RequestRecord(request_id="rid-1")
        decider().decide(conn(cert=LEAF_DER), get("api.example.com"), record, now=now.timestamp())
        assert record.auth == as_datetime.auth and record.outcome == as_datetime.outcome


def test_forwarded_rfc9440_headers_are_one_shared_tuple_per_verdict() -> None:
    d = decider()
    first, _ = decide(d, conn(cert=LEAF_DER), get("api.example.com"))
    second, _ = decide(d, conn(cert=LEAF_DER), get("api.example.com"))
    assert isinstance(first, Forward) and isinstance(second, Forward)
    assert first.extra_headers is second.extra_headers and isinstance(first.extra_headers, tuple)


# --- rules -----------------------------------------------------------------------------------------


def test_block_page_is_json_when_preferred() -> None:
    decision, record = decide(decider(), conn(), get("api.example.com", "/", "Accept: application/json"))
    assert isinstance(decision, Respond) and decision.status == 403
    assert dict(decision.headers)[b"content-type"] == b"application/json"
    body = json.loads(decision.body)
    assert body == {
        "status": 403,
        "error": "blocked",
        "message": body["message"],
        "request_id": "rid-1",
    }
    assert record.rule_id == SEED_RULE.id and record.rule_action == "deny"


def test_monitor_match_is_recorded_and_the_request_goes_on() -> None:
    decision, record = decide(decider(), conn(cert=LEAF_DER), get("api.example.com", "/watch"))
    assert isinstance(decision, Forward)
    assert record.monitored == (WATCH_RULE.id,)
    assert (record.rule_id, record.rule_action) == (WATCH_RULE.id, "monitor")


def test_monitor_then_deny_keeps_both() -> None:
    decision, record = decide(decider(), conn(), get("api.example.com", "/watch"))
    assert status(decision) == 403
    assert record.monitored == (WATCH_RULE.id,)
    assert (record.rule_id, record.rule_action) == (SEED_RULE.id, "deny")


def test_fail_closed_can_be_turned_off() -> None:
    d = decider(fail_closed_on_rule_errors=False)
    for host in ("broken-deny.org", "broken-origin.org"):
        decision, _ = decide(d, conn(host), get(host))
        assert isinstance(decision, Forward)


def test_fail_closed_names_the_rule() -> None:
    _, record = decide(decider(), conn("broken-deny.org"), get("broken-deny.org"))
    assert record.rule_id == 30 and "did not compile" in record.error


def test_a_rule_that_raises_fails_closed_with_500(monkeypatch: pytest.MonkeyPatch) -> None:
    # The rule engine gets a value of the wrong type for a field the rule reads (cert_verified is a
    # Bool). Injected between the edge's getter and the engine, so this also runs on a compiled edge.
    real_context = Scheme.context

    def bad_context(self: Scheme, getter: Callable[[str], object]) -> ExecutionContext:
        field = "tls.client_auth.cert_verified"
        return real_context(self, lambda name: "yes" if name == field else getter(name))

    monkeypatch.setattr(Scheme, "context", bad_context)
    decision, record = decide(decider(), conn(), get("api.example.com"))
    assert status(decision) == 500
    assert record.outcome == "rule_error" and "FieldValueError" in record.error


def _rules_state(version: int, *expressions: str) -> EdgeState:
    """One wildcard host (plain HTTP allowed) whose site denies what the expressions match."""
    rules = tuple(WafRuleSpec(40 + i, f"r{i}", e, "deny", i + 1) for i, e in enumerate(expressions))
    site = SitePolicy(5, "acct", "w.test", waf_rules=rules)
    snap = Snapshot(version, int(NOW.timestamp()), {}, {5: site}, {"*.w.test": _host("*.w.test", 5)})
    return EdgeState.from_snapshot(snap, now=NOW)


def test_a_connection_reuses_its_rule_context_and_each_request_is_judged_on_its_own() -> None:
    # Connection facts (hostname, ip.src, ssl, the verdict) are fetched once per connection,
    # plan, verdict and hostname; everything else is read from each request.
    d = decider(
        _rules_state(
            1,
            'http.host eq "a.w.test" and ip.src in {192.0.2.0/24} and not ssl',
            'http.request.uri.path eq "/x"',
        )
    )
    c = conn(None, tls=False)
    seen = []
    for host, path, expected in [
        ("a.w.test", "/", 403),
        ("b.w.test", "/", "forward"),
        ("b.w.test", "/x", 403),
        ("b.w.test", "/", "forward"),
        ("a.w.test", "/", 403),
        ("a.w.test", "/", 403),
    ]:
        decision, record = decide(d, c, get(host, path))
        assert status(decision) == expected, (host, path)
        assert record.rule_id == (None if expected == "forward" else 40 if host == "a.w.test" else 41)
        memo = c.state["_rules_memo"]
        seen.append(None if memo is None else memo.ctx)
    # none for the connection's first request (it may be its only one), then the same context
    # while the hostname stays, a new one when it changes
    assert seen[0] is None and seen[1] is seen[2] is seen[3] and seen[4] is seen[5]
    assert seen[1] is not None and seen[4] is not None and seen[1] is not seen[4]
    assert seen[5].loaded.keys() == {"http.host", "ip.src", "ssl"}  # (the second rule did not run)


def test_a_new_snapshot_judges_the_next_request_on_the_same_connection_with_its_rules() -> None:
    d = decider(_rules_state(1, "ip.src in {198.51.100.0/24}"))
    c = conn(None, tls=False)
    assert status(decide(d, c, get("a.w.test"))[0]) == "forward"
    d.set_state(_rules_state(2, "ip.src in {192.0.2.0/24}"))
    assert status(decide(d, c, get("a.w.test"))[0]) == 403
    d.set_state(_rules_state(3, "ssl"))
    assert status(decide(d, c, get("a.w.test"))[0]) == "forward"


def test_a_connection_field_that_fails_fails_only_the_requests_whose_rules_read_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_context = Scheme.context

    def bad_context(self: Scheme, getter: Callable[[str], object]) -> ExecutionContext:
        return real_context(self, lambda name: "yes" if name == "ssl" else getter(name))

    monkeypatch.setattr(Scheme, "context", bad_context)
    d = decider(_rules_state(1, 'http.request.uri.path eq "/x" and ssl'))
    c = conn(None, tls=False)
    for path, expected in [("/", "forward"), ("/x", 500), ("/", "forward"), ("/x", 500)]:
        decision, record = decide(d, c, get("a.w.test", path))
        assert status(decision) == expected
        assert (record.outcome == "rule_error") == (expected == 500)


def test_rules_reading_only_connection_facts_are_run_once_per_connection_verdict_and_hostname() -> None:
    rules = (
        WafRuleSpec(40, "watch a", 'http.host eq "a.w.test"', "monitor", 1),
        WafRuleSpec(41, "watch ssl", "not ssl", "monitor", 2),
        WafRuleSpec(42, "deny b", 'http.host eq "b.w.test" and ip.src in {192.0.2.0/24}', "deny", 3),
    )
    hosts = {"*.w.test": _host("*.w.test", 5)}
    c = conn(None, tls=False)
    d = decider(None)
    # With an origin rule reading the path the rules run on every request; without, once.
    for version, origin_rules in enumerate([(ORIGIN_V2,), (), (ORIGIN_V2,)], 1):
        site = SitePolicy(5, "acct", "w.test", waf_rules=rules, origin_rules=origin_rules)
        d.set_state(
            EdgeState.from_snapshot(Snapshot(version, int(NOW.timestamp()), {}, {5: site}, hosts), now=NOW)
        )
        for host in ("a.w.test", "a.w.test", "b.w.test", "b.w.test", "c.w.test", "a.w.test"):
            decision, record = decide(d, c, get(host, "/v2/x"))
            memo = c.state["_rules_memo"]
            if memo is None:  # (none for the connection's first request)
                assert version == 1 and host == "a.w.test"
            else:
                assert memo.host == host and (memo.result is not None) == (not origin_rules)
            if host == "b.w.test":
                assert status(decision) == 403 and record.outcome == "waf_deny"
                assert (record.rule_id, record.rule_action, record.monitored) == (42, "deny", (41,))
            else:
                assert isinstance(decision, Forward) and record.outcome == "forward"
                ids = (40, 41) if host == "a.w.test" else (41,)
                assert (record.rule_id, record.rule_action, record.monitored) == (ids[0], "monitor", ids)
                assert decision.origin.port == (8443 if origin_rules else 80)


def test_first_requests_of_connections_with_the_same_facts_share_one_judgement() -> None:
    d = decider(_rules_state(1, 'http.host eq "a.w.test" and ip.src in {192.0.2.0/24}'))

    def first_request(peer: str, host: str, tls: bool = False) -> int | str:
        c = conn(host if tls else None, tls=tls)
        c.peer_ip = peer
        return status(decide(d, c, get(host))[0])

    cases = [
        ("192.0.2.7", "a.w.test", 403),
        ("198.51.100.1", "a.w.test", "forward"),
        ("192.0.2.7", "b.w.test", "forward"),
        ("192.0.2.7", "a.w.test", 403),  # judged already
        ("198.51.100.1", "a.w.test", "forward"),  # judged already
        ("192.0.2.8", "a.w.test", 403),  # another address: judged again
    ]
    assert [first_request(peer, host) for peer, host, _ in cases] == [x for _, _, x in cases]
    host_state = d.state.host("a.w.test") if d.state is not None else None
    assert host_state is not None
    assert len(d._plan(host_state).results) == 4  # (the address is in the key: a rule reads it)
    d.set_state(_rules_state(2, 'ssl and http.host eq "a.w.test"'))
    statuses = [
        first_request(p, "a.w.test", tls) for p, tls in [("1::1", True), ("1::2", True), ("1::1", False)]
    ]
    assert statuses == [403, 403, "forward"]
    host_state = d.state.host("a.w.test") if d.state is not None else None
    assert host_state is not None
    assert len(d._plan(host_state).results) == 2  # (TLS or not; the address is not read)


def test_a_connection_with_a_rule_context_is_freed_without_the_cyclic_collector() -> None:
    # The rule context is kept in the connection's state; nothing in it may refer back to the
    # connection (its TLS object would wait for a cyclic collection).
    import gc

    def live() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, ConnectionInfo))

    d = decider(_rules_state(1, 'ip.src in {192.0.2.0/24} and http.request.uri.path eq "/x"'))
    gc.collect()
    gc.disable()
    try:
        before = live()
        c = conn(None, tls=False)
        for _ in range(2):  # (the context is kept from the connection's second request)
            assert status(decide(d, c, get("a.w.test", "/x"))[0]) == 403
        assert c.state["_rules_memo"] is not None and live() == before + 1
        del c
        assert live() == before
    finally:
        gc.enable()


# --- origin rules ----------------------------------------------------------------------------------


def _target(
    path: str, sni: str | None = "api.example.com", host: str = "api.example.com", tls: bool = True
) -> Forward:
    decision, _ = decide(decider(), conn(sni, cert=LEAF_DER, tls=tls), get(host, path))
    assert isinstance(decision, Forward), decision
    return decision


def test_default_origin_is_the_record() -> None:
    t = _target("/").origin
    assert (t.scheme, t.host, t.port, t.sni, t.host_header, t.read_timeout) == (
        "http",
        "10.0.0.1",
        80,
        None,
        None,
        30.0,
    )


def test_origin_rule_sets_scheme_port_host_and_timeout() -> None:
    t = _target("/v2/x").origin
    assert (t.scheme, t.host, t.port, t.host_header, t.read_timeout) == (
        "https",
        "10.0.0.1",
        8443,
        b"backend.internal",
        7.0,
    )
    assert t.sni == "backend.internal"  # the Host the origin is asked for, unless a rule names an SNI


def test_later_origin_rules_override_earlier_ones_field_by_field() -> None:
    t = _target("/v2/special").origin
    assert (t.scheme, t.host, t.port, t.sni, t.host_header) == (
        "https",
        "10.9.9.9",
        9443,
        "special.internal",
        b"backend.internal",
    )


def test_follow_uses_the_client_scheme() -> None:
    assert _target("/follow").origin.scheme == "https"
    assert _target("/follow", None, "www.example.com", tls=False).origin.scheme == "http"


def test_https_origin_sni_defaults_to_the_request_host() -> None:
    assert _target("/follow", "a.wild.example.com", "a.wild.example.com").origin.sni == "a.wild.example.com"


def test_origin_settings_come_from_decision_settings() -> None:
    d = decider(origin_connect_timeout=1.5, origin_read_timeout=9.0, verify_origin_tls=False)
    decision, _ = decide(d, conn(cert=LEAF_DER), get("api.example.com", "/v2"))
    assert isinstance(decision, Forward)
    t = decision.origin
    assert (t.connect_timeout, t.read_timeout, t.verify_tls) == (1.5, 7.0, False)


def test_targets_are_reused() -> None:
    d = decider()
    a, _ = decide(d, conn(cert=LEAF_DER), get("api.example.com", "/v2/a"))
    b, _ = decide(d, conn(cert=LEAF_DER), get("api.example.com", "/v2/b"))
    assert isinstance(a, Forward) and isinstance(b, Forward) and a.origin is b.origin


def test_rules_survive_a_state_swap_without_recompiling() -> None:
    d = decider()
    decide(d, conn(cert=LEAF_DER), get("api.example.com"))
    compiled = dict(d._filter_sets)
    d.set_state(EdgeState.from_snapshot(snapshot(2), now=NOW, previous=STATE))
    decide(d, conn(cert=LEAF_DER), get("api.example.com"))
    assert all(d._filter_sets[k] is v for k, v in compiled.items())


# --- rule fields -----------------------------------------------------------------------------------


def test_every_scheme_field_is_answered_with_its_type() -> None:
    getters = field_getters()
    assert set(getters) == set(EDGE_SCHEME.field_types)
    auth = ClientAuthenticator().authenticate(STATE, STATE.hosts["api.example.com"], LEAF_DER, now=NOW)
    h = get(
        "api.example.com",
        "/a/b?x=1&x=2&y=%41",
        "User-Agent: ua/1",
        "Referer: https://r.test/",
        "Cookie: a=1",
        "Cookie: b=2",
        "X-Multi: one",
        "X-Multi: two",
    )
    view = _RequestView(conn(cert=LEAF_DER), h, "api.example.com", auth)
    for name, type_ in EDGE_SCHEME.field_types.items():
        value = view.get(name)
        assert value is not None and value_check(type_)(value), (name, value)
    expected = {
        "http.host": "api.example.com",
        "http.request.method": "GET",
        "http.request.uri": "/a/b?x=1&x=2&y=%41",
        "http.request.uri.path": "/a/b",
        "http.request.uri.query": "x=1&x=2&y=%41",
        "http.request.uri.args": {"x": ["1", "2"], "y": ["A"]},
        "http.request.full_uri": "https://api.example.com/a/b?x=1&x=2&y=%41",
        "http.user_agent": "ua/1",
        "http.referer": "https://r.test/",
        "http.cookie": "a=1; b=2",
        "ip.src": ipaddress.ip_address("192.0.2.7"),
        "ssl": True,
        "tls.client_auth.cert_status": "valid",
        "tls.client_auth.cert_verified": True,
        "tls.client_auth.cert_not_after": int(LEAF.not_valid_after_utc.timestamp()),
    }
    for name, value in expected.items():
        assert view.get(name) == value, name
    headers = view.get("http.request.headers")
    assert isinstance(headers, dict) and headers["x-multi"] == ["one", "two"]


def test_absent_headers_are_empty_not_missing() -> None:
    view = _RequestView(conn(), get("www.example.com"), "www.example.com", NO_CERTIFICATE)
    assert [view.get(n) for n in ("http.user_agent", "http.referer", "http.cookie")] == ["", "", ""]
    assert view.get("http.request.uri.args") == {}
    assert view.get("tls.client_auth.cert_serial") == "" and view.get("tls.client_auth.cert_not_before") == 0


def test_an_unparseable_peer_address_is_missing() -> None:
    c = conn()
    c.peer_ip = "not-an-ip"
    assert _RequestView(c, get("www.example.com"), "www.example.com", NO_CERTIFICATE).get("ip.src") is None
