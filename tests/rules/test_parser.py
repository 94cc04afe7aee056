"""Parser errors (every kind, exact positions), limits, and fuzzing with Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certgate.rules import EDGE_SCHEME, ErrorKind, ParserSettings, RuleParseError, compile_filter, parse

NA = "tls.client_auth.cert_not_after"  # 30 characters: its literal starts at column 35 after " eq "

# (expression, settings or None, kind, line, column)
ERRORS: list[tuple[str, ParserSettings | None, ErrorKind, int, int]] = [
    ('http.host eq "abcdefghij"', ParserSettings(max_expression_bytes=20), ErrorKind.TOO_LONG, 1, 21),
    ('ssl or\nhttp.host eq "ééééé"', ParserSettings(max_expression_bytes=24), ErrorKind.TOO_LONG, 2, 16),
    ("(((ssl)))", ParserSettings(max_nesting_depth=2), ErrorKind.TOO_DEEP, 1, 3),
    ("not not not ssl", ParserSettings(max_nesting_depth=2), ErrorKind.TOO_DEEP, 1, 9),
    ('lower(lower(http.host)) eq "a"', ParserSettings(max_nesting_depth=1), ErrorKind.TOO_DEEP, 1, 7),
    ("(" * 33 + "ssl" + ")" * 33, None, ErrorKind.TOO_DEEP, 1, 33),
    ('http.host = "a"', None, ErrorKind.UNEXPECTED_CHARACTER, 1, 11),
    ("ssl & ssl", None, ErrorKind.UNEXPECTED_CHARACTER, 1, 5),
    ("http.host eq 'a'", None, ErrorKind.UNEXPECTED_CHARACTER, 1, 14),
    ("ssl\u00a0", None, ErrorKind.UNEXPECTED_CHARACTER, 1, 4),
    ("ssl or \ud800", None, ErrorKind.UNEXPECTED_CHARACTER, 1, 8),
    ('http.host eq "abc', None, ErrorKind.UNTERMINATED_STRING, 1, 14),
    ('http.host eq "abc\\"', None, ErrorKind.UNTERMINATED_STRING, 1, 14),
    ('http.host eq r#"abc"', None, ErrorKind.UNTERMINATED_STRING, 1, 14),
    ('http.host eq "a\\nb"', None, ErrorKind.INVALID_ESCAPE, 1, 16),
    ('http.host eq "a\\x4"', None, ErrorKind.INVALID_ESCAPE, 1, 16),
    ('http.host eq "\\400"', None, ErrorKind.INVALID_ESCAPE, 1, 15),
    (f"{NA} eq 12ab", None, ErrorKind.INVALID_NUMBER, 1, 35),
    (f"{NA} eq 012", None, ErrorKind.INVALID_NUMBER, 1, 35),
    (f"{NA} eq 9223372036854775808", None, ErrorKind.INVALID_NUMBER, 1, 35),
    (f"{NA} in {{1..2x}}", None, ErrorKind.INVALID_NUMBER, 1, 39),
    ("ip.src eq 10.0.0.256", None, ErrorKind.INVALID_IP, 1, 11),
    ("ip.src eq 10.0.0.0/8", None, ErrorKind.INVALID_IP, 1, 11),
    ("ip.src in {10.0.0.1/8}", None, ErrorKind.INVALID_IP, 1, 12),
    ("ip.src in {10.0.0.0/33}", None, ErrorKind.INVALID_IP, 1, 12),
    ("ip.src in {fe80::1%eth0}", None, ErrorKind.INVALID_IP, 1, 12),
    ("ip.src eq 1.2.3.4..1.2.3.5", None, ErrorKind.INVALID_IP, 1, 11),
    ("ip.src in {10.0.0.9..10.0.0.1}", None, ErrorKind.INVALID_RANGE, 1, 12),
    ("ip.src in {10.0.0.1..::1}", None, ErrorKind.INVALID_RANGE, 1, 12),
    (f"{NA} in {{9..1}}", None, ErrorKind.INVALID_RANGE, 1, 36),
    ('http.host eq "a" "b"', None, ErrorKind.UNEXPECTED_TOKEN, 1, 18),
    ('http.host eq "a")', None, ErrorKind.UNEXPECTED_TOKEN, 1, 17),
    ('"a" eq http.host', None, ErrorKind.UNEXPECTED_TOKEN, 1, 1),
    ('http.host in {"a", "b"}', None, ErrorKind.UNEXPECTED_TOKEN, 1, 18),
    ('http.host in "a"', None, ErrorKind.UNEXPECTED_TOKEN, 1, 14),
    ("ip.src eq localhost", None, ErrorKind.UNEXPECTED_TOKEN, 1, 11),
    ('http.host strict "a"', None, ErrorKind.UNEXPECTED_TOKEN, 1, 18),
    ("ssl and and ssl", None, ErrorKind.UNEXPECTED_TOKEN, 1, 9),
    ("ssl ssl", None, ErrorKind.UNEXPECTED_TOKEN, 1, 5),
    ("http.host", None, ErrorKind.UNEXPECTED_END, 1, 10),
    ("http.host eq", None, ErrorKind.UNEXPECTED_END, 1, 13),
    ("", None, ErrorKind.UNEXPECTED_END, 1, 1),
    ("  \n  ", None, ErrorKind.UNEXPECTED_END, 2, 3),
    ("(ssl", None, ErrorKind.UNEXPECTED_END, 1, 5),
    ('http.host in {"a"', None, ErrorKind.UNEXPECTED_END, 1, 18),
    ("lower(http.host", None, ErrorKind.UNEXPECTED_END, 1, 16),
    ("ssl and", None, ErrorKind.UNEXPECTED_END, 1, 8),
    ('http.hostname eq "a"', None, ErrorKind.UNKNOWN_FIELD, 1, 1),
    ("ssl and\n  foo.bar", None, ErrorKind.UNKNOWN_FIELD, 2, 3),
    ("cf.tls_client_auth.cert_unknown", None, ErrorKind.UNKNOWN_FIELD, 1, 1),
    ('trim(http.host) eq "a"', None, ErrorKind.UNKNOWN_FUNCTION, 1, 1),
    ('ip.src contains "1"', None, ErrorKind.UNSUPPORTED_OPERATOR, 1, 8),
    ('http.request.headers eq "a"', None, ErrorKind.UNSUPPORTED_OPERATOR, 1, 1),
    ("http.request.headers", None, ErrorKind.UNSUPPORTED_OPERATOR, 1, 1),
    ("ssl lt true", None, ErrorKind.UNSUPPORTED_OPERATOR, 1, 5),
    (f'{NA} matches "1"', None, ErrorKind.UNSUPPORTED_OPERATOR, 1, 32),
    ("http.host eq 5", None, ErrorKind.TYPE_MISMATCH, 1, 14),
    ('ip.src eq "1.2.3.4"', None, ErrorKind.TYPE_MISMATCH, 1, 11),
    (f'{NA} eq "5"', None, ErrorKind.TYPE_MISMATCH, 1, 35),
    ('ssl eq "true"', None, ErrorKind.TYPE_MISMATCH, 1, 8),
    (f"{NA} eq true", None, ErrorKind.TYPE_MISMATCH, 1, 35),
    ('lower(ip.src) eq "a"', None, ErrorKind.TYPE_MISMATCH, 1, 7),
    ("starts_with(http.host, http.host)", None, ErrorKind.TYPE_MISMATCH, 1, 24),
    ('any(http.host eq "a")', None, ErrorKind.TYPE_MISMATCH, 1, 5),
    ('concat(http.host, 1) eq "a"', None, ErrorKind.TYPE_MISMATCH, 1, 19),
    ('http.request.headers["accept"][*] eq "a"', None, ErrorKind.NOT_BOOLEAN, 1, 1),
    ('ssl and http.request.headers["accept"][*] eq "a"', None, ErrorKind.NOT_BOOLEAN, 1, 9),
    ('not http.request.headers["accept"][*] eq "a"', None, ErrorKind.NOT_BOOLEAN, 1, 5),
    ('http.host[0] eq "a"', None, ErrorKind.INVALID_INDEX, 1, 10),
    ('http.request.headers[0][0] eq "a"', None, ErrorKind.INVALID_INDEX, 1, 21),
    ('http.request.headers["Accept"][0] eq "a"', None, ErrorKind.INVALID_INDEX, 1, 21),
    ('any(http.request.headers[*][*] eq "a")', None, ErrorKind.INVALID_INDEX, 1, 28),
    ('http.request.headers["a"]["b"] eq "x"', None, ErrorKind.INVALID_INDEX, 1, 26),
    ('http.request.headers["a"][-1] eq "x"', None, ErrorKind.INVALID_INDEX, 1, 27),
    ('lower() eq "a"', None, ErrorKind.WRONG_ARGUMENT_COUNT, 1, 1),
    ("starts_with(http.host)", None, ErrorKind.WRONG_ARGUMENT_COUNT, 1, 1),
    ("ssl and concat(http.host) eq 1", None, ErrorKind.WRONG_ARGUMENT_COUNT, 1, 9),
    ("http.host in {}", None, ErrorKind.EMPTY_SET, 1, 14),
    ("ip.src in { }", None, ErrorKind.EMPTY_SET, 1, 11),
    ('http.host in {"a" "b" "c"}', ParserSettings(max_set_size=2), ErrorKind.SET_TOO_LARGE, 1, 23),
    ('http.host matches "a("', None, ErrorKind.INVALID_REGEX, 1, 21),
    ('http.host matches r"(a)\\1"', None, ErrorKind.INVALID_REGEX, 1, 19),
    ('http.host matches "\\\\bword"', None, ErrorKind.INVALID_REGEX, 1, 19),
    ('http.host matches "(?m)^a"', None, ErrorKind.INVALID_REGEX, 1, 19),
    ('http.host matches "abcde"', ParserSettings(max_regex_bytes=4), ErrorKind.REGEX_TOO_LARGE, 1, 19),
    ('http.host matches "(a|b)*a(a|b){12}"', None, ErrorKind.REGEX_TOO_COMPLEX, 1, 19),
    ('http.host matches "a{5000}"', None, ErrorKind.REGEX_TOO_COMPLEX, 1, 19),
    ('http.host wildcard "a**b"', None, ErrorKind.INVALID_WILDCARD, 1, 22),
    ('http.host wildcard "a\\\\b"', None, ErrorKind.INVALID_WILDCARD, 1, 20),
    ('http.host wildcard "*a*b*"', ParserSettings(max_wildcard_stars=2), ErrorKind.INVALID_WILDCARD, 1, 25),
]


def test_every_error_kind_is_covered() -> None:
    assert {kind for _, _, kind, _, _ in ERRORS} == set(ErrorKind)


@pytest.mark.parametrize(
    ("text", "limits", "kind", "line", "column"), ERRORS, ids=[e[0][:50] for e in ERRORS]
)
def test_error_position(
    text: str, limits: ParserSettings | None, kind: ErrorKind, line: int, column: int
) -> None:
    with pytest.raises(RuleParseError) as info:
        parse(text, EDGE_SCHEME, settings=limits)
    err = info.value
    assert (err.kind, err.line, err.column) == (kind, line, column), err.render()
    assert err.message
    rendered = str(err)
    assert rendered.startswith(f"line {line}, column {column}: ")
    assert err.to_dict()["kind"] == kind.value


def test_caret_rendering_underlines_the_token() -> None:
    with pytest.raises(RuleParseError) as info:
        parse('ssl and\n\thttp.hots eq "a"')
    assert str(info.value) == (
        "line 2, column 2: unknown field `http.hots`: did you mean `http.host`?\n"
        '  \thttp.hots eq "a"\n'
        "  \t^^^^^^^^^"
    )


def test_caret_at_the_end_of_input() -> None:
    with pytest.raises(RuleParseError) as info:
        parse("http.host eq")
    assert str(info.value).splitlines()[-1] == "  " + " " * 12 + "^"


def test_default_limits_are_the_documented_ones() -> None:
    limits = ParserSettings()
    assert limits.max_expression_bytes == 4096
    assert limits.max_nesting_depth == 32
    # 4096 bytes exactly is fine, one more is not.
    body = 'http.host eq "' + "a" * (4096 - len('http.host eq ""')) + '"'
    assert len(body) == 4096
    parse(body)
    with pytest.raises(RuleParseError) as info:
        parse(body + " ")
    assert info.value.kind == ErrorKind.TOO_LONG
    parse("(" * 32 + "ssl" + ")" * 32)


def test_nesting_cannot_exhaust_the_python_stack() -> None:
    deep = ParserSettings(max_nesting_depth=100_000, max_expression_bytes=1_000_000)
    with pytest.raises(RuleParseError) as info:
        parse("not " * 50_000 + "ssl", settings=deep)
    assert info.value.kind == ErrorKind.TOO_DEEP


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_set_size"):
        ParserSettings(max_set_size=0)


def test_regex_error_points_inside_a_raw_pattern() -> None:
    with pytest.raises(RuleParseError) as info:
        parse('http.host matches r"ab[c"')
    assert (info.value.kind, info.value.column) == (ErrorKind.INVALID_REGEX, 23)


# -- fuzzing ---------------------------------------------------------------------------------------

VOCABULARY = [
    *("and", "or", "xor", "not", "&&", "||", "^^", "!", "(", ")", "{", "}", "[", "]", ",", "*", ".."),
    *("eq", "ne", "lt", "le", "gt", "ge", "==", "!=", "<", "<=", ">", ">=", "~", "in"),
    *("contains", "matches", "wildcard", "strict", "true", "false"),
    *("lower", "upper", "len", "starts_with", "ends_with", "any", "all", "concat", "nosuch"),
    *("http.host", "ip.src", "ssl", "http.request.headers", "cf.tls_client_auth.cert_verified"),
    *("tls.client_auth.cert_not_after", "http.request.uri.args", "http.user_agent", "x.y"),
    *('"a"', '"a\\x41"', 'r"\\d+"', 'r#"x"#', '"*.com"', '"(a|b)*c"', '"((("', '"a**"', '"'),
    *("0", "1", "-5", "0x1F", "1..5", "99999999999999999999", "1.2.3.4", "10.0.0.0/8", "::1"),
    *("2001:db8::/32", "1.2.3.4..1.2.3.9", "=", "&", "'", "$list", "\\", "é", "\n", "\t"),
]


def _check_parse(text: str) -> None:
    try:
        filter_ast = parse(text, EDGE_SCHEME)
    except RuleParseError as err:
        assert err.line >= 1 and err.column >= 1
        assert str(err)
        return
    # Whatever parses also compiles, runs on an empty context, and round-trips.
    flt = compile_filter(filter_ast)
    assert flt.execute(EDGE_SCHEME.context_from_values({})) in (True, False)
    assert parse(filter_ast.to_text(), EDGE_SCHEME).expr == filter_ast.expr


@settings(max_examples=400, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(VOCABULARY), max_size=14),
    st.lists(st.sampled_from([" ", "", "\n", "  "]), min_size=14, max_size=14),
)
def test_random_token_streams_only_raise_rule_parse_errors(tokens: list[str], gaps: list[str]) -> None:
    text = "".join(token + gap for token, gap in zip(tokens, gaps, strict=False))
    _check_parse(text)


@settings(max_examples=300, derandomize=True, database=None)
@given(st.text(max_size=60))
def test_random_text_only_raises_rule_parse_errors(text: str) -> None:
    _check_parse(text)
