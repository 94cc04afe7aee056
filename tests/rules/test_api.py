"""The public pipeline (certgate.rules): parse → AST JSON → compile → execute, as a table.

Every case is evaluated against four request contexts; the expected results are written as a
string of T/F in the order S (the seed's unauthenticated request), V (a verified client
certificate), R (a revoked one, IPv6, plain HTTP) and M (every field missing).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from certgate.rules import (
    EDGE_SCHEME,
    ParserSettings,
    RuleParseError,
    compile_filter,
    parse,
    validate,
)

EACH = {"kind": "MapEach"}

S: dict[str, object] = {
    "http.host": "api.example.com",
    "http.request.method": "GET",
    "http.request.uri": "/v1/items?id=7&id=8&q=x",
    "http.request.uri.path": "/v1/items",
    "http.request.uri.query": "id=7&id=8&q=x",
    "http.request.uri.args": {"id": ["7", "8"], "q": ["x"]},
    "http.request.full_uri": "https://api.example.com/v1/items?id=7&id=8&q=x",
    "http.user_agent": "curl/8.5.0",
    "http.referer": "",
    "http.cookie": "session=abc; theme=dark",
    "http.request.headers": {
        "host": ["api.example.com"],
        "accept": ["application/json", "text/html"],
        "user-agent": ["curl/8.5.0"],
        "cookie": ["session=abc; theme=dark"],
    },
    "ip.src": ipaddress.ip_address("203.0.113.7"),
    "ssl": True,
    "tls.client_auth.cert_presented": False,
    "tls.client_auth.cert_verified": False,
    "tls.client_auth.cert_revoked": False,
    "tls.client_auth.cert_status": "none",
    "tls.client_auth.cert_fingerprint_sha256": "",
    "tls.client_auth.cert_serial": "",
    "tls.client_auth.cert_subject_dn": "",
    "tls.client_auth.cert_issuer_dn": "",
    "tls.client_auth.cert_ski": "",
    "tls.client_auth.cert_issuer_ski": "",
    "tls.client_auth.cert_not_before": 0,
    "tls.client_auth.cert_not_after": 0,
}

FINGERPRINT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

V: dict[str, object] = {
    "http.host": "a.example.com",
    "http.request.method": "POST",
    "http.request.uri": "/admin/login.php",
    "http.request.uri.path": "/admin/login.php",
    "http.request.uri.query": "",
    "http.request.uri.args": {},
    "http.request.full_uri": "https://a.example.com/admin/login.php",
    "http.user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1)",
    "http.referer": "https://www.example.com/",
    "http.cookie": "",
    "http.request.headers": {
        "host": ["a.example.com"],
        "accept": ["text/html"],
        "x-env": ["prod", "Staging"],
        "content-length": ["42"],
    },
    "ip.src": ipaddress.ip_address("10.1.2.3"),
    "ssl": True,
    "tls.client_auth.cert_presented": True,
    "tls.client_auth.cert_verified": True,
    "tls.client_auth.cert_revoked": False,
    "tls.client_auth.cert_status": "valid",
    "tls.client_auth.cert_fingerprint_sha256": FINGERPRINT,
    "tls.client_auth.cert_serial": "0badc0de",
    "tls.client_auth.cert_subject_dn": "CN=device-42,O=Example Corp",
    "tls.client_auth.cert_issuer_dn": "CN=Example Managed CA,O=Example Corp",
    "tls.client_auth.cert_ski": "aa11",
    "tls.client_auth.cert_issuer_ski": "bb22",
    "tls.client_auth.cert_not_before": 1700000000,
    "tls.client_auth.cert_not_after": 1800000000,
}

R: dict[str, object] = {
    "http.host": "b.example.com",
    "http.request.method": "DELETE",
    "http.request.uri": "/v2/items/9",
    "http.request.uri.path": "/v2/items/9",
    "http.request.uri.query": "",
    "http.request.uri.args": {},
    "http.request.full_uri": "http://b.example.com/v2/items/9",
    "http.user_agent": "python-requests/2.31",
    "http.referer": "",
    "http.cookie": "",
    "http.request.headers": {"host": ["b.example.com"], "accept": ["*/*"]},
    "ip.src": ipaddress.ip_address("2001:db8::5"),
    "ssl": False,
    "tls.client_auth.cert_presented": True,
    "tls.client_auth.cert_verified": False,
    "tls.client_auth.cert_revoked": True,
    "tls.client_auth.cert_status": "revoked",
    "tls.client_auth.cert_fingerprint_sha256": "0000aaaa",
    "tls.client_auth.cert_serial": "01",
    "tls.client_auth.cert_subject_dn": "CN=old-device",
    "tls.client_auth.cert_issuer_dn": "CN=Example Managed CA,O=Example Corp",
    "tls.client_auth.cert_ski": "cc33",
    "tls.client_auth.cert_issuer_ski": "bb22",
    "tls.client_auth.cert_not_before": 1600000000,
    "tls.client_auth.cert_not_after": 1650000000,
}

M: dict[str, object] = {}

CONTEXTS = (S, V, R, M)


def cmp(lhs: Any, op: str, rhs: Any) -> dict[str, Any]:
    return {"lhs": lhs, "op": op, "rhs": rhs}


def true(lhs: Any) -> dict[str, Any]:
    return {"lhs": lhs, "op": "IsTrue"}


def not_(arg: Any) -> dict[str, Any]:
    return {"op": "Not", "arg": arg}


def and_(*items: Any) -> dict[str, Any]:
    return {"op": "And", "items": list(items)}


def or_(*items: Any) -> dict[str, Any]:
    return {"op": "Or", "items": list(items)}


def xor_(*items: Any) -> dict[str, Any]:
    return {"op": "Xor", "items": list(items)}


def call(name: str, *args: Any) -> dict[str, Any]:
    return {"name": name, "args": list(args)}


def hdr(*keys: Any) -> list[Any]:
    return ["http.request.headers", *keys]


def arg(*keys: Any) -> list[Any]:
    return ["http.request.uri.args", *keys]


HOST = "http.host"
METHOD = "http.request.method"
PATH = "http.request.uri.path"
UA = "http.user_agent"
CA = "tls.client_auth."
VERIFIED = CA + "cert_verified"
PRESENTED = CA + "cert_presented"
REVOKED = CA + "cert_revoked"
STATUS = CA + "cert_status"
NOT_BEFORE = CA + "cert_not_before"
NOT_AFTER = CA + "cert_not_after"

SEED_RULE = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'
CLOUDFLARE_RULE = '(http.host in {"a.example.com" "b.example.com"} and not cf.tls_client_auth.cert_verified)'

# (expression, expected AST JSON, results for S V R M)
CASES: list[tuple[str, Any, str]] = [
    # -- the two canonical mTLS rules --------------------------------------------------------------
    (SEED_RULE, and_(cmp(HOST, "Equal", "api.example.com"), not_(true(VERIFIED))), "TFFF"),
    (
        CLOUDFLARE_RULE,
        and_(cmp(HOST, "OneOf", ["a.example.com", "b.example.com"]), not_(true(VERIFIED))),
        "FFTF",
    ),
    # -- Bytes comparisons --------------------------------------------------------------------------
    ('http.host eq "api.example.com"', cmp(HOST, "Equal", "api.example.com"), "TFFF"),
    ('http.host == "a.example.com"', cmp(HOST, "Equal", "a.example.com"), "FTFF"),
    ('http.host ne "api.example.com"', cmp(HOST, "NotEqual", "api.example.com"), "FTTF"),
    ('http.host != "api.example.com"', cmp(HOST, "NotEqual", "api.example.com"), "FTTF"),
    ('not http.host eq "api.example.com"', not_(cmp(HOST, "Equal", "api.example.com")), "FTTT"),
    ('http.host lt "b"', cmp(HOST, "LessThan", "b"), "TTFF"),
    ('http.host le "a.example.com"', cmp(HOST, "LessThanEqual", "a.example.com"), "FTFF"),
    ('http.host gt "a.example.com"', cmp(HOST, "GreaterThan", "a.example.com"), "TFTF"),
    ('http.host ge "b.example.com"', cmp(HOST, "GreaterThanEqual", "b.example.com"), "FFTF"),
    ('http.host < "b"', cmp(HOST, "LessThan", "b"), "TTFF"),
    ('http.host >= "b.example.com"', cmp(HOST, "GreaterThanEqual", "b.example.com"), "FFTF"),
    ('http.host contains "example"', cmp(HOST, "Contains", "example"), "TTTF"),
    ('http.host contains "api."', cmp(HOST, "Contains", "api."), "TFFF"),
    ('http.host matches r"^(a|b)\\."', cmp(HOST, "Matches", "^(a|b)\\."), "FTTF"),
    ('http.host ~ "example\\\\.com$"', cmp(HOST, "Matches", "example\\.com$"), "TTTF"),
    ('http.host wildcard "*.EXAMPLE.COM"', cmp(HOST, "Wildcard", "*.EXAMPLE.COM"), "TTTF"),
    ('http.host strict wildcard "*.EXAMPLE.COM"', cmp(HOST, "StrictWildcard", "*.EXAMPLE.COM"), "FFFF"),
    ('http.host strict wildcard "a*.example.com"', cmp(HOST, "StrictWildcard", "a*.example.com"), "TTFF"),
    ('http.host wildcard "API.example.com"', cmp(HOST, "Wildcard", "API.example.com"), "TFFF"),
    ('http.host in {"api.example.com"}', cmp(HOST, "OneOf", ["api.example.com"]), "TFFF"),
    (
        'http.host in {"api.example.com" "api.example.com"}',
        cmp(HOST, "OneOf", ["api.example.com"] * 2),
        "TFFF",
    ),
    (
        'http.host ge "a" and http.host le "z"',
        and_(cmp(HOST, "GreaterThanEqual", "a"), cmp(HOST, "LessThanEqual", "z")),
        "TTTF",
    ),
    ('http.host matches ""', cmp(HOST, "Matches", ""), "TTTF"),
    ('http.host wildcard "*"', cmp(HOST, "Wildcard", "*"), "TTTF"),
    ('http.host wildcard "*example*"', cmp(HOST, "Wildcard", "*example*"), "TTTF"),
    ('http.host strict wildcard "*.example.com"', cmp(HOST, "StrictWildcard", "*.example.com"), "TTTF"),
    # -- string literal forms -----------------------------------------------------------------------
    ('http.host eq r"api.example.com"', cmp(HOST, "Equal", "api.example.com"), "TFFF"),
    ('http.host eq r#"api.example.com"#', cmp(HOST, "Equal", "api.example.com"), "TFFF"),
    ('http.host eq "\\x61pi.example.com"', cmp(HOST, "Equal", "api.example.com"), "TFFF"),
    ('http.host eq "\\141pi.example.com"', cmp(HOST, "Equal", "api.example.com"), "TFFF"),
    ('http.cookie contains "theme=\\"dark\\""', cmp("http.cookie", "Contains", 'theme="dark"'), "FFFF"),
    ('http.cookie contains r#"theme="dark""#', cmp("http.cookie", "Contains", 'theme="dark"'), "FFFF"),
    ('http.user_agent contains "\\\\"', cmp(UA, "Contains", "\\"), "FFFF"),
    # -- method, path, uri, query ---------------------------------------------------------------------
    ('http.request.method eq "GET"', cmp(METHOD, "Equal", "GET"), "TFFF"),
    (
        'http.request.method in {"POST" "PUT" "DELETE"}',
        cmp(METHOD, "OneOf", ["POST", "PUT", "DELETE"]),
        "FTTF",
    ),
    ('not http.request.method in {"GET" "HEAD"}', not_(cmp(METHOD, "OneOf", ["GET", "HEAD"])), "FTTT"),
    ('http.request.method matches "^(GET|HEAD)$"', cmp(METHOD, "Matches", "^(GET|HEAD)$"), "TFFF"),
    ('upper(http.request.method) eq "delete"', cmp(call("upper", METHOD), "Equal", "delete"), "FFFF"),
    ('http.request.uri.path eq "/v1/items"', cmp(PATH, "Equal", "/v1/items"), "TFFF"),
    ('starts_with(http.request.uri.path, "/admin")', true(call("starts_with", PATH, "/admin")), "FTFF"),
    ('ends_with(http.request.uri.path, ".php")', true(call("ends_with", PATH, ".php")), "FTFF"),
    ('http.request.uri.path matches r"^/v[0-9]+/"', cmp(PATH, "Matches", "^/v[0-9]+/"), "TFTF"),
    ('http.request.uri.path wildcard "/v*/items*"', cmp(PATH, "Wildcard", "/v*/items*"), "TFTF"),
    ('http.request.uri.path matches r"\\.(php|asp)$"', cmp(PATH, "Matches", "\\.(php|asp)$"), "FTFF"),
    (
        'http.request.uri.path matches "^/v\\\\d+/items(/\\\\d+)?$"',
        cmp(PATH, "Matches", "^/v\\d+/items(/\\d+)?$"),
        "TFTF",
    ),
    ('http.request.uri.path wildcard "/ADMIN/*"', cmp(PATH, "Wildcard", "/ADMIN/*"), "FTFF"),
    ('http.request.uri.path strict wildcard "/ADMIN/*"', cmp(PATH, "StrictWildcard", "/ADMIN/*"), "FFFF"),
    ('http.request.uri.path wildcard "*/items/\\\\*"', cmp(PATH, "Wildcard", "*/items/\\*"), "FFFF"),
    ('http.request.uri contains "?"', cmp("http.request.uri", "Contains", "?"), "TFFF"),
    ('http.request.uri.query eq ""', cmp("http.request.uri.query", "Equal", ""), "FTTF"),
    ('http.request.uri.query contains "id=7"', cmp("http.request.uri.query", "Contains", "id=7"), "TFFF"),
    (
        'starts_with(http.request.full_uri, "https://")',
        true(call("starts_with", "http.request.full_uri", "https://")),
        "TTFF",
    ),
    (
        'http.request.full_uri eq "http://b.example.com/v2/items/9"',
        cmp("http.request.full_uri", "Equal", "http://b.example.com/v2/items/9"),
        "FFTF",
    ),
    (
        'http.request.full_uri matches "^https://"',
        cmp("http.request.full_uri", "Matches", "^https://"),
        "TTFF",
    ),
    # -- user agent, referer, cookie ----------------------------------------------------------------
    ('http.user_agent contains "bot"', cmp(UA, "Contains", "bot"), "FTFF"),
    ('lower(http.user_agent) contains "googlebot"', cmp(call("lower", UA), "Contains", "googlebot"), "FTFF"),
    ('upper(http.user_agent) contains "CURL"', cmp(call("upper", UA), "Contains", "CURL"), "TFFF"),
    ('http.user_agent matches "(?i)CURL|REQUESTS"', cmp(UA, "Matches", "(?i)CURL|REQUESTS"), "TFTF"),
    ('http.user_agent eq ""', cmp(UA, "Equal", ""), "FFFF"),
    (
        'http.user_agent matches r"(?i)^mozilla/5\\.0 \\(compatible; [a-z]+bot/"',
        cmp(UA, "Matches", "(?i)^mozilla/5\\.0 \\(compatible; [a-z]+bot/"),
        "FTFF",
    ),
    ('http.referer eq ""', cmp("http.referer", "Equal", ""), "TFTF"),
    ('http.referer contains "example.com"', cmp("http.referer", "Contains", "example.com"), "FTFF"),
    ('http.cookie contains "session="', cmp("http.cookie", "Contains", "session="), "TFFF"),
    ("len(http.cookie) gt 0", cmp(call("len", "http.cookie"), "GreaterThan", 0), "TFFF"),
    ("len(http.cookie) eq 23", cmp(call("len", "http.cookie"), "Equal", 23), "TFFF"),
    # -- IP -------------------------------------------------------------------------------------------
    ("ip.src eq 203.0.113.7", cmp("ip.src", "Equal", "203.0.113.7"), "TFFF"),
    ("ip.src ne 203.0.113.7", cmp("ip.src", "NotEqual", "203.0.113.7"), "FTTF"),
    (
        "ip.src in {10.0.0.0/8 192.168.0.0/16}",
        cmp("ip.src", "OneOf", ["10.0.0.0/8", "192.168.0.0/16"]),
        "FTFF",
    ),
    ("ip.src in {203.0.113.0/24}", cmp("ip.src", "OneOf", ["203.0.113.0/24"]), "TFFF"),
    ("ip.src in {2001:db8::/32}", cmp("ip.src", "OneOf", ["2001:db8::/32"]), "FFTF"),
    (
        "ip.src in {203.0.113.1..203.0.113.9 10.1.2.3}",
        cmp("ip.src", "OneOf", [{"start": "203.0.113.1", "end": "203.0.113.9"}, "10.1.2.3"]),
        "TTFF",
    ),
    ("not ip.src in {10.0.0.0/8}", not_(cmp("ip.src", "OneOf", ["10.0.0.0/8"])), "TFTT"),
    ("ip.src gt 10.255.255.255", cmp("ip.src", "GreaterThan", "10.255.255.255"), "TFFF"),
    ("ip.src le 2001:db8::5", cmp("ip.src", "LessThanEqual", "2001:db8::5"), "FFTF"),
    ("ip.src eq ::1", cmp("ip.src", "Equal", "::1"), "FFFF"),
    (
        "ip.src in {2001:db8::1..2001:db8::ff}",
        cmp("ip.src", "OneOf", [{"start": "2001:db8::1", "end": "2001:db8::ff"}]),
        "FFTF",
    ),
    ("ip.src in {0.0.0.0/0}", cmp("ip.src", "OneOf", ["0.0.0.0/0"]), "TTFF"),
    ("ip.src in {::/0}", cmp("ip.src", "OneOf", ["::/0"]), "FFTF"),
    ("ip.src in {10.1.2.3 203.0.113.7}", cmp("ip.src", "OneOf", ["10.1.2.3", "203.0.113.7"]), "TTFF"),
    # -- Bool -----------------------------------------------------------------------------------------
    ("ssl", true("ssl"), "TTFF"),
    ("not ssl", not_(true("ssl")), "FFTT"),
    ("!ssl", not_(true("ssl")), "FFTT"),
    ("ssl eq true", cmp("ssl", "Equal", True), "TTFF"),
    ("ssl eq false", cmp("ssl", "Equal", False), "FFTF"),
    ("ssl ne true", cmp("ssl", "NotEqual", True), "FFTF"),
    ("ssl == true", cmp("ssl", "Equal", True), "TTFF"),
    ("not not ssl", not_(not_(true("ssl"))), "TTFF"),
    ("(((ssl)))", true("ssl"), "TTFF"),
    # -- client certificate fields (canonical and cf.* aliases) -------------------------------------
    ("tls.client_auth.cert_presented", true(PRESENTED), "FTTF"),
    ("cf.tls_client_auth.cert_presented", true(PRESENTED), "FTTF"),
    ("tls.client_auth.cert_verified", true(VERIFIED), "FTFF"),
    ("not tls.client_auth.cert_verified", not_(true(VERIFIED)), "TFTT"),
    ("not cf.tls_client_auth.cert_verified", not_(true(VERIFIED)), "TFTT"),
    ("tls.client_auth.cert_revoked", true(REVOKED), "FFTF"),
    ("cf.tls_client_auth.cert_revoked", true(REVOKED), "FFTF"),
    ('tls.client_auth.cert_status eq "valid"', cmp(STATUS, "Equal", "valid"), "FTFF"),
    (
        'tls.client_auth.cert_status in {"revoked" "expired" "untrusted"}',
        cmp(STATUS, "OneOf", ["revoked", "expired", "untrusted"]),
        "FFTF",
    ),
    ('cf.tls_client_auth.cert_status ne "none"', cmp(STATUS, "NotEqual", "none"), "FTTF"),
    (
        f'tls.client_auth.cert_fingerprint_sha256 eq "{FINGERPRINT}"',
        cmp(CA + "cert_fingerprint_sha256", "Equal", FINGERPRINT),
        "FTFF",
    ),
    (
        'cf.tls_client_auth.cert_fingerprint_sha256 in {"0000aaaa" "ffff"}',
        cmp(CA + "cert_fingerprint_sha256", "OneOf", ["0000aaaa", "ffff"]),
        "FFTF",
    ),
    ('tls.client_auth.cert_serial eq "0badc0de"', cmp(CA + "cert_serial", "Equal", "0badc0de"), "FTFF"),
    ('tls.client_auth.cert_serial ne "01"', cmp(CA + "cert_serial", "NotEqual", "01"), "TTFF"),
    (
        'tls.client_auth.cert_subject_dn contains "CN=device-"',
        cmp(CA + "cert_subject_dn", "Contains", "CN=device-"),
        "FTFF",
    ),
    (
        'tls.client_auth.cert_subject_dn matches "^CN=[a-z-]+[0-9]*(,|$)"',
        cmp(CA + "cert_subject_dn", "Matches", "^CN=[a-z-]+[0-9]*(,|$)"),
        "FTTF",
    ),
    (
        'tls.client_auth.cert_issuer_dn eq "CN=Example Managed CA,O=Example Corp"',
        cmp(CA + "cert_issuer_dn", "Equal", "CN=Example Managed CA,O=Example Corp"),
        "FTTF",
    ),
    ('tls.client_auth.cert_ski eq "aa11"', cmp(CA + "cert_ski", "Equal", "aa11"), "FTFF"),
    ('cf.tls_client_auth.cert_issuer_ski eq "bb22"', cmp(CA + "cert_issuer_ski", "Equal", "bb22"), "FTTF"),
    # -- Int --------------------------------------------------------------------------------------------
    ("tls.client_auth.cert_not_after lt 1700000000", cmp(NOT_AFTER, "LessThan", 1700000000), "TFTF"),
    (
        "tls.client_auth.cert_not_before ge 1700000000",
        cmp(NOT_BEFORE, "GreaterThanEqual", 1700000000),
        "FTFF",
    ),
    ("tls.client_auth.cert_not_before > 1600000000", cmp(NOT_BEFORE, "GreaterThan", 1600000000), "FTFF"),
    ("tls.client_auth.cert_not_before <= 1600000000", cmp(NOT_BEFORE, "LessThanEqual", 1600000000), "TFTF"),
    (
        "tls.client_auth.cert_not_after in {1650000000 1800000000}",
        cmp(NOT_AFTER, "OneOf", [1650000000, 1800000000]),
        "FTTF",
    ),
    (
        "tls.client_auth.cert_not_before in {1..1699999999}",
        cmp(NOT_BEFORE, "OneOf", [{"start": 1, "end": 1699999999}]),
        "FFTF",
    ),
    (
        "tls.client_auth.cert_not_before in {0 1700000000..1700000001}",
        cmp(NOT_BEFORE, "OneOf", [0, {"start": 1700000000, "end": 1700000001}]),
        "TTFF",
    ),
    ("tls.client_auth.cert_not_after == 0x6B49D200", cmp(NOT_AFTER, "Equal", 1800000000), "FTFF"),
    ("tls.client_auth.cert_not_before gt -1", cmp(NOT_BEFORE, "GreaterThan", -1), "TTTF"),
    (
        "tls.client_auth.cert_not_before in {-5..5}",
        cmp(NOT_BEFORE, "OneOf", [{"start": -5, "end": 5}]),
        "TFFF",
    ),
    ("tls.client_auth.cert_not_after ne 0", cmp(NOT_AFTER, "NotEqual", 0), "FTTF"),
    # -- headers, query args, [*] -------------------------------------------------------------------
    (
        'http.request.headers["accept"][0] eq "application/json"',
        cmp(hdr("accept", 0), "Equal", "application/json"),
        "TFFF",
    ),
    ('http.request.headers["accept"][1] eq "text/html"', cmp(hdr("accept", 1), "Equal", "text/html"), "TFFF"),
    ('http.request.headers["accept"][5] eq "x"', cmp(hdr("accept", 5), "Equal", "x"), "FFFF"),
    ('not http.request.headers["accept"][5] eq "x"', not_(cmp(hdr("accept", 5), "Equal", "x")), "TTTT"),
    (
        'any(http.request.headers["accept"][*] eq "text/html")',
        true(call("any", cmp(hdr("accept", EACH), "Equal", "text/html"))),
        "TTFF",
    ),
    (
        'all(http.request.headers["accept"][*] contains "/")',
        true(call("all", cmp(hdr("accept", EACH), "Contains", "/"))),
        "TTTF",
    ),
    (
        'any(http.request.headers["x-env"][*] eq "staging")',
        true(call("any", cmp(hdr("x-env", EACH), "Equal", "staging"))),
        "FFFF",
    ),
    (
        'any(lower(http.request.headers["x-env"][*]) eq "staging")',
        true(call("any", cmp(call("lower", hdr("x-env", EACH)), "Equal", "staging"))),
        "FTFF",
    ),
    (
        'all(lower(http.request.headers["x-env"][*]) in {"prod" "staging"})',
        true(call("all", cmp(call("lower", hdr("x-env", EACH)), "OneOf", ["prod", "staging"]))),
        "FTFF",
    ),
    (
        'any(http.request.headers[*][0] eq "b.example.com")',
        true(call("any", cmp(hdr(EACH, 0), "Equal", "b.example.com"))),
        "FFTF",
    ),
    (
        'any(starts_with(http.request.headers["accept"][*], "application/"))',
        true(call("any", call("starts_with", hdr("accept", EACH), "application/"))),
        "TFFF",
    ),
    (
        'len(http.request.headers["accept"]) eq 2',
        cmp(call("len", hdr("accept")), "Equal", 2),
        "TFFF",
    ),
    (
        "len(http.request.headers) ge 4",
        cmp(call("len", "http.request.headers"), "GreaterThanEqual", 4),
        "TTFF",
    ),
    (
        'http.request.headers["content-length"][0] eq "42"',
        cmp(hdr("content-length", 0), "Equal", "42"),
        "FTFF",
    ),
    (
        'not any(http.request.headers["x-env"][*] eq "prod")',
        not_(true(call("any", cmp(hdr("x-env", EACH), "Equal", "prod")))),
        "TFTT",
    ),
    (
        'all(http.request.headers["x-missing"][*] eq "a")',
        true(call("all", cmp(hdr("x-missing", EACH), "Equal", "a"))),
        "FFFF",
    ),
    (
        'any(http.request.headers["accept"][*] in {"*/*" "text/html"})',
        true(call("any", cmp(hdr("accept", EACH), "OneOf", ["*/*", "text/html"]))),
        "TTTF",
    ),
    (
        'all(http.request.headers["host"][*] wildcard "*.example.com")',
        true(call("all", cmp(hdr("host", EACH), "Wildcard", "*.example.com"))),
        "TTTF",
    ),
    (
        'any(http.request.headers["accept"][*] matches "json$")',
        true(call("any", cmp(hdr("accept", EACH), "Matches", "json$"))),
        "TFFF",
    ),
    (
        'starts_with(http.request.headers["accept"][0], "text/")',
        true(call("starts_with", hdr("accept", 0), "text/")),
        "FTFF",
    ),
    ('http.request.uri.args["id"][1] eq "8"', cmp(arg("id", 1), "Equal", "8"), "TFFF"),
    (
        'any(http.request.uri.args["id"][*] eq "7")',
        true(call("any", cmp(arg("id", EACH), "Equal", "7"))),
        "TFFF",
    ),
    ("len(http.request.uri.args) eq 0", cmp(call("len", "http.request.uri.args"), "Equal", 0), "FTTF"),
    ('any(http.request.uri.args[*][0] eq "x")', true(call("any", cmp(arg(EACH, 0), "Equal", "x"))), "TFFF"),
    # -- functions ------------------------------------------------------------------------------------
    (
        'concat(http.host, http.request.uri.path) eq "api.example.com/v1/items"',
        cmp(call("concat", HOST, PATH), "Equal", "api.example.com/v1/items"),
        "TFFF",
    ),
    (
        'concat("https://", http.host) eq "https://a.example.com"',
        cmp(call("concat", "https://", HOST), "Equal", "https://a.example.com"),
        "FTFF",
    ),
    (
        'any(concat(http.request.headers["accept"], http.request.headers["host"])[*] eq "a.example.com")',
        true(
            call(
                "any",
                cmp([call("concat", hdr("accept"), hdr("host")), EACH], "Equal", "a.example.com"),
            )
        ),
        "FTFF",
    ),
    (
        'len(concat(http.request.headers["accept"], http.request.headers["accept"])) eq 4',
        cmp(call("len", call("concat", hdr("accept"), hdr("accept"))), "Equal", 4),
        "TFFF",
    ),
    ('lower(http.host) eq "api.example.com"', cmp(call("lower", HOST), "Equal", "api.example.com"), "TFFF"),
    ("len(http.host) eq 13", cmp(call("len", HOST), "Equal", 13), "FTTF"),
    ("len(lower(http.host)) lt 14", cmp(call("len", call("lower", HOST)), "LessThan", 14), "FTTF"),
    (
        'ends_with(lower(http.host), ".example.com")',
        true(call("ends_with", call("lower", HOST), ".example.com")),
        "TTTF",
    ),
    # -- logic and precedence -------------------------------------------------------------------------
    (
        'http.host eq "api.example.com" or http.host eq "b.example.com"',
        or_(cmp(HOST, "Equal", "api.example.com"), cmp(HOST, "Equal", "b.example.com")),
        "TFTF",
    ),
    (
        'http.host eq "api.example.com" || ssl',
        or_(cmp(HOST, "Equal", "api.example.com"), true("ssl")),
        "TTFF",
    ),
    ("ssl and tls.client_auth.cert_verified", and_(true("ssl"), true(VERIFIED)), "FTFF"),
    ("ssl && not tls.client_auth.cert_verified", and_(true("ssl"), not_(true(VERIFIED))), "TFFF"),
    ("ssl xor tls.client_auth.cert_presented", xor_(true("ssl"), true(PRESENTED)), "TFTF"),
    (
        "ssl ^^ tls.client_auth.cert_presented ^^ tls.client_auth.cert_revoked",
        xor_(true("ssl"), true(PRESENTED), true(REVOKED)),
        "TFFF",
    ),
    (
        "ssl or tls.client_auth.cert_presented and tls.client_auth.cert_revoked",
        or_(true("ssl"), and_(true(PRESENTED), true(REVOKED))),
        "TTTF",
    ),
    (
        "(ssl or tls.client_auth.cert_presented) and tls.client_auth.cert_revoked",
        and_(or_(true("ssl"), true(PRESENTED)), true(REVOKED)),
        "FFTF",
    ),
    (
        "ssl and tls.client_auth.cert_presented or tls.client_auth.cert_revoked",
        or_(and_(true("ssl"), true(PRESENTED)), true(REVOKED)),
        "FTTF",
    ),
    (
        "ssl xor tls.client_auth.cert_presented and tls.client_auth.cert_verified",
        xor_(true("ssl"), and_(true(PRESENTED), true(VERIFIED))),
        "TFFF",
    ),
    (
        "ssl or tls.client_auth.cert_presented xor tls.client_auth.cert_revoked",
        or_(true("ssl"), xor_(true(PRESENTED), true(REVOKED))),
        "TTFF",
    ),
    ("not (ssl or tls.client_auth.cert_presented)", not_(or_(true("ssl"), true(PRESENTED))), "FFFT"),
    ("ssl and ssl and ssl", and_(true("ssl"), true("ssl"), true("ssl")), "TTFF"),
    ("(ssl and ssl) and ssl", and_(and_(true("ssl"), true("ssl")), true("ssl")), "TTFF"),
    (
        'http.host eq "api.example.com" and (http.request.method eq "GET" or http.request.method eq "HEAD")'
        " and not tls.client_auth.cert_verified",
        and_(
            cmp(HOST, "Equal", "api.example.com"),
            or_(cmp(METHOD, "Equal", "GET"), cmp(METHOD, "Equal", "HEAD")),
            not_(true(VERIFIED)),
        ),
        "TFFF",
    ),
    (
        'http.host in {"a.example.com" "b.example.com"}\n  and not tls.client_auth.cert_verified',
        and_(cmp(HOST, "OneOf", ["a.example.com", "b.example.com"]), not_(true(VERIFIED))),
        "FFTF",
    ),
    (
        'http.host in {"a.example.com" "b.example.com"} and not (tls.client_auth.cert_verified and not '
        "tls.client_auth.cert_revoked)",
        and_(
            cmp(HOST, "OneOf", ["a.example.com", "b.example.com"]),
            not_(and_(true(VERIFIED), not_(true(REVOKED)))),
        ),
        "FFTF",
    ),
    (
        "tls.client_auth.cert_presented and not tls.client_auth.cert_verified",
        and_(true(PRESENTED), not_(true(VERIFIED))),
        "FFTF",
    ),
    (
        'not tls.client_auth.cert_presented and http.request.uri.path wildcard "/v1/*"',
        and_(not_(true(PRESENTED)), cmp(PATH, "Wildcard", "/v1/*")),
        "TFFF",
    ),
    (
        'http.host eq "a.example.com" and tls.client_auth.cert_status ne "valid"',
        and_(cmp(HOST, "Equal", "a.example.com"), cmp(STATUS, "NotEqual", "valid")),
        "FFFF",
    ),
    (
        'tls.client_auth.cert_status eq "none" or tls.client_auth.cert_status eq "revoked"',
        or_(cmp(STATUS, "Equal", "none"), cmp(STATUS, "Equal", "revoked")),
        "TFTF",
    ),
    (
        'http.host eq "api.example.com" xor http.host eq "a.example.com"',
        xor_(cmp(HOST, "Equal", "api.example.com"), cmp(HOST, "Equal", "a.example.com")),
        "TTFF",
    ),
    (
        "ssl eq true and tls.client_auth.cert_verified eq false",
        and_(cmp("ssl", "Equal", True), cmp(VERIFIED, "Equal", False)),
        "TFFF",
    ),
    (
        'http.request.method eq "GET" and ip.src in {203.0.113.0/24} and ssl and not '
        "tls.client_auth.cert_presented",
        and_(
            cmp(METHOD, "Equal", "GET"),
            cmp("ip.src", "OneOf", ["203.0.113.0/24"]),
            true("ssl"),
            not_(true(PRESENTED)),
        ),
        "TFFF",
    ),
    (
        "\tssl\n\tand\r\n\ttls.client_auth.cert_verified\n",
        and_(true("ssl"), true(VERIFIED)),
        "FTFF",
    ),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 150
    assert len({text for text, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "expected_json", "results"), CASES, ids=[c[0][:60] for c in CASES])
def test_case(text: str, expected_json: Any, results: str) -> None:
    filter_ast = parse(text, EDGE_SCHEME)
    assert filter_ast.to_json() == expected_json
    # The canonical text parses back to the same tree, and is a fixed point.
    canonical = filter_ast.to_text()
    again = parse(canonical, EDGE_SCHEME)
    assert again.expr == filter_ast.expr
    assert again.to_text() == canonical
    flt = compile_filter(filter_ast)
    got = "".join("T" if flt.execute(EDGE_SCHEME.context_from_values(values)) else "F" for values in CONTEXTS)
    assert got == results


def test_seed_rule_blocks_only_the_unverified_request_to_its_host() -> None:
    flt = compile_filter(parse(SEED_RULE, EDGE_SCHEME, settings=ParserSettings()))
    assert flt.fields == frozenset({"http.host", "tls.client_auth.cert_verified"})
    assert flt.execute(EDGE_SCHEME.context_from_values(S)) is True
    verified = dict(S, **{"tls.client_auth.cert_verified": True})
    assert flt.execute(EDGE_SCHEME.context_from_values(verified)) is False


def test_cloudflare_rule_reads_canonical_fields() -> None:
    flt = compile_filter(parse(CLOUDFLARE_RULE))
    assert flt.fields == frozenset({"http.host", "tls.client_auth.cert_verified"})


def test_an_unreferenced_field_is_never_fetched() -> None:
    calls: list[str] = []

    def getter(name: str) -> object:
        calls.append(name)
        return S.get(name)

    filters = [compile_filter(parse(SEED_RULE)), compile_filter(parse(CLOUDFLARE_RULE))]
    ctx = EDGE_SCHEME.context(getter)
    assert [f.execute(ctx) for f in filters] == [True, False]
    # Each referenced field exactly once, across both filters; nothing else (e.g. the headers).
    assert sorted(calls) == ["http.host", "tls.client_auth.cert_verified"]


def test_short_circuit_skips_fields_not_needed_for_the_answer() -> None:
    calls: list[str] = []

    def getter(name: str) -> object:
        calls.append(name)
        return V.get(name)

    flt = compile_filter(parse(SEED_RULE))
    assert flt.execute(EDGE_SCHEME.context(getter)) is False
    assert calls == ["http.host"]  # the host did not match: cert_verified was never computed


def test_validate_raises_rule_parse_error_with_position() -> None:
    validate(SEED_RULE)
    validate(SEED_RULE, EDGE_SCHEME, settings=ParserSettings())
    with pytest.raises(RuleParseError) as info:
        validate('(http.host eq "api.example.com" and not tls.client_auth.cert_verifed)')
    err = info.value
    assert (err.line, err.column, err.kind) == (1, 41, "unknown_field")
    assert "did you mean `tls.client_auth.cert_verified`?" in err.message
    assert "^" in str(err)


def test_missing_values_make_every_comparison_false() -> None:
    texts = [
        'http.host eq "a"',
        'http.host ne "a"',
        'http.host contains ""',
        'http.host wildcard "*"',
        'http.host matches ""',
        'http.host in {"a"}',
        "ip.src ne 1.2.3.4",
        "tls.client_auth.cert_not_after ge -9223372036854775808",
        "ssl",
        "ssl eq false",
        'any(http.request.headers["a"][*] eq "a")',
        'all(http.request.headers["a"][*] eq "a")',
        'starts_with(http.host, "")',
    ]
    ctx = EDGE_SCHEME.context_from_values({})
    for text in texts:
        assert compile_filter(parse(text)).execute(ctx) is False, text
        assert compile_filter(parse(f"not ({text})")).execute(ctx) is True, text
