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


FieldCheck = tuple[Callable[[object], bool], bool, Type]


def field_checks(types: Mapping[str, Type]) -> dict[str, FieldCheck]:
    """Per field: the value predicate, whether the value is an IP to normalize, and the type
    (built once per scheme, so a fetch does one lookup)."""
    return {name: (value_check(type_), type_.kind == "IP", type_) for name, type_ in types.items()}


class _LazyValues(dict[str, object]):
    """Canonical field name → value (None: missing); filled on first read."""

    __slots__ = ("_checks", "_getter")

    def __init__(self, getter: Callable[[str], object], checks: Mapping[str, FieldCheck]) -> None:
        # No super().__init__(): the dict starts empty, and this runs once per request.
        self._getter = getter
        self._checks = checks

    def __missing__(self, name: str) -> object:
        check, is_ip, type_ = self._checks[name]
        value = self._getter(name)
        if value is not None:
            if not check(value):
                raise FieldValueError(
                    f"the value of {name} must be {type_}, got {type(value).__name__} {value!r:.60}"
                )
            if is_ip:
                value = normalize_ip(value)  # type: ignore[arg-type]  # checked just above
        self[name] = value
        return value


class ExecutionContext:
    """Values for one evaluation of any number of filters of one scheme."""

    __slots__ = ("_values", "scheme")

    def __init__(self, scheme: Scheme, getter: Callable[[str], object]) -> None:
        self.scheme = scheme
        self._values = _LazyValues(getter, scheme.field_checks)

    def get(self, name: str) -> object:
        """The value of a field (canonical name or alias), fetching it if needed."""
        return self._values[self.scheme.canonical(name)]

    def reset(self, known: Mapping[str, object] | None = None) -> None:
        """Forget every fetched value, so the context serves the next evaluation (the getter
        must answer for it from now on); ``known`` (canonical name → a value this scheme's
        context fetched, so already checked) counts as fetched: its fields are not asked again."""
        values = self._values
        values.clear()
        if known:
            values.update(known)

    @property
    def loaded(self) -> dict[str, object]:
        """The fields fetched so far and their values (for logs and tests)."""
        return dict(self._values)
