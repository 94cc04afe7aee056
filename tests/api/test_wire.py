"""Parameter decoding, response declarations and time formats of the ESA wire layer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certgate.api.errors import RequestError, reply_for
from certgate.api.wire import (
    Kind,
    PageRule,
    Params,
    Shape,
    b,
    check_body,
    decode_params,
    esa_time,
    f,
    iso_z,
    q,
)

PARAMS = (
    q("SiteId", Kind.LONG, "site", required=True),
    q("PageSize", Kind.INT, "size", min=1, max=100),
    q("Proxied", Kind.BOOL, "flag"),
    b("Hostnames", Kind.JSON, "list"),
    b("Name", Kind.STR, "name", max_length=5),
    q("OrderBy", Kind.STR, "nope", supported=False),
)


def code(exc: RequestError) -> str:
    return reply_for(exc).code


def test_decodes_typed_values() -> None:
    values = decode_params(
        PARAMS, {"SiteId": "123", "PageSize": "5", "Proxied": "True", "Hostnames": '["a","b"]', "Name": "abc"}
    )
    assert values == {"SiteId": 123, "PageSize": 5, "Proxied": True, "Hostnames": ["a", "b"], "Name": "abc"}
    assert decode_params(PARAMS, {"SiteId": "-7", "Extra": "ignored"}) == {"SiteId": -7}


@pytest.mark.parametrize(
    "raw, expected", [("true", True), ("TRUE", True), ("False", False), ("false", False)]
)
def test_booleans_in_any_case(raw: str, expected: bool) -> None:
    assert decode_params(PARAMS, {"SiteId": "1", "Proxied": raw})["Proxied"] is expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({}, "MissingSiteId"),
        ({"SiteId": ""}, "MissingSiteId"),
        ({"SiteId": "1e3"}, "InvalidParameter.SiteId"),
        ({"SiteId": "9223372036854775808"}, "InvalidParameter.SiteId"),
        ({"SiteId": "1", "PageSize": "0"}, "InvalidParameter.PageSize"),
        ({"SiteId": "1", "PageSize": "101"}, "InvalidParameter.PageSize"),
        ({"SiteId": "1", "Proxied": "1"}, "InvalidParameter.Proxied"),
        ({"SiteId": "1", "Hostnames": "[1,"}, "InvalidParameter.Hostnames"),
        ({"SiteId": "1", "Name": "toolong"}, "InvalidParameter.Name"),
        ({"SiteId": "1", "OrderBy": "x"}, "InvalidParameter.OrderBy"),
    ],
)
def test_decoding_errors(raw: dict[str, str], expected: str) -> None:
    with pytest.raises(RequestError) as info:
        decode_params(PARAMS, raw)
    assert code(info.value) == expected


def test_empty_optional_numbers_are_absent() -> None:
    assert decode_params(PARAMS, {"SiteId": "1", "PageSize": "", "Proxied": "", "Name": ""}) == {
        "SiteId": 1,
        "Name": "",
    }


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_any_int64_round_trips(value: int) -> None:
    assert decode_params(PARAMS, {"SiteId": str(value)})["SiteId"] == value


@given(st.text(max_size=30))
def test_decoder_never_raises_anything_but_request_errors(text: str) -> None:
    for name in ("SiteId", "PageSize", "Proxied", "Hostnames", "Name"):
        try:
            decode_params(PARAMS, {"SiteId": "1", name: text})
        except RequestError:
            pass


def test_params_accessors() -> None:
    p = Params({"A": 1, "B": "x", "C": True, "D": ["h"], "E": {"k": 1}, "F": [1]})
    assert p.get_int("A") == 1 and p.opt_int("Z") is None
    assert p.get_str("B") == "x" and p.opt_str("Z") is None
    assert p.opt_bool("C") is True and p.opt_bool("Z") is None
    assert p.string_list("D") == ["h"] and p.json_object("E") == {"k": 1} and p.json_object("Z") is None
    with pytest.raises(RequestError):
        p.string_list("F")
    with pytest.raises(RequestError):
        p.json_object("D")


INNER = Shape("Inner", (f("V", "str"),))
FIELDS = (
    f("S", "str"),
    f("I", "int"),
    f("B", "bool"),
    f("O", "object"),
    f("L", "list[str]"),
    f("In", "shape", shape=INNER),
    f("Items", "list[shape]", shape=INNER),
    f("Maybe", "str", optional=True),
)
GOOD: dict[str, Any] = {
    "S": "s",
    "I": 1,
    "B": False,
    "O": {},
    "L": ["a"],
    "In": {"V": "v"},
    "Items": [{"V": "w"}],
}


def test_check_body_accepts_exact_types() -> None:
    assert check_body(FIELDS, GOOD) == []
    assert check_body(FIELDS, {**GOOD, "Maybe": "m"}) == []


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"I": True}, "I: expected integer"),
        ({"I": "1"}, "I: expected integer"),
        ({"S": 1}, "S: expected string"),
        ({"B": 0}, "B: expected boolean"),
        ({"L": [1]}, "L: expected array of strings"),
        ({"In": {"V": 1}}, "In.V: expected string"),
        ({"Items": [{"V": "x", "W": 1}]}, "Items[0].W: not declared"),
        ({"Extra": 1}, "Extra: not declared"),
    ],
)
def test_check_body_reports_differences(change: dict[str, Any], problem: str) -> None:
    problems = check_body(FIELDS, {**GOOD, **change})
    assert any(p.startswith(problem) for p in problems), problems


def test_check_body_reports_missing_fields() -> None:
    body = dict(GOOD)
    del body["S"]
    assert check_body(FIELDS, body) == ["S: missing"]


def test_time_formats() -> None:
    when = dt.datetime(2024, 6, 24, 7, 48, 51, tzinfo=dt.UTC)
    assert iso_z(when) == "2024-06-24T07:48:51Z"
    assert esa_time(when) == "2024-06-24 07:48:51"
    east = when.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert iso_z(east) == "2024-06-24T07:48:51Z"


def test_page_rule_defaults() -> None:
    rule = PageRule(default_size=20, max_size=100)
    number, size = rule.params()
    assert (number.name, size.name, size.max) == ("PageNumber", "PageSize", 100)
    paging = rule.paging(Params({"PageNumber": 3}))
    assert (paging.number, paging.size, paging.offset) == (3, 20, 40)
