"""The AST's text and JSON forms; Hypothesis: random valid ASTs round-trip through to_text()."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certgate.rules import EDGE_SCHEME, compile_filter, parse
from certgate.rules import ast as nodes
from certgate.rules.types import BOOL, BYTES, INT, IP, Type, array_of, map_of


def field(name: str) -> nodes.Field:
    found = EDGE_SCHEME.field(name)
    assert found is not None
    return nodes.Field(found.name, found.type)


class TestQuoteString:
    def test_plain(self) -> None:
        assert nodes.quote_string("api.example.com") == '"api.example.com"'

    def test_backslashes_and_quotes_use_a_raw_string(self) -> None:
        assert nodes.quote_string("\\.php$") == 'r"\\.php$"'
        assert nodes.quote_string('say "hi"') == 'r#"say "hi""#'
        assert nodes.quote_string('"#') == 'r##""#"##'

    def test_control_and_raw_bytes_are_escaped(self) -> None:
        assert nodes.quote_string("a\nb") == '"a\\x0Ab"'
        assert nodes.quote_string("\udcff\\") == '"\\xFF\\\\"'
        assert nodes.quote_string("é") == '"é"'

    def test_every_form_parses_back(self) -> None:
        for value in ["", "x", "\\", '"', '\\"', "\t", "é\u2028", "\udc80", "r#", '"##']:
            text = f"http.host eq {nodes.quote_string(value)}"
            expr = parse(text).expr
            assert isinstance(expr, nodes.Compare)
            assert expr.rhs == nodes.StringLit(value)


def test_to_text_is_canonical() -> None:
    text = '(http.host == "a" && !ssl) || (ip.src in {10.0.0.0/8 1.2.3.4..1.2.3.9}) ^^ ssl'
    assert parse(text).to_text() == (
        '(http.host eq "a" and not ssl) or (ip.src in {10.0.0.0/8 1.2.3.4..1.2.3.9} xor ssl)'
    )


def test_index_and_call_json() -> None:
    filter_ast = parse('any(lower(http.request.headers["x-a"][*]) contains "b") and len(http.host) gt 3')
    assert filter_ast.to_json() == {
        "op": "And",
        "items": [
            {
                "lhs": {
                    "name": "any",
                    "args": [
                        {
                            "lhs": {
                                "name": "lower",
                                "args": [["http.request.headers", "x-a", {"kind": "MapEach"}]],
                            },
                            "op": "Contains",
                            "rhs": "b",
                        }
                    ],
                },
                "op": "IsTrue",
            },
            {"lhs": {"name": "len", "args": ["http.host"]}, "op": "GreaterThan", "rhs": 3},
        ],
    }
    assert filter_ast.fields == frozenset({"http.request.headers", "http.host"})


def test_regex_literals_compare_by_pattern_only() -> None:
    assert nodes.RegexLit("a+", program=object()) == nodes.RegexLit("a+")


# -- random valid ASTs -----------------------------------------------------------------------------

BYTES_FIELDS = [f.name for f in EDGE_SCHEME.fields if f.type == BYTES]
INT_FIELDS = [f.name for f in EDGE_SCHEME.fields if f.type == INT]
BOOL_FIELDS = [f.name for f in EDGE_SCHEME.fields if f.type == BOOL]
MAP_FIELDS = [f.name for f in EDGE_SCHEME.fields if f.type == map_of(array_of(BYTES))]

texts = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from(["\\", '"', "#", "\udc80", "\udcff", "\n"]),
    ),
    max_size=12,
)
keys = st.from_regex(r"[a-z0-9-]{1,10}", fullmatch=True)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
REGEXES = ["", "a", "^/api/", "\\.php$", "(?i)bot", "[0-9]+", "a|b|c", "x{2,4}", "\\d\\w\\s", "(a(b)?)*c"]
WILDCARDS = ["*", "a*", "*.example.com", "a\\*b", "\\\\*x*", "abc"]


def array_value(kind: str) -> st.SearchStrategy[nodes.Value]:
    """Array<Bytes> values: a header or query argument list."""
    return st.builds(
        lambda name, key: nodes.Index(field(name), key, array_of(BYTES), False),
        st.sampled_from(MAP_FIELDS),
        keys,
    )


def bytes_value() -> st.SearchStrategy[nodes.Value]:
    plain = st.sampled_from(BYTES_FIELDS).map(field)
    indexed = st.builds(
        lambda arr, i: nodes.Index(arr, i, BYTES, False),
        array_value("Bytes"),
        st.integers(min_value=0, max_value=5),
    )
    base = st.one_of(plain, indexed)
    cased = st.builds(
        lambda name, v: nodes.Call(name, (v,), BYTES, False), st.sampled_from(["lower", "upper"]), base
    )
    joined = st.builds(lambda a, s: nodes.Call("concat", (a, nodes.StringLit(s)), BYTES, False), base, texts)
    return st.one_of(base, cased, joined)


def int_value() -> st.SearchStrategy[nodes.Value]:
    length = st.builds(lambda v: nodes.Call("len", (v,), INT, False), bytes_value())
    return st.one_of(st.sampled_from(INT_FIELDS).map(field), length)


addresses = st.ip_addresses()


def networks() -> st.SearchStrategy[nodes.IPNetworkLit]:
    def build(address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> nodes.IPNetworkLit:
        bits = 32 if address.version == 4 else 128
        return nodes.IPNetworkLit(ipaddress.ip_network(f"{address}/{min(prefix, bits)}", strict=False))

    return st.builds(build, addresses, st.integers(min_value=0, max_value=128))


def ip_ranges() -> st.SearchStrategy[nodes.IPRangeLit]:
    def build(a: ipaddress.IPv4Address | ipaddress.IPv6Address, span: int) -> nodes.IPRangeLit:
        top = (2**32 if a.version == 4 else 2**128) - 1
        high = ipaddress.ip_address(min(int(a) + span, top))
        if high.version != a.version:
            high = type(a)(min(int(a) + span, top))
        return nodes.IPRangeLit(a, high)

    return st.builds(build, addresses, st.integers(min_value=0, max_value=1000))


def int_items() -> st.SearchStrategy[nodes.SetItem]:
    ranges = st.builds(
        lambda lo, n: nodes.IntRangeLit(lo, min(lo + n, 2**63 - 1)), ints, st.integers(0, 10**6)
    )
    return st.one_of(ints.map(nodes.IntLit), ranges)


ORDERING = ["eq", "ne", "lt", "le", "gt", "ge"]


def conditions() -> st.SearchStrategy[nodes.Expr]:
    on_bytes = st.one_of(
        st.builds(
            nodes.Compare, bytes_value(), st.sampled_from([*ORDERING, "contains"]), texts.map(nodes.StringLit)
        ),
        st.builds(
            nodes.Compare, bytes_value(), st.just("matches"), st.sampled_from(REGEXES).map(nodes.RegexLit)
        ),
        st.builds(
            nodes.Compare,
            bytes_value(),
            st.sampled_from(["wildcard", "strict_wildcard"]),
            st.sampled_from(WILDCARDS).map(nodes.WildcardLit),
        ),
        st.builds(
            nodes.InSet,
            bytes_value(),
            st.lists(texts.map(nodes.StringLit), min_size=1, max_size=4).map(tuple),
        ),
    )
    on_int = st.one_of(
        st.builds(nodes.Compare, int_value(), st.sampled_from(ORDERING), ints.map(nodes.IntLit)),
        st.builds(nodes.InSet, int_value(), st.lists(int_items(), min_size=1, max_size=4).map(tuple)),
    )
    ip_items = st.one_of(addresses.map(nodes.IPLit), networks(), ip_ranges())
    on_ip = st.one_of(
        st.builds(
            nodes.Compare, st.just(field("ip.src")), st.sampled_from(ORDERING), addresses.map(nodes.IPLit)
        ),
        st.builds(
            nodes.InSet, st.just(field("ip.src")), st.lists(ip_items, min_size=1, max_size=4).map(tuple)
        ),
    )
    bool_fields = st.sampled_from(BOOL_FIELDS).map(field)
    on_bool = st.one_of(
        bool_fields.map(nodes.IsTrue),
        st.builds(
            nodes.Compare, bool_fields, st.sampled_from(["eq", "ne"]), st.booleans().map(nodes.BoolLit)
        ),
        st.builds(
            lambda v, s: nodes.IsTrue(nodes.Call("starts_with", (v, nodes.StringLit(s)), BOOL, False)),
            bytes_value(),
            texts,
        ),
    )

    def per_element(fold: str, name: str, key: str, op: str, rhs: str) -> nodes.Expr:
        arr = nodes.Index(field(name), key, array_of(BYTES), False)
        each = nodes.Index(arr, None, BYTES, True)
        return nodes.IsTrue(nodes.Call(fold, (nodes.Compare(each, op, nodes.StringLit(rhs)),), BOOL, False))

    folded = st.builds(
        per_element,
        st.sampled_from(["any", "all"]),
        st.sampled_from(MAP_FIELDS),
        keys,
        st.sampled_from(["eq", "contains", "ne"]),
        texts,
    )
    return st.one_of(on_bytes, on_int, on_ip, on_bool, folded)


def expressions() -> st.SearchStrategy[nodes.Expr]:
    return st.recursive(
        conditions(),
        lambda inner: st.one_of(
            inner.map(nodes.Not),
            st.builds(
                nodes.Combine,
                st.sampled_from(["and", "or", "xor"]),
                st.lists(inner, min_size=2, max_size=4).map(tuple),
            ),
        ),
        max_leaves=12,
    )


@settings(max_examples=250, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions())
def test_random_valid_asts_round_trip_through_text(expr: nodes.Expr) -> None:
    text = expr.to_text()
    parsed = parse(text, EDGE_SCHEME)
    assert parsed.expr == expr
    assert parsed.to_text() == text
    # and they compile and run
    flt = compile_filter(parsed)
    assert flt.execute(EDGE_SCHEME.context_from_values({})) in (True, False)


def test_types_render() -> None:
    assert str(map_of(array_of(BYTES))) == "Map<Array<Bytes>>"
    assert str(Type("IP")) == str(IP) == "IP"
