"""THE product scheme: every field a WAF or origin rule can read at the edge.

This module is the single list. ``docs/rules.md`` is generated from it
(``scripts/gen_rules_doc.py``), and the edge's per-request getter must answer every canonical
name below with a value of the stated type (or None when it truly does not exist). Where a
description says "empty", the edge gives ``""``/``0``/``False`` rather than None, so that rules
behave as they do on Cloudflare (``cert_serial ne "01"`` holds when no certificate was sent).
"""

from __future__ import annotations

from certgate.rules.scheme import Scheme, SchemeBuilder
from certgate.rules.types import BOOL, BYTES, INT, IP, Type, array_of, map_of

CLIENT_AUTH_PREFIX = "tls.client_auth."
CLOUDFLARE_CLIENT_AUTH_PREFIX = "cf.tls_client_auth."

CERT_STATUSES = ("none", "valid", "untrusted", "expired", "not_yet_valid", "revoked", "invalid")

_HTTP_FIELDS: tuple[tuple[str, Type, str], ...] = (
    (
        "http.host",
        BYTES,
        "The request's host name: the Host header (`:authority` in HTTP/2), lowercased by the edge, "
        "without the port. Compare with lowercase literals.",
    ),
    ("http.request.method", BYTES, "The request method in uppercase, e.g. `GET`."),
    (
        "http.request.uri",
        BYTES,
        "The request target as sent: path plus `?query` when there is one, e.g. `/a/b?x=1`.",
    ),
    ("http.request.uri.path", BYTES, "The path of the request target, without the query, e.g. `/a/b`."),
    ("http.request.uri.query", BYTES, "The query string without the leading `?`; empty when there is none."),
    (
        "http.request.uri.args",
        map_of(array_of(BYTES)),
        "The query arguments, percent-decoded: name → every value in order, e.g. "
        '`http.request.uri.args["id"][0]`.',
    ),
    (
        "http.request.full_uri",
        BYTES,
        "Scheme, host and request target, e.g. `https://api.example.com/a?x=1`.",
    ),
    ("http.user_agent", BYTES, "The User-Agent header; empty when absent."),
    ("http.referer", BYTES, "The Referer header; empty when absent."),
    ("http.cookie", BYTES, "The Cookie header (several joined with `; `); empty when absent."),
    (
        "http.request.headers",
        map_of(array_of(BYTES)),
        "Every request header: lowercase name → its values in order, e.g. "
        '`any(http.request.headers["accept"][*] contains "json")`. Keys in rules must be lowercase.',
    ),
    ("ip.src", IP, "The client's IP address (IPv4 clients appear as IPv4, never as `::ffff:a.b.c.d`)."),
    ("ssl", BOOL, "True when the request arrived over TLS."),
)

_CLIENT_AUTH_FIELDS: tuple[tuple[str, Type, str], ...] = (
    ("cert_presented", BOOL, "The client sent a certificate."),
    (
        "cert_verified",
        BOOL,
        "The certificate chains to a CA bound to this hostname, is within its validity, permits "
        "clientAuth and is not revoked (stricter than Cloudflare, where revoked certificates stay "
        "verified).",
    ),
    (
        "cert_revoked",
        BOOL,
        "The certificate was issued by the managed CA and is revoked (or is listed in an uploaded CRL).",
    ),
    ("cert_status", BYTES, "One of " + ", ".join(f"`{s}`" for s in CERT_STATUSES) + "."),
    (
        "cert_fingerprint_sha256",
        BYTES,
        "SHA-256 of the certificate's DER, lowercase hex without separators; empty without a certificate.",
    ),
    ("cert_serial", BYTES, "The serial number, lowercase hex; empty without a certificate."),
    ("cert_subject_dn", BYTES, "The subject as an RFC 4514 string; empty without a certificate."),
    ("cert_issuer_dn", BYTES, "The issuer as an RFC 4514 string; empty without a certificate."),
    ("cert_ski", BYTES, "The Subject Key Identifier, lowercase hex; empty when absent."),
    (
        "cert_issuer_ski",
        BYTES,
        "The issuer's key identifier (from the AKI), lowercase hex; empty when absent.",
    ),
    ("cert_not_before", INT, "Start of validity, Unix seconds; 0 without a certificate."),
    ("cert_not_after", INT, "End of validity, Unix seconds; 0 without a certificate."),
)


def build_edge_scheme() -> Scheme:
    builder = SchemeBuilder()
    for name, type_, description in _HTTP_FIELDS:
        builder.add_field(name, type_, description=description, lowercase_keys=name == "http.request.headers")
    for suffix, type_, description in _CLIENT_AUTH_FIELDS:
        builder.add_field(
            CLIENT_AUTH_PREFIX + suffix,
            type_,
            description=description,
            aliases=(CLOUDFLARE_CLIENT_AUTH_PREFIX + suffix,),
        )
    return builder.build()


EDGE_SCHEME: Scheme = build_edge_scheme()
