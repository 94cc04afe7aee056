"""The typed registry of fields: ``SchemeBuilder`` (set-once) → immutable ``Scheme``.

A scheme is what an expression is checked against (unknown fields and type errors are parse
errors) and what makes execution contexts. Aliases are alternative spellings of one canonical
field (``cf.tls_client_auth.cert_verified`` → ``tls.client_auth.cert_verified``); the AST and
every context only ever see the canonical name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from certgate.rules.context import ExecutionContext, FieldCheck, field_checks
from certgate.rules.errors import SchemeError
from certgate.rules.functions import BUILTIN_FUNCTIONS, FunctionDef
from certgate.rules.types import Type

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*\Z")

#: Words the grammar owns; no field or alias may be spelled like one.
KEYWORDS = frozenset(
    {
        "and", "or", "xor", "not", "in", "eq", "ne", "lt", "le", "gt", "ge",
        "contains", "matches", "wildcard", "strict", "true", "false",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field: canonical name, type, what it means, and its other spellings."""

    name: str
    type: Type
    description: str = ""
    aliases: tuple[str, ...] = ()
    lowercase_keys: bool = False  # a Map whose keys are lowercase: rules must index it so


class Scheme:
    """An immutable set of typed fields plus the built-in functions."""

    def __init__(self, fields: tuple[FieldDef, ...], functions: Mapping[str, FunctionDef]) -> None:
        self._fields = fields
        self._by_name: dict[str, FieldDef] = {}
        for f in fields:
            self._by_name[f.name] = f
            for alias in f.aliases:
                self._by_name[alias] = f
        self._functions = dict(functions)
        self._types: dict[str, Type] = {f.name: f.type for f in fields}
        self._checks = field_checks(self._types)

    @property
    def fields(self) -> tuple[FieldDef, ...]:
        """Every field in declaration order."""
        return self._fields

    @property
    def field_types(self) -> Mapping[str, Type]:
        """Canonical field name → type."""
        return self._types

    @property
    def field_checks(self) -> Mapping[str, FieldCheck]:
        """Canonical field name → what a context checks on a fetched value."""
        return self._checks

    @property
    def functions(self) -> Mapping[str, FunctionDef]:
        return self._functions

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` (canonical or alias), or None."""
        return self._by_name.get(name)

    def canonical(self, name: str) -> str:
        found = self._by_name.get(name)
        if found is None:
            raise SchemeError(f"unknown field {name!r}")
        return found.name

    def suggest(self, name: str) -> str | None:
        """The closest known field name, for "did you mean" hints."""
        close = difflib.get_close_matches(name, list(self._by_name), n=1, cutoff=0.75)
        return close[0] if close else None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[FieldDef]:
        return iter(self._fields)

    def context(self, getter: Callable[[str], object]) -> ExecutionContext:
        """A context for one evaluation; ``getter(canonical_name)`` runs lazily, at most once
        per field, and only for fields a filter actually reads."""
        return ExecutionContext(self, getter)

    def context_from_values(self, values: Mapping[str, object]) -> ExecutionContext:
        """A context over known values (keys may be aliases); absent fields are missing."""
        resolved: dict[str, object] = {}
        for name, value in values.items():
            resolved[self.canonical(name)] = value
        return ExecutionContext(self, resolved.get)


class SchemeBuilder:
    """Declares fields once, then ``build()``s a ``Scheme``; misuse raises ``SchemeError``."""

    def __init__(self) -> None:
        self._fields: list[FieldDef] = []
        self._names: set[str] = set()
        self._built = False

    def _check_name(self, name: str) -> None:
        if not _NAME_RE.match(name):
            raise SchemeError(f"invalid field name {name!r}")
        if name in KEYWORDS:
            raise SchemeError(f"{name!r} is a keyword of the rule language")
        if name in BUILTIN_FUNCTIONS:
            raise SchemeError(f"{name!r} is the name of a function")
        if name in self._names:
            raise SchemeError(f"field {name!r} is already defined")

    def add_field(
        self,
        name: str,
        type_: Type,
        *,
        description: str = "",
        aliases: tuple[str, ...] = (),
        lowercase_keys: bool = False,
    ) -> SchemeBuilder:
        if self._built:
            raise SchemeError("this builder has already built its scheme")
        if lowercase_keys and type_.kind != "Map":
            raise SchemeError(f"lowercase_keys applies to Map fields, not {type_}")
        names = (name, *aliases)
        if len(set(names)) != len(names):
            raise SchemeError(f"field {name!r} lists a name twice")
        for n in names:
            self._check_name(n)
        self._names.update(names)
        self._fields.append(FieldDef(name, type_, description, tuple(aliases), lowercase_keys))
        return self

    def build(self) -> Scheme:
        if self._built:
            raise SchemeError("this builder has already built its scheme")
        self._built = True
        return Scheme(tuple(self._fields), BUILTIN_FUNCTIONS)
