"""Execution contexts: lazy, at most one fetch per field, type-checked values."""

from __future__ import annotations

import ipaddress

import pytest

from certgate.rules import EDGE_SCHEME, FieldValueError, SchemeError, compile_filter, parse


def test_getter_runs_once_per_field_and_only_on_demand() -> None:
    calls: list[str] = []

    def getter(name: str) -> object:
        calls.append(name)
        return {"http.host": "a.example.com", "ssl": True}.get(name)

    ctx = EDGE_SCHEME.context(getter)
    assert calls == []
    flt = compile_filter(parse('http.host eq "a.example.com" and ssl and http.host ne "b"'))
    assert flt.execute(ctx) is True
    assert flt.execute(ctx) is True
    assert calls == ["http.host", "ssl"]
    assert ctx.loaded == {"http.host": "a.example.com", "ssl": True}


def test_reset_forgets_fetched_values_and_takes_known_ones() -> None:
    answers = {"http.host": "a.example.com", "ssl": True, "http.request.uri.path": "/a"}
    calls: list[str] = []

    def getter(name: str) -> object:
        calls.append(name)
        return answers.get(name)

    ctx = EDGE_SCHEME.context(getter)
    flt = compile_filter(parse('http.host eq "a.example.com" and ssl and http.request.uri.path eq "/a"'))
    assert flt.execute(ctx) is True
    known = {"http.host": ctx.loaded["http.host"], "ssl": ctx.loaded["ssl"]}
    answers["http.request.uri.path"] = "/b"
    ctx.reset(known)
    assert ctx.loaded == known
    assert flt.execute(ctx) is False
    assert calls == ["http.host", "ssl", "http.request.uri.path", "http.request.uri.path"]
    ctx.reset()
    assert ctx.loaded == {}
    assert flt.execute(ctx) is False and calls[-3:] == ["http.host", "ssl", "http.request.uri.path"]


def test_get_resolves_aliases_and_fetches_lazily() -> None:
    ctx = EDGE_SCHEME.context(lambda name: name == "tls.client_auth.cert_verified")
    assert ctx.get("cf.tls_client_auth.cert_verified") is True
    assert ctx.get("ssl") is False
    with pytest.raises(SchemeError):
        ctx.get("no.such.field")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("http.host", b"bytes"),
        ("tls.client_auth.cert_not_after", True),
        ("tls.client_auth.cert_not_after", "5"),
        ("ssl", 1),
        ("ip.src", "10.0.0.1"),
        ("http.request.headers", [("a", "b")]),
        ("http.request.uri.args", "a=b"),
    ],
)
def test_wrong_value_types_are_refused(name: str, value: object) -> None:
    ctx = EDGE_SCHEME.context(lambda _name: value)
    with pytest.raises(FieldValueError, match=name):
        ctx.get(name)


def test_ipv4_mapped_addresses_become_ipv4() -> None:
    ctx = EDGE_SCHEME.context(lambda _name: ipaddress.ip_address("::ffff:192.0.2.7"))
    assert ctx.get("ip.src") == ipaddress.ip_address("192.0.2.7")
    assert compile_filter(parse("ip.src in {192.0.2.0/24}")).execute(ctx) is True


def test_context_from_values_accepts_aliases_and_refuses_unknown_names() -> None:
    ctx = EDGE_SCHEME.context_from_values({"cf.tls_client_auth.cert_verified": True})
    assert compile_filter(parse("tls.client_auth.cert_verified")).execute(ctx) is True
    with pytest.raises(SchemeError):
        EDGE_SCHEME.context_from_values({"http.hots": "x"})
