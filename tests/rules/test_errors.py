"""RuleParseError: fields, rendering and the API dict."""

from __future__ import annotations

from certgate.rules import ErrorKind, RuleError, RuleParseError


def test_fields_and_rendering() -> None:
    err = RuleParseError("bad", 2, 5, "unknown_field", length=3, source_line="abcdefgh")
    assert isinstance(err, RuleError)
    assert (err.message, err.line, err.column, err.kind) == ("bad", 2, 5, ErrorKind.UNKNOWN_FIELD)
    assert str(err) == "line 2, column 5: bad\n  abcdefgh\n      ^^^"
    assert err.to_dict() == {
        "kind": "unknown_field",
        "message": "bad",
        "line": 2,
        "column": 5,
        "length": 3,
        "rendered": str(err),
    }
    assert "kind='unknown_field'" in repr(err)


def test_kind_is_a_plain_string_too() -> None:
    assert RuleParseError("x", 1, 1, ErrorKind.TOO_LONG).kind == "too_long"
