"""The rule language: a Cloudflare/ESA wirefilter dialect, typed at parse time, compiled once.

    ast = parse(text, EDGE_SCHEME)            # RuleParseError(line, column, kind) with a caret
    flt = compile_filter(ast)                 # flt.fields: canonical field names it reads
    ctx = EDGE_SCHEME.context(getter)         # getter(name) runs lazily, once per field
    flt.execute(ctx)                          # -> bool
    rules = compile_filters([ast1, ast2, ...])  # many filters in one function (the edge's list)
    rules.first_match(ctx, start=0)           # -> index of the first match at/after start, or -1

A value the getter returns as ``None`` is *missing*: every comparison on it is false (also
``ne``), ``not`` of such a comparison is true, and ``any``/``all`` over it are false.

Pure: imports only the standard library. Used by the control plane (validation) and the edge.
"""

from __future__ import annotations

from certgate.rules.ast import FilterAST
from certgate.rules.compiler import Filter, FilterSet, compile_filter, compile_filters
from certgate.rules.context import ExecutionContext
from certgate.rules.edge_scheme import EDGE_SCHEME, build_edge_scheme
from certgate.rules.errors import (
    ErrorKind,
    FieldValueError,
    RuleError,
    RuleParseError,
    SchemeError,
    SchemeMismatchError,
)
from certgate.rules.parser import parse as _parse
from certgate.rules.scheme import FieldDef, Scheme, SchemeBuilder
from certgate.rules.settings import ParserSettings
from certgate.rules.types import BOOL, BYTES, INT, IP, Type, array_of, map_of


def parse(text: str, scheme: Scheme = EDGE_SCHEME, settings: ParserSettings | None = None) -> FilterAST:
    """Parse and type-check ``text``; raise ``RuleParseError``."""
    return _parse(text, scheme, settings)


def validate(text: str, scheme: Scheme = EDGE_SCHEME, *, settings: ParserSettings | None = None) -> None:
    """Raise ``RuleParseError`` unless ``text`` parses (the control plane's check)."""
    _parse(text, scheme, settings)


__all__ = [
    "BOOL",
    "BYTES",
    "EDGE_SCHEME",
    "INT",
    "IP",
    "ErrorKind",
    "ExecutionContext",
    "FieldDef",
    "FieldValueError",
    "Filter",
    "FilterAST",
    "FilterSet",
    "ParserSettings",
    "RuleError",
    "RuleParseError",
    "Scheme",
    "SchemeBuilder",
    "SchemeError",
    "SchemeMismatchError",
    "Type",
    "array_of",
    "build_edge_scheme",
    "compile_filter",
    "compile_filters",
    "map_of",
    "parse",
    "validate",
]
