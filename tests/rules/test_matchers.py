"""Wildcards, interval sets and ASCII case helpers."""

from __future__ import annotations

import fnmatch
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certgate.rules.matchers import IntervalSet, IPSet, Wildcard, WildcardError, ascii_lower, ascii_upper


class TestWildcard:
    @pytest.mark.parametrize(
        ("pattern", "text", "expected"),
        [
            ("*", "", True),
            ("*", "anything", True),
            ("a*", "a", True),
            ("a*", "ba", False),
            ("*.example.com", "api.example.com", True),
            ("*.example.com", "example.com", False),
            ("a*b*c", "abc", True),
            ("a*b*c", "aXbYc", True),
            ("a*b*c", "acb", False),
            ("ab*ba", "aba", False),
            ("ab*ba", "abba", True),
            ("a\\*b", "a*b", True),
            ("a\\*b", "axb", False),
            ("a\\\\*", "a\\zz", True),
            ("", "", True),
            ("", "x", False),
        ],
    )
    def test_match(self, pattern: str, text: str, expected: bool) -> None:
        assert Wildcard(pattern, case_sensitive=True, max_stars=8).match(text) is expected

    def test_case(self) -> None:
        assert Wildcard("*.EXAMPLE.com", case_sensitive=False, max_stars=8).match("A.example.COM")
        assert not Wildcard("*.EXAMPLE.com", case_sensitive=True, max_stars=8).match("a.example.com")
        # Only ASCII letters fold, as in wirefilter.
        assert not Wildcard("É", case_sensitive=False, max_stars=8).match("é")

    @pytest.mark.parametrize(("pattern", "offset"), [("a**", 1), ("a\\b", 1), ("x\\", 1), ("***", 0)])
    def test_invalid(self, pattern: str, offset: int) -> None:
        with pytest.raises(WildcardError) as info:
            Wildcard(pattern, case_sensitive=True, max_stars=8)
        assert info.value.offset == offset

    def test_star_limit(self) -> None:
        Wildcard("*a*", case_sensitive=True, max_stars=2)
        with pytest.raises(WildcardError):
            Wildcard("*a*b*", case_sensitive=True, max_stars=2)

    @settings(max_examples=300, derandomize=True, database=None)
    @given(st.text(alphabet="ab*", max_size=8), st.text(alphabet="ab", max_size=10))
    def test_agrees_with_fnmatch(self, pattern: str, text: str) -> None:
        if "**" in pattern:
            return
        expected = fnmatch.fnmatchcase(text, pattern)
        assert Wildcard(pattern, case_sensitive=True, max_stars=100).match(text) is expected


def test_ascii_case_helpers() -> None:
    assert ascii_lower("ABC-é-É") == "abc-é-É"
    assert ascii_upper("abc-é") == "ABC-é"
    assert ascii_lower("HOST") == "host"


def test_interval_set() -> None:
    s = IntervalSet([(5, 10), (1, 2), (11, 12), (20, 20)])
    assert len(s) == 3  # (1,2) (5,12) (20,20)
    assert [x in s for x in (0, 1, 2, 3, 5, 12, 13, 20, 21)] == [
        False,
        True,
        True,
        False,
        True,
        True,
        False,
        True,
        False,
    ]


def test_ip_set() -> None:
    ip = ipaddress.ip_address
    s = IPSet(
        addresses=[ip("192.0.2.1")],
        networks=[ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")],
        ranges=[(ip("198.51.100.10"), ip("198.51.100.20"))],
    )
    assert ip("192.0.2.1") in s
    assert ip("192.0.2.2") not in s
    assert ip("10.255.255.255") in s
    assert ip("11.0.0.0") not in s
    assert ip("198.51.100.15") in s
    assert ip("2001:db8::1") in s
    # The same integer in the other family is not a member.
    assert ip("::a00:1") not in s
