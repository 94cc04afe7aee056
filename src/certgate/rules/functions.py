"""The built-in functions: their signatures (checked at parse time) and run-time helpers.

A function applied to a ``[*]`` value maps over its elements (``lower(x[*])`` is one lowered
string per element), as in wirefilter; ``any()``/``all()`` fold such per-element booleans into
one. Missing inputs (``None``) give missing outputs, so comparisons on them are false.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from certgate.rules.errors import ErrorKind
from certgate.rules.types import BOOL, BYTES, INT, Type


@dataclass(frozen=True, slots=True)
class ArgInfo:
    """What the type checker knows about one argument."""

    kind: str  # "value" (a field/index/call), "string" or "int" literal, "expr" (a comparison)
    type: Type
    each: bool


class ArgumentError(Exception):
    """A call does not fit the signature; ``index`` is the offending argument (None: the call)."""

    def __init__(self, kind: ErrorKind, message: str, index: int | None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.index = index


Check = Callable[[Sequence[ArgInfo]], tuple[Type, bool]]


@dataclass(frozen=True, slots=True)
class FunctionDef:
    name: str
    signature: str
    summary: str
    check: Check


def _arity(name: str, args: Sequence[ArgInfo], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        want = str(low) if low == high else (f"at least {low}" if high > 99 else f"{low} to {high}")
        plural = "" if want == "1" else "s"
        raise ArgumentError(
            ErrorKind.WRONG_ARGUMENT_COUNT,
            f"{name}() takes {want} argument{plural}, got {len(args)}",
            None,
        )


def _want_value(name: str, args: Sequence[ArgInfo], i: int, allowed: tuple[str, ...]) -> ArgInfo:
    arg = args[i]
    if arg.kind != "value" or arg.type.kind not in allowed:
        what = " or ".join(allowed)
        got = {"string": "a string literal", "int": "an integer literal", "expr": "a condition"}.get(
            arg.kind, f"a {arg.type} value"
        )
        raise ArgumentError(
            ErrorKind.TYPE_MISMATCH,
            f"argument {i + 1} of {name}() must be a {what} field or function, got {got}",
            i,
        )
    return arg


def _case(name: str) -> Check:
    def check(args: Sequence[ArgInfo]) -> tuple[Type, bool]:
        _arity(name, args, 1)
        arg = _want_value(name, args, 0, ("Bytes",))
        return BYTES, arg.each

    return check


def _len(args: Sequence[ArgInfo]) -> tuple[Type, bool]:
    _arity("len", args, 1)
    arg = _want_value("len", args, 0, ("Bytes", "Array", "Map"))
    return INT, arg.each


def _affix(name: str) -> Check:
    def check(args: Sequence[ArgInfo]) -> tuple[Type, bool]:
        _arity(name, args, 2)
        arg = _want_value(name, args, 0, ("Bytes",))
        if args[1].kind != "string":
            raise ArgumentError(
                ErrorKind.TYPE_MISMATCH, f"argument 2 of {name}() must be a string literal", 1
            )
        return BOOL, arg.each

    return check


def _fold(name: str) -> Check:
    def check(args: Sequence[ArgInfo]) -> tuple[Type, bool]:
        _arity(name, args, 1)
        arg = args[0]
        per_element = arg.each and arg.type == BOOL and arg.kind in ("value", "expr")
        bool_array = (
            not arg.each and arg.kind == "value" and arg.type.kind == "Array" and arg.type.element == BOOL
        )
        if not (per_element or bool_array):
            raise ArgumentError(
                ErrorKind.TYPE_MISMATCH,
                f'{name}() takes a comparison over [*] (e.g. {name}(http.request.headers["accept"][*] '
                'contains "json")) or an Array<Bool>',
                0,
            )
        return BOOL, False

    return check


def _concat(args: Sequence[ArgInfo]) -> tuple[Type, bool]:
    _arity("concat", args, 2, 1000)
    for i, arg in enumerate(args):
        if arg.each:
            raise ArgumentError(ErrorKind.TYPE_MISMATCH, "concat() does not take [*] values", i)
    first = args[0]
    if first.kind == "value" and first.type.kind == "Array":
        for i, arg in enumerate(args):
            if arg.kind != "value" or arg.type != first.type:
                raise ArgumentError(
                    ErrorKind.TYPE_MISMATCH, f"argument {i + 1} of concat() must be a {first.type}", i
                )
        return first.type, False
    for i, arg in enumerate(args):
        if arg.type != BYTES or arg.kind not in ("value", "string"):
            raise ArgumentError(
                ErrorKind.TYPE_MISMATCH,
                f"argument {i + 1} of concat() must be Bytes (a field, a function or a string literal)",
                i,
            )
    return BYTES, False


BUILTIN_FUNCTIONS: dict[str, FunctionDef] = {
    f.name: f
    for f in (
        FunctionDef("lower", "lower(Bytes) -> Bytes", "ASCII letters to lowercase.", _case("lower")),
        FunctionDef("upper", "upper(Bytes) -> Bytes", "ASCII letters to uppercase.", _case("upper")),
        FunctionDef(
            "len",
            "len(Bytes | Array | Map) -> Int",
            "Length: UTF-8 bytes of a string, elements of an array or map.",
            _len,
        ),
        FunctionDef(
            "starts_with",
            'starts_with(Bytes, "literal") -> Bool',
            "The value begins with the literal (case-sensitive).",
            _affix("starts_with"),
        ),
        FunctionDef(
            "ends_with",
            'ends_with(Bytes, "literal") -> Bool',
            "The value ends with the literal (case-sensitive).",
            _affix("ends_with"),
        ),
        FunctionDef(
            "any",
            "any(condition over [*] | Array<Bool>) -> Bool",
            "True if the condition holds for at least one element (false for a missing value).",
            _fold("any"),
        ),
        FunctionDef(
            "all",
            "all(condition over [*] | Array<Bool>) -> Bool",
            "True if the condition holds for every element (true for an empty array, false for a "
            "missing value).",
            _fold("all"),
        ),
        FunctionDef(
            "concat",
            "concat(Bytes, Bytes, ...) -> Bytes; concat(Array<T>, Array<T>, ...) -> Array<T>",
            "Joins strings, or arrays of the same type.",
            _concat,
        ),
    )
}


def utf8_len(text: str) -> int:
    """Length in UTF-8 bytes (raw bytes carried by surrogateescape count one each)."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate outside the escape range: 3 bytes, as CESU
        return len(text.encode("utf-8", "surrogatepass"))
