"""The compiler: generated code keeps literals out of the source, filters check their scheme."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_filter_set_agrees_with_single_filters() -> None:
    from certgate.rules import compile_filters

    from .test_api import CASES, CONTEXTS

    asts = [parse(text) for text, _, _ in CASES]
    filter_set = compile_filters(asts)
    singles = [compile_filter(a) for a in asts]
    assert len(filter_set) == len(CASES)
    for values in CONTEXTS:
        expected = [i for i, f in enumerate(singles) if f.execute(EDGE_SCHEME.context_from_values(values))]
        assert filter_set.matching(EDGE_SCHEME.context_from_values(values)) == expected
        ctx = EDGE_SCHEME.context_from_values(values)
        first = filter_set.first_match(ctx, 0)
        assert first == (expected[0] if expected else -1)
        if expected:
            assert filter_set.first_match(ctx, expected[-1] + 1) == -1


def test_filter_set_is_lazy_and_checks_its_inputs() -> None:
    from certgate.rules import compile_filters

    calls: list[str] = []

    def getter(name: str) -> object:
        calls.append(name)
        return {"http.host": "a", "ssl": True}.get(name)

    rules = compile_filters([parse('http.host eq "a"'), parse('http.user_agent contains "x"'), parse("ssl")])
    assert rules.first_match(EDGE_SCHEME.context(getter)) == 0
    assert calls == ["http.host"]
    assert rules.first_match(EDGE_SCHEME.context(getter), 1) == 2
    other = SchemeBuilder().add_field("ssl", BOOL).build()
    with pytest.raises(SchemeMismatchError):
        compile_filters([parse("ssl"), parse("ssl", other)])
    with pytest.raises(ValueError):
        compile_filters([])


@settings(max_examples=150, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(st.ip_addresses(v=4), st.integers(min_value=16, max_value=32))
        | st.tuples(st.ip_addresses(v=6), st.integers(min_value=64, max_value=128)),
        min_size=1,
        max_size=10,
    ),
    st.ip_addresses(v=4) | st.ip_addresses(v=6),
)
def test_inlined_ip_sets_agree_with_ipset(nets: list[tuple[object, int]], probe: object) -> None:
    import ipaddress

    from certgate.rules.matchers import IPSet

    networks = [ipaddress.ip_network(f"{a}/{p}", strict=False) for a, p in nets]
    text = "ip.src in {" + " ".join(str(n) for n in networks) + "}"
    flt = compile_filter(parse(text))
    expected = probe in IPSet(networks=networks)  # type: ignore[operator]
    assert flt.execute(EDGE_SCHEME.context_from_values({"ip.src": probe})) is expected


@settings(max_examples=200, derandomize=True, database=None)
@given(st.text(alphabet="aB*.", max_size=6), st.text(alphabet="abAB.", max_size=8), st.booleans())
def test_inlined_wildcards_agree_with_the_matcher(pattern: str, text: str, strict: bool) -> None:
    from certgate.rules.matchers import Wildcard

    if "**" in pattern:
        return
    op = "strict wildcard" if strict else "wildcard"
    flt = compile_filter(parse(f"http.host {op} {nodes.quote_string(pattern)}"))
    expected = Wildcard(pattern, case_sensitive=strict, max_stars=32).match(text)
    assert flt.execute(EDGE_SCHEME.context_from_values({"http.host": text})) is expected


MATCHES_CASES = [
    "(?i)(sqlmap|nikto|masscan)",  # substring tests over the lowered text
    "scanner(0|1)",  # substring tests
    "^/api/v[0-9]/(admin|debug)/",  # `re` for short inputs, the automaton for long ones
    "(admin|debug)$",  # `$`: an input ending in a newline takes the automaton
    "a.*b",  # the automaton only
]

MATCHES_TEXTS = [
    "",
    "Mozilla/5.0 SQLMAP",
    "ni\u212ato",
    "nikto",
    "/api/v2/admin/x",
    "/api/v2/admin/x" + "y" * 5000,
    "debug",
    "debug\n",
    "xdebug\n",
    "scanner1",
    "a" + "-" * 3000 + "b",
    "é admin",
]


@pytest.mark.parametrize("pattern", MATCHES_CASES)
def test_inlined_matches_agree_with_the_program(pattern: str) -> None:
    """The compiler inlines the regex program's shortcuts; the answers must be the program's."""
    ast_ = parse(f"http.user_agent matches {nodes.quote_string(pattern)}")
    flt = compile_filter(ast_)
    compare = ast_.expr
    assert isinstance(compare, nodes.Compare) and isinstance(compare.rhs, nodes.RegexLit)
    program = compare.rhs.program
    assert program is not None
    texts = [*MATCHES_TEXTS, *(t.upper() for t in MATCHES_TEXTS)]
    for text in texts:
        got = flt.execute(EDGE_SCHEME.context_from_values({"http.user_agent": text}))
        assert got is program.search(text), (pattern, text)
    assert flt.execute(EDGE_SCHEME.context_from_values({})) is False


@settings(max_examples=200, derandomize=True, database=None)
@given(st.text(alphabet="aAbBzZ\u212a\u0130é-", max_size=12))
def test_inlined_lower_and_wildcard_fold_ascii_only(text: str) -> None:
    from certgate.rules.matchers import ascii_lower, ascii_upper

    flt = compile_filter(parse('lower(http.host) eq "ab" or upper(http.host) eq "AZ"'))
    expected = ascii_lower(text) == "ab" or ascii_upper(text) == "AZ"
    assert flt.execute(EDGE_SCHEME.context_from_values({"http.host": text})) is expected
    wild = compile_filter(parse('http.host wildcard "a*b"'))
    folded = ascii_lower(text)
    expected = len(folded) >= 2 and folded.startswith("a") and folded.endswith("b")
    assert wild.execute(EDGE_SCHEME.context_from_values({"http.host": text})) is expected
