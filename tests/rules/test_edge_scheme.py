"""The product scheme lists every field of PRODUCT.md §4 with its type and aliases."""

from __future__ import annotations

from certgate.rules import BOOL, BYTES, EDGE_SCHEME, INT, IP, array_of, map_of
from certgate.rules.edge_scheme import CERT_STATUSES

EXPECTED = {
    "http.host": BYTES,
    "http.request.method": BYTES,
    "http.request.uri": BYTES,
    "http.request.uri.path": BYTES,
    "http.request.uri.query": BYTES,
    "http.request.uri.args": map_of(array_of(BYTES)),
    "http.request.full_uri": BYTES,
    "http.user_agent": BYTES,
    "http.referer": BYTES,
    "http.cookie": BYTES,
    "http.request.headers": map_of(array_of(BYTES)),
    "ip.src": IP,
    "ssl": BOOL,
    "tls.client_auth.cert_presented": BOOL,
    "tls.client_auth.cert_verified": BOOL,
    "tls.client_auth.cert_revoked": BOOL,
    "tls.client_auth.cert_status": BYTES,
    "tls.client_auth.cert_fingerprint_sha256": BYTES,
    "tls.client_auth.cert_serial": BYTES,
    "tls.client_auth.cert_subject_dn": BYTES,
    "tls.client_auth.cert_issuer_dn": BYTES,
    "tls.client_auth.cert_ski": BYTES,
    "tls.client_auth.cert_issuer_ski": BYTES,
    "tls.client_auth.cert_not_before": INT,
    "tls.client_auth.cert_not_after": INT,
}


def test_every_product_field_with_its_type() -> None:
    assert {f.name: f.type for f in EDGE_SCHEME.fields} == EXPECTED


def test_cloudflare_spellings_are_aliases_of_every_client_auth_field() -> None:
    for f in EDGE_SCHEME.fields:
        if f.name.startswith("tls.client_auth."):
            alias = "cf.tls_client_auth." + f.name.removeprefix("tls.client_auth.")
            assert f.aliases == (alias,)
            assert EDGE_SCHEME.canonical(alias) == f.name
        else:
            assert f.aliases == ()


def test_every_field_is_documented() -> None:
    assert all(f.description for f in EDGE_SCHEME.fields)
    status = EDGE_SCHEME.field("tls.client_auth.cert_status")
    assert status is not None and all(s in status.description for s in CERT_STATUSES)


def test_only_headers_have_lowercase_keys() -> None:
    assert [f.name for f in EDGE_SCHEME.fields if f.lowercase_keys] == ["http.request.headers"]
