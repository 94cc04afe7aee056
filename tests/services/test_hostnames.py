"""Hostname normalisation, site membership and binding (PRODUCT §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certgate.errors import InvalidArgument, NotFound
from certgate.services import ca_certificates as cas
from certgate.services.hostnames import normalize_hostname, normalize_site_hostnames


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("API.Example.COM", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        ("bücher.example.com", "xn--bcher-kva.example.com"),
        ("*.example.com", "*.example.com"),
    ],
)
def test_normalizes(raw: str, expected: str) -> None:
    assert normalize_hostname(raw, allow_wildcard=True) == expected


@pytest.mark.parametrize(
    "raw,reason",
    [
        ("bad..name", "hostname.malformed"),
        ("a.example.com:443", "hostname.port_or_path"),
        ("https://a.example.com", "hostname.port_or_path"),
        ("a.example.com/path", "hostname.port_or_path"),
        ("-a.example.com", "hostname.malformed"),
        ("a.*.example.com", "hostname.malformed"),
        ("", "hostname.malformed"),
        ("localhost", "hostname.malformed"),
        ("10.0.0.1", "hostname.malformed"),
        ("a" * 64 + ".example.com", "hostname.malformed"),
    ],
)
def test_refuses(raw: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        normalize_hostname(raw, allow_wildcard=True)
    assert err.value.reason == reason


@given(st.text(max_size=80))
def test_any_text_normalizes_or_raises_invalid_argument(raw: str) -> None:
    try:
        name = normalize_hostname(raw, allow_wildcard=True)
    except InvalidArgument:
        return
    assert name == name.lower() and name.isascii() and ".." not in name
    assert normalize_hostname(name, allow_wildcard=True) == name  # idempotent


def test_site_list_folds_duplicates_and_refuses_foreign_or_too_many() -> None:
    assert normalize_site_hostnames(
        ["A.example.com", "a.example.com", "example.com"], "example.com", limit=50
    ) == (
        "a.example.com",
        "example.com",
    )
    with pytest.raises(InvalidArgument) as err:
        normalize_site_hostnames(["a.other.org"], "example.com", limit=50)
    assert err.value.reason == "hostname.foreign_site"
    with pytest.raises(InvalidArgument) as err:
        normalize_site_hostnames(["notexample.com"], "example.com", limit=50)
    assert err.value.reason == "hostname.foreign_site"
    with pytest.raises(InvalidArgument) as err:
        normalize_site_hostnames([f"h{i}.example.com" for i in range(51)], "example.com", limit=50)
    assert err.value.reason == "hostname.too_many"


def test_binding_managed_ca_replaces_and_clears(world) -> None:
    ctx = world.ctx
    _, binding = cas.set_hostnames(
        ctx, world.account, world.site, None, ["api.example.com", "www.example.com"]
    )
    assert binding.hostnames == ("api.example.com", "www.example.com")
    _, binding = cas.set_hostnames(ctx, world.account, world.site, None, ["api.example.com"])
    assert cas.get_hostnames(ctx, world.account, world.site, None)[1].hostnames == ("api.example.com",)
    cas.set_hostnames(ctx, world.account, world.site, None, [])
    assert cas.get_hostnames(ctx, world.account, world.site, None)[1].hostnames == ()


@pytest.mark.parametrize(
    "names,reason",
    [
        ([f"h{i}.example.com" for i in range(51)], "hostname.too_many"),
        (["api.other.org"], "hostname.foreign_site"),
        (["bad..name.example.com"], "hostname.malformed"),
        (["a.example.com:443"], "hostname.port_or_path"),
    ],
)
def test_bad_binding_changes_nothing(world, names: list[str], reason: str) -> None:
    ctx = world.ctx
    cas.set_hostnames(ctx, world.account, world.site, None, ["api.example.com"])
    version = ctx.store.current_version()
    with pytest.raises(InvalidArgument) as err:
        cas.set_hostnames(ctx, world.account, world.site, None, ["www.example.com", *names])
    assert err.value.reason == reason
    assert cas.get_hostnames(ctx, world.account, world.site, None)[1].hostnames == ("api.example.com",)
    assert ctx.store.current_version() == version


def test_binding_in_another_accounts_site_is_not_found(world) -> None:
    with pytest.raises(NotFound):
        cas.set_hostnames(world.ctx, world.other_account, world.site, None, ["api.example.com"])
    with pytest.raises(NotFound):
        cas.get_hostnames(world.ctx, world.other_account, world.site, None)


def test_unknown_ca_id_is_not_found(world) -> None:
    with pytest.raises(NotFound):
        cas.set_hostnames(world.ctx, world.account, world.site, "f" * 32, ["api.example.com"])
