"""Lexing primitives: tokens, string escapes, typed literals, positions."""

from __future__ import annotations

import ipaddress

import pytest

from certgate.rules.errors import ErrorKind, RuleParseError
from certgate.rules.lexer import Scanner, TokenKind


def tokens(text: str) -> list[tuple[TokenKind, str]]:
    sc = Scanner(text)
    out = []
    while True:
        token = sc.next()
        out.append((token.kind, token.text))
        if token.kind is TokenKind.EOF:
            return out


def test_tokens() -> None:
    assert tokens('a.b_c1 == "x" && !(y) <= 12') == [
        (TokenKind.IDENT, "a.b_c1"),
        (TokenKind.PUNCT, "=="),
        (TokenKind.STRING, '"x"'),
        (TokenKind.PUNCT, "&&"),
        (TokenKind.PUNCT, "!"),
        (TokenKind.PUNCT, "("),
        (TokenKind.IDENT, "y"),
        (TokenKind.PUNCT, ")"),
        (TokenKind.PUNCT, "<="),
        (TokenKind.NUMBER, "12"),
        (TokenKind.EOF, ""),
    ]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"plain"', "plain"),
        ('"q\\"b\\\\"', 'q"b\\'),
        ('"\\x41\\x7a"', "Az"),
        ('"\\101"', "A"),
        ('"\\xC3\\xA9"', "é"),
        ('"\\xFF"', "\udcff"),
        ('"é\n"', "é\n"),
        ('r"a\\d"', "a\\d"),
        ('r#"say "hi""#', 'say "hi"'),
        ('r##"a"#b"##', 'a"#b'),
        ('r""', ""),
    ],
)
def test_strings(literal: str, value: str) -> None:
    token = Scanner(literal).next()
    assert token.kind is TokenKind.STRING
    assert token.value == value
    assert token.end == len(literal)


def test_raw_string_hash_limit() -> None:
    with pytest.raises(RuleParseError):
        Scanner("r" + "#" * 256 + '"a"' + "#" * 256).next()


@pytest.mark.parametrize(
    ("text", "low", "high", "is_range"),
    [
        ("0", 0, 0, False),
        ("-12", -12, -12, False),
        ("0x1f", 31, 31, False),
        ("-0x10", -16, -16, False),
        ("1..5", 1, 5, True),
    ],
)
def test_ints(text: str, low: int, high: int, is_range: bool) -> None:
    literal, start, end = Scanner(text).read_int(allow_range=True)
    assert (literal.low, literal.high, literal.is_range, start, end) == (low, high, is_range, 0, len(text))


def test_ips() -> None:
    ip = ipaddress.ip_address
    assert Scanner(" ::1").read_ip(allow_set_forms=False)[0].address == ip("::1")
    assert Scanner("fe80::1:2").read_ip(allow_set_forms=False)[0].address == ip("fe80::1:2")
    net = Scanner("10.0.0.0/8").read_ip(allow_set_forms=True)[0].network
    assert net == ipaddress.ip_network("10.0.0.0/8")
    rng = Scanner("::1..::9").read_ip(allow_set_forms=True)[0]
    assert (rng.low, rng.high) == (ip("::1"), ip("::9"))
    with pytest.raises(RuleParseError) as info:
        Scanner("1.2.3.4/255.0.0.0").read_ip(allow_set_forms=True)
    assert info.value.kind == ErrorKind.INVALID_IP


def test_location_counts_lines_and_characters() -> None:
    sc = Scanner("ab\ncdé\r\nf")
    assert sc.location(0) == (1, 1, "ab")
    assert sc.location(5) == (2, 3, "cdé")
    assert sc.location(8) == (3, 1, "f")
