"""The execution context: field values for one evaluation, fetched lazily.

The edge builds one context per request around a getter; a compiled filter reads a field with a
plain dict lookup, and only a miss calls the getter (``__missing__``), type-checks the value
and remembers it. So a field that no rule reads is never computed, and a field read by many
rules is computed once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from certgate.rules.errors import FieldValueError
from certgate.rules.types import Type, normalize_ip, value_check

if TYPE_CHECKING:
    from certgate.rules.scheme import Scheme


class _LazyValues(dict[str, object]):
    """Canonical field name → value (None: missing); filled on first read."""

    __slots__ = ("_getter", "_types")

    def __init__(self, getter: Callable[[str], object], types: Mapping[str, Type]) -> None:
        # No super().__init__(): the dict starts empty, and this runs once per request.
        self._getter = getter
        self._types = types

    def __missing__(self, name: str) -> object:
        type_ = self._types[name]
        value = self._getter(name)
        if value is not None:
            if not value_check(type_)(value):
                raise FieldValueError(
                    f"the value of {name} must be {type_}, got {type(value).__name__} {value!r:.60}"
                )
            if type_.kind == "IP":
                value = normalize_ip(value)  # type: ignore[arg-type]  # checked just above
        self[name] = value
        return value


class ExecutionContext:
    """Values for one evaluation of any number of filters of one scheme."""

    __slots__ = ("_values", "scheme")

    def __init__(self, scheme: Scheme, getter: Callable[[str], object]) -> None:
        self.scheme = scheme
        self._values = _LazyValues(getter, scheme.field_types)

    def get(self, name: str) -> object:
        """The value of a field (canonical name or alias), fetching it if needed."""
        return self._values[self.scheme.canonical(name)]

    @property
    def loaded(self) -> dict[str, object]:
        """The fields fetched so far and their values (for logs and tests)."""
        return dict(self._values)
