"""Function signatures and helpers."""

from __future__ import annotations

import pytest

from certgate.rules import EDGE_SCHEME, ErrorKind
from certgate.rules.functions import BUILTIN_FUNCTIONS, utf8_len


def test_the_issue_lists_these_functions() -> None:
    assert set(BUILTIN_FUNCTIONS) == {
        "lower",
        "upper",
        "len",
        "starts_with",
        "ends_with",
        "any",
        "all",
        "concat",
    }
    assert EDGE_SCHEME.functions.keys() == BUILTIN_FUNCTIONS.keys()


@pytest.mark.parametrize(("text", "length"), [("", 0), ("abc", 3), ("é", 2), ("\udcff", 1), ("\ud800", 3)])
def test_utf8_len(text: str, length: int) -> None:
    assert utf8_len(text) == length


def test_error_kinds_are_stable_strings() -> None:
    assert ErrorKind("type_mismatch") is ErrorKind.TYPE_MISMATCH
