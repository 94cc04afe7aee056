"""Errors of the rule language.

``rules`` depends on nothing in certgate, so its root ``RuleError`` derives from ``Exception``;
the API and the edge translate it at their boundary. ``RuleParseError`` is what rule authors
see: a stable ``kind``, a 1-based ``line``/``column`` and a caret rendering (``str(err)``).
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorKind(enum.StrEnum):
    """Every way an expression can be refused. The values are stable API strings."""

    TOO_LONG = "too_long"
    TOO_DEEP = "too_deep"
    UNEXPECTED_CHARACTER = "unexpected_character"
    UNTERMINATED_STRING = "unterminated_string"
    INVALID_ESCAPE = "invalid_escape"
    INVALID_NUMBER = "invalid_number"
    INVALID_IP = "invalid_ip"
    INVALID_RANGE = "invalid_range"
    UNEXPECTED_TOKEN = "unexpected_token"
    UNEXPECTED_END = "unexpected_end"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_FUNCTION = "unknown_function"
    UNSUPPORTED_OPERATOR = "unsupported_operator"
    TYPE_MISMATCH = "type_mismatch"
    NOT_BOOLEAN = "not_boolean"
    INVALID_INDEX = "invalid_index"
    WRONG_ARGUMENT_COUNT = "wrong_argument_count"
    EMPTY_SET = "empty_set"
    SET_TOO_LARGE = "set_too_large"
    INVALID_REGEX = "invalid_regex"
    REGEX_TOO_LARGE = "regex_too_large"
    REGEX_TOO_COMPLEX = "regex_too_complex"
    INVALID_WILDCARD = "invalid_wildcard"


class RuleError(Exception):
    """Root of the errors this package raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SchemeError(RuleError):
    """A scheme was declared wrongly (redefined field, bad name, builder reused)."""


class FieldValueError(RuleError, TypeError):
    """A context's getter returned a value of the wrong type for its field."""


class SchemeMismatchError(RuleError):
    """A filter was executed against a context made from another scheme."""


class RuleParseError(RuleError):
    """An expression does not parse or does not type-check.

    ``line`` and ``column`` are 1-based and count characters (code points); ``length`` is how
    many characters the caret underlines. ``str()`` renders the message, the offending line and
    a caret under the problem, the way the console and the API show it.
    """

    def __init__(
        self,
        message: str,
        line: int,
        column: int,
        kind: ErrorKind | str,
        *,
        length: int = 1,
        source_line: str = "",
    ) -> None:
        self.line = line
        self.column = column
        self.kind = ErrorKind(kind)
        self.length = max(1, length)
        self.source_line = source_line
        super().__init__(message)

    def render(self) -> str:
        head = f"line {self.line}, column {self.column}: {self.message}"
        if not self.source_line and self.column <= 1:
            return head
        # Keep tabs in the padding so the caret lines up under tab-indented text.
        pad = "".join("\t" if ch == "\t" else " " for ch in self.source_line[: self.column - 1])
        available = max(1, len(self.source_line) - (self.column - 1))
        carets = "^" * min(self.length, available)
        return f"{head}\n  {self.source_line}\n  {pad}{carets}"

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return (
            f"RuleParseError({self.message!r}, line={self.line}, column={self.column}, "
            f"kind={self.kind.value!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the API and console use."""
        return {
            "kind": self.kind.value,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "length": self.length,
            "rendered": self.render(),
        }
