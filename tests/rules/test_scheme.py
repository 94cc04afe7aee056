"""SchemeBuilder: set-once registry; misuse raises SchemeError."""

from __future__ import annotations

import pytest

from certgate.rules import (
    BOOL,
    BYTES,
    INT,
    RuleParseError,
    SchemeBuilder,
    SchemeError,
    compile_filter,
    map_of,
    parse,
)
from certgate.rules.types import array_of


def test_builds_a_usable_scheme() -> None:
    scheme = SchemeBuilder().add_field("port", INT, aliases=("dst.port",)).add_field("on", BOOL).build()
    assert [f.name for f in scheme.fields] == ["port", "on"]
    assert scheme.canonical("dst.port") == "port"
    assert "dst.port" in scheme
    flt = compile_filter(parse("dst.port in {80 443} and on", scheme))
    assert flt.fields == frozenset({"port", "on"})
    assert flt.execute(scheme.context_from_values({"port": 443, "on": True})) is True


@pytest.mark.parametrize(
    ("name", "aliases", "message"),
    [
        ("a", (), "already defined"),
        ("b", ("a",), "already defined"),
        ("c", ("c",), "twice"),
        ("and", (), "keyword"),
        ("lower", (), "function"),
        ("1abc", (), "invalid field name"),
        ("a..b", (), "invalid field name"),
        ("a-b", (), "invalid field name"),
    ],
)
def test_refuses_bad_names(name: str, aliases: tuple[str, ...], message: str) -> None:
    builder = SchemeBuilder().add_field("a", BYTES)
    with pytest.raises(SchemeError, match=message):
        builder.add_field(name, BYTES, aliases=aliases)


def test_a_failed_definition_leaves_no_trace() -> None:
    builder = SchemeBuilder().add_field("a", BYTES)
    with pytest.raises(SchemeError):
        builder.add_field("b", BYTES, aliases=("and",))
    builder.add_field("b", BYTES)  # "b" was not half-registered


def test_builder_is_set_once() -> None:
    builder = SchemeBuilder().add_field("a", BYTES)
    builder.build()
    with pytest.raises(SchemeError):
        builder.build()
    with pytest.raises(SchemeError):
        builder.add_field("b", BYTES)


def test_lowercase_keys_only_for_maps() -> None:
    with pytest.raises(SchemeError):
        SchemeBuilder().add_field("a", BYTES, lowercase_keys=True)
    scheme = SchemeBuilder().add_field("m", map_of(array_of(BYTES))).build()
    # Without the flag, mixed-case keys are accepted as written.
    parse('m["Key"][0] eq "v"', scheme)


def test_unknown_field_suggestion() -> None:
    scheme = SchemeBuilder().add_field("http.host", BYTES).build()
    with pytest.raises(RuleParseError, match=r"did you mean `http\.host`"):
        parse('http.hsot eq "a"', scheme)
    with pytest.raises(RuleParseError) as info:
        parse('zzz eq "a"', scheme)
    assert "did you mean" not in info.value.message
