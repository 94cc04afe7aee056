"""The compiler: generated code keeps literals out of the source, filters check their scheme."""

from __future__ import annotations

import pytest

from certgate.rules import (
    BOOL,
    BYTES,
    EDGE_SCHEME,
    SchemeBuilder,
    SchemeMismatchError,
    compile_filter,
    parse,
)
from certgate.rules import ast as nodes


def test_literals_never_reach_the_generated_source() -> None:
    hostile = '"); __import__("os").system("true"); ("'
    text = f"http.host eq {nodes.quote_string(hostile)} or http.host in {{{nodes.quote_string(hostile)}}}"
    flt = compile_filter(parse(text))
    assert "__import__" not in flt.source
    assert "http.host" not in flt.source  # field names are constants too
    ctx = EDGE_SCHEME.context_from_values({"http.host": hostile})
    assert flt.execute(ctx) is True


def test_a_filter_refuses_a_context_of_another_scheme() -> None:
    other = SchemeBuilder().add_field("ssl", BOOL).build()
    flt = compile_filter(parse("ssl", EDGE_SCHEME))
    with pytest.raises(SchemeMismatchError):
        flt.execute(other.context_from_values({"ssl": True}))


def test_hand_built_asts_compile_their_regexes() -> None:
    expr = nodes.Compare(nodes.Field("http.host", BYTES), "matches", nodes.RegexLit("^a+$"))
    flt = compile_filter(nodes.FilterAST(expr, EDGE_SCHEME))
    assert flt.execute(EDGE_SCHEME.context_from_values({"http.host": "aaa"})) is True
    assert flt.execute(EDGE_SCHEME.context_from_values({"http.host": "aab"})) is False


def test_filters_can_be_shared_across_contexts() -> None:
    flt = compile_filter(parse('lower(http.host) eq "a.example.com"'))
    results = [flt.execute(EDGE_SCHEME.context_from_values({"http.host": h})) for h in ("A.Example.COM", "b")]
    assert results == [True, False]
    assert repr(flt) == "Filter('lower(http.host) eq \"a.example.com\"')"


def test_xor_and_missing_values() -> None:
    flt = compile_filter(parse("ssl xor tls.client_auth.cert_presented xor tls.client_auth.cert_revoked"))
    assert flt.execute(EDGE_SCHEME.context_from_values({"ssl": True})) is True
    assert flt.execute(EDGE_SCHEME.context_from_values({})) is False


def test_ip_ordering_across_families_only_satisfies_ne() -> None:
    import ipaddress

    ctx = EDGE_SCHEME.context_from_values({"ip.src": ipaddress.ip_address("2001:db8::1")})
    for text, expected in [
        ("ip.src lt 10.0.0.1", False),
        ("ip.src ge 10.0.0.1", False),
        ("ip.src eq 10.0.0.1", False),
        ("ip.src ne 10.0.0.1", True),
    ]:
        assert compile_filter(parse(text)).execute(ctx) is expected, text


def test_concat_of_arrays_and_len_of_non_ascii() -> None:
    values = {
        "http.request.headers": {"a": ["1"], "b": ["2", "3"]},
        "http.host": "é.example",
    }
    ctx = EDGE_SCHEME.context_from_values(values)
    assert compile_filter(
        parse('len(concat(http.request.headers["a"], http.request.headers["b"])) eq 3')
    ).execute(ctx)
    assert compile_filter(parse("len(http.host) eq 10")).execute(ctx)  # é is two UTF-8 bytes
    missing = compile_filter(parse('len(concat(http.request.headers["a"], http.request.headers["zz"])) ge 0'))
    assert missing.execute(ctx) is False
