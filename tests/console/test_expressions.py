"""The mTLS rule expression and the caret view of parse errors (pure)."""

from __future__ import annotations

import pytest

from certgate.console.expressions import error_excerpt, mtls_rule_expression, split_hostnames


def test_the_seeds_rule_for_one_hostname() -> None:
    assert (
        mtls_rule_expression(["api.example.com"])
        == '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'
    )


def test_several_hostnames_use_a_set() -> None:
    assert (
        mtls_rule_expression(["h1.example.com", "h2.example.com"])
        == '(http.host in {"h1.example.com" "h2.example.com"} and not tls.client_auth.cert_verified)'
    )


def test_without_hostname_every_request_is_matched() -> None:
    assert mtls_rule_expression([]) == "(not tls.client_auth.cert_verified)"


def test_matching_verified_requests_is_the_non_default_choice() -> None:
    assert mtls_rule_expression([], match_verified=True) == "(tls.client_auth.cert_verified)"
    assert (
        mtls_rule_expression(["a.example.com"], match_verified=True)
        == '(http.host eq "a.example.com" and tls.client_auth.cert_verified)'
    )


@pytest.mark.parametrize("bad", ['a".example.com', "A.example.com", "*.example.com", "a b", ""])
def test_unnormalised_names_never_reach_a_string_literal(bad: str) -> None:
    with pytest.raises(ValueError, match="not normalised"):
        mtls_rule_expression([bad])


def test_split_hostnames_accepts_spaces_commas_and_new_lines() -> None:
    assert split_hostnames(" a.example.com, b.example.com\nc.example.com\t ") == [
        "a.example.com",
        "b.example.com",
        "c.example.com",
    ]
    assert split_hostnames(" \n ,") == []


def test_caret_points_at_the_column() -> None:
    excerpt = error_excerpt('http.host eq "a" and foo', 1, 22)
    assert excerpt.source_line == 'http.host eq "a" and foo'
    assert excerpt.caret_line == " " * 21 + "^"
    assert (excerpt.line, excerpt.column) == (1, 22)


def test_caret_on_a_later_line_keeps_tabs_aligned() -> None:
    excerpt = error_excerpt('http.host eq "a"\n\tand\tbar', 2, 6)
    assert excerpt.source_line == "\tand\tbar"
    assert excerpt.caret_line == "\t   \t^"


def test_end_of_input_points_just_after_the_last_character() -> None:
    excerpt = error_excerpt("(http.host eq", 1, 14)
    assert excerpt.caret_line == " " * 13 + "^"


def test_positions_out_of_range_are_clamped() -> None:
    assert error_excerpt("abc", 9, 99) == error_excerpt("abc", 1, 4)
    assert error_excerpt("abc", 0, 0).caret_line == "^"
    assert error_excerpt("", 1, 1).caret_line == "^"


def test_windows_line_endings_do_not_shift_the_caret() -> None:
    excerpt = error_excerpt("a eq 1\r\nb eq", 2, 5)
    assert excerpt.source_line == "b eq"
    assert excerpt.caret_line == "    ^"


def test_a_token_is_underlined_whole_but_never_past_the_line() -> None:
    assert error_excerpt("a and foo.bar", 1, 7, 7).caret_line == "      ^^^^^^^"
    assert error_excerpt("a and foo", 1, 7, 40).caret_line == "      ^^^"
    assert error_excerpt("a and", 1, 6, 3).caret_line == "     ^"
