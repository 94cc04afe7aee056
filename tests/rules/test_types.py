"""Types and value checks."""

from __future__ import annotations

import ipaddress

import pytest

from certgate.rules.types import BOOL, BYTES, INT, IP, Type, array_of, map_of, normalize_ip, value_check


def test_type_construction_rules() -> None:
    with pytest.raises(ValueError):
        Type("Array")
    with pytest.raises(ValueError):
        Type("Bytes", BYTES)
    with pytest.raises(ValueError):
        Type("Float")
    assert array_of(INT).is_container and not INT.is_container


@pytest.mark.parametrize(
    ("type_", "good", "bad"),
    [
        (BYTES, "x", b"x"),
        (INT, 5, True),
        (BOOL, False, 0),
        (IP, ipaddress.ip_address("::1"), "::1"),
        (array_of(BYTES), ("a",), "a"),
        (map_of(BYTES), {"a": "b"}, [("a", "b")]),
    ],
)
def test_value_checks(type_: Type, good: object, bad: object) -> None:
    check = value_check(type_)
    assert check(good) and not check(bad)


def test_normalize_ip() -> None:
    assert normalize_ip(ipaddress.ip_address("::ffff:1.2.3.4")) == ipaddress.ip_address("1.2.3.4")
    assert normalize_ip(ipaddress.ip_address("::1")) == ipaddress.ip_address("::1")
