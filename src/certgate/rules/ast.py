"""The typed AST: frozen dataclasses, a JSON form (for storage, debugging and tests) and a
canonical text form (``to_text``) that parses back to an equal AST.

Two families, as in wirefilter: *expressions* are boolean (``Combine``, ``Not``, ``IsTrue``,
``Compare``, ``InSet``); *values* are what a comparison's left-hand side reads (``Field``,
``Index``, ``Call``). A value carries its type and whether it maps over ``[*]`` (``each``):
such a value stands for one result per element and only ``any()``/``all()`` may consume it.
Aliases (``cf.tls_client_auth.*``) are resolved by the parser, so ``Field.name`` is canonical.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from certgate.rules.types import BOOL, IPAddress, Type, array_of

if TYPE_CHECKING:
    from certgate.rules.scheme import Scheme

# -- literals -------------------------------------------------------------------------------------


def quote_string(value: str) -> str:
    """The shortest faithful literal for ``value``: plain quotes, else a raw string, else escapes."""
    printable = all(_plain_char(ch) for ch in value)
    if printable and '"' not in value and "\\" not in value:
        return f'"{value}"'
    if printable:
        hashes = 0
        while '"' + "#" * hashes in value:
            hashes += 1
        marks = "#" * hashes
        return f'r{marks}"{value}"{marks}'
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _plain_char(ch):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return '"' + "".join(out) + '"'


def _plain_char(ch: str) -> bool:
    # Control characters, separators other than space, and lone surrogates (raw bytes carried
    # by surrogateescape) are written as \xHH so the text form stays on one visible line.
    if ch == " ":
        return True
    return unicodedata.category(ch)[0] not in "CZ"


@dataclass(frozen=True, slots=True)
class StringLit:
    value: str

    def to_json(self) -> Any:
        return self.value

    def to_text(self) -> str:
        return quote_string(self.value)


@dataclass(frozen=True, slots=True)
class IntLit:
    value: int

    def to_json(self) -> Any:
        return self.value

    def to_text(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool

    def to_json(self) -> Any:
        return self.value

    def to_text(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True)
class IPLit:
    value: IPAddress

    def to_json(self) -> Any:
        return str(self.value)

    def to_text(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class IPNetworkLit:
    value: ipaddress.IPv4Network | ipaddress.IPv6Network

    def to_json(self) -> Any:
        return str(self.value)

    def to_text(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class IntRangeLit:
    low: int
    high: int

    def to_json(self) -> Any:
        return {"start": self.low, "end": self.high}

    def to_text(self) -> str:
        return f"{self.low}..{self.high}"


@dataclass(frozen=True, slots=True)
class IPRangeLit:
    low: IPAddress
    high: IPAddress

    def to_json(self) -> Any:
        return {"start": str(self.low), "end": str(self.high)}

    def to_text(self) -> str:
        return f"{self.low}..{self.high}"


@dataclass(frozen=True, slots=True)
class RegexLit:
    """A ``matches`` pattern. ``program`` caches the automaton the parser already built."""

    pattern: str
    program: Any = field(default=None, compare=False, repr=False, hash=False)

    def to_json(self) -> Any:
        return self.pattern

    def to_text(self) -> str:
        return quote_string(self.pattern)


@dataclass(frozen=True, slots=True)
class WildcardLit:
    pattern: str

    def to_json(self) -> Any:
        return self.pattern

    def to_text(self) -> str:
        return quote_string(self.pattern)


Literal = StringLit | IntLit | BoolLit | IPLit | RegexLit | WildcardLit
SetItem = StringLit | IntLit | IntRangeLit | IPLit | IPNetworkLit | IPRangeLit

# -- values ---------------------------------------------------------------------------------------

EACH = None  # the key of ``[*]``


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: Type
    each: bool = False  # a field itself never maps; kept for a uniform Value interface

    def to_json(self) -> Any:
        return self.name

    def to_text(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Index:
    """``base["key"]`` (Map), ``base[3]`` (Array) or ``base[*]`` (every element, ``key=None``)."""

    base: Value
    key: str | int | None
    type: Type
    each: bool

    def to_json(self) -> Any:
        chain: list[Any] = []
        node: Value = self
        while isinstance(node, Index):
            chain.append({"kind": "MapEach"} if node.key is None else node.key)
            node = node.base
        return [node.to_json(), *reversed(chain)]

    def to_text(self) -> str:
        if self.key is None:
            key = "*"
        elif isinstance(self.key, int):
            key = str(self.key)
        else:
            key = quote_string(self.key)
        return f"{self.base.to_text()}[{key}]"


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Arg, ...]
    type: Type
    each: bool

    def to_json(self) -> Any:
        return {"name": self.name, "args": [a.to_json() for a in self.args]}

    def to_text(self) -> str:
        return f"{self.name}({', '.join(a.to_text() for a in self.args)})"


Value = Field | Index | Call

# -- expressions ----------------------------------------------------------------------------------

COMPARE_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "contains", "matches", "wildcard", "strict_wildcard")
_OP_JSON = {
    "eq": "Equal",
    "ne": "NotEqual",
    "lt": "LessThan",
    "le": "LessThanEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanEqual",
    "contains": "Contains",
    "matches": "Matches",
    "wildcard": "Wildcard",
    "strict_wildcard": "StrictWildcard",
}
_OP_TEXT = {op: op for op in COMPARE_OPS} | {"strict_wildcard": "strict wildcard"}

LOGICAL_OPS = ("or", "xor", "and")  # ascending precedence
PRECEDENCE = {op: i for i, op in enumerate(LOGICAL_OPS, start=1)}


@dataclass(frozen=True, slots=True)
class Compare:
    lhs: Value
    op: str
    rhs: Literal

    @property
    def each(self) -> bool:
        return self.lhs.each

    def to_json(self) -> Any:
        return {"lhs": self.lhs.to_json(), "op": _OP_JSON[self.op], "rhs": self.rhs.to_json()}

    def to_text(self) -> str:
        return f"{self.lhs.to_text()} {_OP_TEXT[self.op]} {self.rhs.to_text()}"


@dataclass(frozen=True, slots=True)
class InSet:
    lhs: Value
    items: tuple[SetItem, ...]

    @property
    def each(self) -> bool:
        return self.lhs.each

    def to_json(self) -> Any:
        return {"lhs": self.lhs.to_json(), "op": "OneOf", "rhs": [i.to_json() for i in self.items]}

    def to_text(self) -> str:
        return f"{self.lhs.to_text()} in {{{' '.join(i.to_text() for i in self.items)}}}"


@dataclass(frozen=True, slots=True)
class IsTrue:
    """A bare Bool value used as a condition (``ssl``, ``starts_with(...)``)."""

    value: Value

    @property
    def each(self) -> bool:
        return self.value.each

    def to_json(self) -> Any:
        return {"lhs": self.value.to_json(), "op": "IsTrue"}

    def to_text(self) -> str:
        return self.value.to_text()


@dataclass(frozen=True, slots=True)
class Not:
    arg: Expr

    each = False

    def to_json(self) -> Any:
        return {"op": "Not", "arg": self.arg.to_json()}

    def to_text(self) -> str:
        inner = self.arg.to_text()
        if isinstance(self.arg, Combine):
            inner = f"({inner})"
        return f"not {inner}"


@dataclass(frozen=True, slots=True)
class Combine:
    """``and``/``or``/``xor`` over two or more items (the parser flattens ``a and b and c``)."""

    op: str
    items: tuple[Expr, ...]

    each = False

    def to_json(self) -> Any:
        return {"op": self.op.capitalize(), "items": [i.to_json() for i in self.items]}

    def to_text(self) -> str:
        # Nested combinations are always parenthesised: the text stays readable and parses back
        # to the same tree (an unparenthesised `a and b and c` would flatten).
        parts = [f"({i.to_text()})" if isinstance(i, Combine) else i.to_text() for i in self.items]
        return f" {self.op} ".join(parts)


Expr = Combine | Not | IsTrue | Compare | InSet
Arg = Value | Expr | StringLit | IntLit


def expr_type(node: Expr) -> Type:
    """Bool, or Array<Bool> for a comparison over ``[*]`` (one result per element)."""
    return array_of(BOOL) if node.each else BOOL


# -- the root -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterAST:
    """A parsed, type-checked expression bound to the scheme it was checked against."""

    expr: Expr
    scheme: Scheme = field(compare=False, repr=False)

    def to_json(self) -> Any:
        return self.expr.to_json()

    def to_text(self) -> str:
        return self.expr.to_text()

    @property
    def fields(self) -> frozenset[str]:
        """Canonical names of every field the expression reads."""
        return frozenset(f.name for f in iter_fields(self.expr))


def iter_fields(node: Expr | Arg) -> Iterator[Field]:
    """Every ``Field`` under ``node``, depth first."""
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Field):
            yield item
        elif isinstance(item, Index):
            stack.append(item.base)
        elif isinstance(item, Call):
            stack.extend(item.args)
        elif isinstance(item, Compare | InSet):
            stack.append(item.lhs)
        elif isinstance(item, IsTrue):
            stack.append(item.value)
        elif isinstance(item, Not):
            stack.append(item.arg)
        elif isinstance(item, Combine):
            stack.extend(item.items)
