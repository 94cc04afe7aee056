"""The value types of the rule language and how Python values represent them.

| type        | Python value a context getter returns                       |
|-------------|-------------------------------------------------------------|
| Bytes       | ``str`` (HTTP text; escapes in literals may carry raw bytes) |
| Int         | ``int`` (never ``bool``)                                     |
| Bool        | ``bool``                                                     |
| IP          | ``ipaddress.IPv4Address`` or ``ipaddress.IPv6Address``       |
| Array<T>    | ``list`` or ``tuple`` of T                                   |
| Map<T>      | ``dict`` with ``str`` keys and T values                      |

``None`` means "missing": every comparison on a missing value is false.
Checks on containers are shallow (the element types are the producer's promise), because the
edge calls them once per request for every referenced field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCALAR_KINDS = ("Bytes", "Int", "Bool", "IP")
CONTAINER_KINDS = ("Array", "Map")


@dataclass(frozen=True, slots=True)
class Type:
    """A rule-language type: a scalar kind, or ``Array``/``Map`` of an element type."""

    kind: str
    element: Type | None = None

    def __post_init__(self) -> None:
        if self.kind in SCALAR_KINDS:
            if self.element is not None:
                raise ValueError(f"{self.kind} has no element type")
        elif self.kind in CONTAINER_KINDS:
            if self.element is None:
                raise ValueError(f"{self.kind} needs an element type")
        else:
            raise ValueError(f"unknown type kind {self.kind!r}")

    @property
    def is_container(self) -> bool:
        return self.element is not None

    def __str__(self) -> str:
        if self.element is None:
            return self.kind
        return f"{self.kind}<{self.element}>"


BYTES = Type("Bytes")
INT = Type("Int")
BOOL = Type("Bool")
IP = Type("IP")


def array_of(element: Type) -> Type:
    return Type("Array", element)


def map_of(element: Type) -> Type:
    return Type("Map", element)


def _is_bytes(value: object) -> bool:
    return isinstance(value, str)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_ip(value: object) -> bool:
    return isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address)


def _is_array(value: object) -> bool:
    return isinstance(value, list | tuple)


def _is_map(value: object) -> bool:
    return isinstance(value, dict)


_CHECKS: dict[str, Callable[[object], bool]] = {
    "Bytes": _is_bytes,
    "Int": _is_int,
    "Bool": _is_bool,
    "IP": _is_ip,
    "Array": _is_array,
    "Map": _is_map,
}


def value_check(type_: Type) -> Callable[[object], bool]:
    """A fast, shallow predicate telling whether a non-None Python value fits ``type_``."""
    return _CHECKS[type_.kind]


def normalize_ip(value: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (``::ffff:192.0.2.1``, as dual-stack sockets report IPv4 peers) → IPv4.

    Rules compare ``ip.src`` with IPv4 literals; without this a dual-stack listener would let
    every IPv4 client slip past ``ip.src in {192.0.2.0/24}``.
    """
    if isinstance(value, ipaddress.IPv6Address) and value.ipv4_mapped is not None:
        return value.ipv4_mapped
    return value
