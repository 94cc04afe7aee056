"""ESA's wire conventions: parameter declarations and decoding, response field declarations,
time formats.

Parameters arrive as strings (query or urlencoded form; the SDK decides which per action and we
accept either). Each action declares its parameters once (``Param``); ``decode_params`` turns
the raw strings into typed values or raises ``Missing<Param>`` / ``InvalidParameter.<Param>``.
Responses are declared the same way (``Field``) so the reference can be generated and tests can
check that every body has exactly the declared JSON types.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from certgate.api.errors import invalid_parameter, missing_parameter

INT64_MAX = 2**63 - 1
_INT = re.compile(r"^[+-]?[0-9]{1,19}$")


class Kind(enum.StrEnum):
    STR = "String"
    INT = "Integer"
    LONG = "Long"
    BOOL = "Boolean"
    JSON = "JSON"  # a "shrink" parameter: one JSON document in a string


class Where(enum.StrEnum):
    QUERY = "query"
    BODY = "body"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind = Kind.STR
    required: bool = False
    where: Where = Where.QUERY  # where the official SDK puts it (we accept both)
    doc: str = ""
    min: int | None = None
    max: int | None = None
    max_length: int | None = None
    supported: bool = True  # False: accepted by the SDK, refused by certgate when given


def q(name: str, kind: Kind = Kind.STR, doc: str = "", **kw: Any) -> Param:
    return Param(name, kind, where=Where.QUERY, doc=doc, **kw)


def b(name: str, kind: Kind = Kind.STR, doc: str = "", **kw: Any) -> Param:
    return Param(name, kind, where=Where.BODY, doc=doc, **kw)


def _decode_one(param: Param, raw: str) -> object:
    if param.kind in (Kind.INT, Kind.LONG):
        text = raw.strip()
        if not _INT.match(text) or abs(int(text)) > INT64_MAX:
            raise invalid_parameter(param.name, f"{raw!r} is not an integer")
        value = int(text)
        if param.min is not None and value < param.min:
            raise invalid_parameter(param.name, f"must be at least {param.min}")
        if param.max is not None and value > param.max:
            raise invalid_parameter(param.name, f"must be at most {param.max}")
        return value
    if param.kind is Kind.BOOL:
        lowered = raw.strip().lower()
        if lowered not in ("true", "false"):
            raise invalid_parameter(param.name, f"{raw!r} is not a boolean (true or false)")
        return lowered == "true"
    if param.kind is Kind.JSON:
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise invalid_parameter(param.name, f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    if param.max_length is not None and len(raw) > param.max_length:
        raise invalid_parameter(param.name, f"longer than {param.max_length} characters")
    return raw


def decode_params(params: Iterable[Param], raw: Mapping[str, str]) -> dict[str, object]:
    """Typed values of the declared parameters that were given; raises on the first problem.

    An empty string counts as absent for a required parameter and as "not given" for an
    optional non-string one (the SDK never sends empty numbers; hand-written clients do).
    """
    out: dict[str, object] = {}
    for param in params:
        value = raw.get(param.name)
        if value is None or (value == "" and param.kind is not Kind.STR):
            if param.required:
                raise missing_parameter(param.name)
            continue
        if value == "" and param.required:
            raise missing_parameter(param.name)
        if not param.supported:
            raise invalid_parameter(param.name, "certgate does not support this parameter")
        out[param.name] = _decode_one(param, value)
    return out


class Params:
    """Decoded parameters with typed accessors (the decoder already checked the kinds)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = dict(values)

    def has(self, name: str) -> bool:
        return name in self._values

    def get_int(self, name: str) -> int:
        value = self._values[name]
        assert isinstance(value, int) and not isinstance(value, bool)
        return value

    def opt_int(self, name: str) -> int | None:
        return self.get_int(name) if name in self._values else None

    def get_str(self, name: str) -> str:
        value = self._values[name]
        assert isinstance(value, str)
        return value

    def opt_str(self, name: str) -> str | None:
        return self.get_str(name) if name in self._values else None

    def opt_bool(self, name: str) -> bool | None:
        if name not in self._values:
            return None
        value = self._values[name]
        assert isinstance(value, bool)
        return value

    def get_json(self, name: str) -> Any:
        return self._values[name]

    def opt_json(self, name: str) -> Any:
        return self._values.get(name)

    def string_list(self, name: str) -> list[str]:
        value = self._values[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid_parameter(name, "must be a JSON array of strings")
        return value

    def json_object(self, name: str) -> dict[str, Any] | None:
        if name not in self._values:
            return None
        value = self._values[name]
        if not isinstance(value, dict):
            raise invalid_parameter(name, "must be a JSON object")
        return value


# -- response declarations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """A named JSON object of a response (``Result``, ``SiteModel``, ...)."""

    name: str
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str  # "str" | "int" | "bool" | "object" (free-form) | "shape" | "list[str]" | "list[shape]"
    doc: str = ""
    shape: Shape | None = None
    optional: bool = False  # may be absent from the body

    @property
    def type_label(self) -> str:
        if self.kind == "shape" and self.shape is not None:
            return self.shape.name
        if self.kind == "list[shape]" and self.shape is not None:
            return f"array of {self.shape.name}"
        return {
            "str": "string",
            "int": "integer",
            "bool": "boolean",
            "object": "object",
            "list[str]": "array of string",
        }.get(self.kind, self.kind)


def f(
    name: str, kind: str = "str", doc: str = "", *, shape: Shape | None = None, optional: bool = False
) -> Field:
    return Field(name, kind, doc, shape, optional)


def check_body(fields: Iterable[Field], body: Mapping[str, Any], path: str = "") -> list[str]:
    """Differences between a JSON body and its declaration (empty list: it conforms exactly)."""
    problems: list[str] = []
    declared = {fd.name: fd for fd in fields}
    for name in body:
        if name not in declared:
            problems.append(f"{path}{name}: not declared")
    for fd in declared.values():
        where = f"{path}{fd.name}"
        if fd.name not in body:
            if not fd.optional:
                problems.append(f"{where}: missing")
            continue
        value = body[fd.name]
        problems.extend(_check_value(fd, value, where))
    return problems


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(fd: Field, value: object, where: str) -> list[str]:
    if fd.kind == "str":
        return [] if isinstance(value, str) else [f"{where}: expected string, got {type(value).__name__}"]
    if fd.kind == "int":
        return [] if _is_int(value) else [f"{where}: expected integer, got {type(value).__name__}"]
    if fd.kind == "bool":
        return [] if isinstance(value, bool) else [f"{where}: expected boolean, got {type(value).__name__}"]
    if fd.kind == "object":
        return [] if isinstance(value, dict) else [f"{where}: expected object, got {type(value).__name__}"]
    if fd.kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return [f"{where}: expected array of strings"]
        return []
    if fd.kind == "shape":
        assert fd.shape is not None
        if not isinstance(value, dict):
            return [f"{where}: expected object {fd.shape.name}"]
        return check_body(fd.shape.fields, value, where + ".")
    if fd.kind == "list[shape]":
        assert fd.shape is not None
        if not isinstance(value, list):
            return [f"{where}: expected array"]
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                out.append(f"{where}[{i}]: expected object {fd.shape.name}")
            else:
                out.extend(check_body(fd.shape.fields, item, f"{where}[{i}]."))
        return out
    raise ValueError(f"unknown field kind {fd.kind!r}")


# -- time formats ------------------------------------------------------------------------------


# isoformat is C code: a page of 100 certificates formats 400 times (strftime or f-strings
# cost several milliseconds there).


def _naive_utc(when: dt.datetime) -> dt.datetime:
    utc = when if when.tzinfo is dt.UTC else when.astimezone(dt.UTC)
    return utc.replace(tzinfo=None)


def iso_z(when: dt.datetime) -> str:
    """``2023-12-01T02:12:49Z``: Create/Upload responses, sites, records, WAF UpdateTime."""
    return _naive_utc(when).isoformat(timespec="seconds") + "Z"


def esa_time(when: dt.datetime) -> str:
    """``2024-06-24 07:48:51`` (UTC): certificate Get/List results."""
    return _naive_utc(when).isoformat(" ", "seconds")


@dataclass(frozen=True, slots=True)
class Paging:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True, slots=True)
class PageRule:
    """Default and maximum page size of one list action (ESA differs per action)."""

    default_size: int = 20
    max_size: int = 100
    max_number: int = 10_000

    def params(self) -> tuple[Param, Param]:
        return (
            q("PageNumber", Kind.INT, "page to return, from 1", min=1, max=self.max_number),
            q(
                "PageSize",
                Kind.INT,
                f"items per page, 1-{self.max_size}, default {self.default_size}",
                min=1,
                max=self.max_size,
            ),
        )

    def paging(self, params: Params) -> Paging:
        return Paging(params.opt_int("PageNumber") or 1, params.opt_int("PageSize") or self.default_size)
