"""Plumbing every page shares: security headers, the session cookie, CSRF on every POST route,
error pages, login redirects."""

from __future__ import annotations

import re

import pytest
from tests.console.conftest import ConsoleClient, World, console_app, text_of

from certgate.console.web import safe_next, status_for
from certgate.errors import AlreadyExists, CertGateError, Conflict, InvalidArgument, NotFound, QuotaExceeded


async def test_a_token_of_another_session_is_refused(world: World, alice: ConsoleClient) -> None:
    other = ConsoleClient(console_app(world.ctx))
    try:
        await other.login(world.bob)
        response = await alice.post("/console/logout", {"csrf_token": other.page_fields["csrf_token"]})
        assert response.status_code == 403
    finally:
        await other.aclose()


async def test_without_a_session_cookie_a_post_is_refused(world: World, anonymous: ConsoleClient) -> None:
    response = await anonymous.post("/console/login", {"csrf_token": "anything"})
    assert response.status_code == 403
    assert "session has expired" in text_of(response.text)


async def test_security_headers_on_pages_and_assets(anonymous: ConsoleClient) -> None:
    page = await anonymous.get("/console/login")
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    asset = await anonymous.get("/console/static/console.js")
    assert asset.status_code == 200
    assert "no-store" not in asset.headers.get("cache-control", "")
    assert asset.headers["x-content-type-options"] == "nosniff"


async def test_no_page_refers_to_another_origin(anonymous: ConsoleClient) -> None:
    page = await anonymous.get("/console/login")
    assert re.findall(r'(?:src|href)="(https?:)?//', page.text) == []
    assert "<script>" not in page.text and "style=" not in page.text  # CSP forbids inline code


async def test_session_cookie_flags(anonymous: ConsoleClient) -> None:
    response = await anonymous.get("/console/login")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("certgate_console=")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"):
        assert flag in cookie
    assert "Secure" not in cookie
    # A page seen with a valid session does not set the cookie again.
    again = await anonymous.get("/console/login")
    assert "set-cookie" not in again.headers


async def test_secure_cookies_when_asked(world: World) -> None:
    client = ConsoleClient(console_app(world.ctx, secure_cookies=True), base_url="https://testserver")
    try:
        response = await client.get("/console/login")
        assert "Secure" in response.headers["set-cookie"]
    finally:
        await client.aclose()


async def test_pages_need_a_login_and_come_back_after_it(world: World, anonymous: ConsoleClient) -> None:
    response = await anonymous.get(world.alice.certs_url)
    assert response.status_code == 303
    assert (
        response.headers["location"]
        == f"/console/login?next=/sites/{world.alice.site_id}/ssl/client-certificates"
    )
    login = await anonymous.get(response.headers["location"])
    assert anonymous.page_fields["next"] == f"/sites/{world.alice.site_id}/ssl/client-certificates"
    assert login.status_code == 200
    done = await anonymous.post(
        "/console/login",
        {
            "access_key_id": world.alice.key_id,
            "access_key_secret": world.alice.secret,
            "next": anonymous.page_fields["next"],
        },
    )
    assert done.headers["location"] == world.alice.certs_url


async def test_unknown_pages_get_the_console_error_page(alice: ConsoleClient) -> None:
    response = await alice.get("/console/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "There is no such page." in text_of(response.text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/sites/1/ssl/client-certificates", "/sites/1/ssl/client-certificates"),
        ("//evil.example/x", None),
        ("https://evil.example", None),
        ("/sites/../../x", None),
        ("/sites?x=1", None),
        ("/\\evil", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_next(value: str | None, expected: str | None) -> None:
    assert safe_next(value) == expected


def test_error_status_table() -> None:
    assert status_for(NotFound("x")) == 404
    assert status_for(Conflict("x")) == 409
    assert status_for(AlreadyExists("x")) == 409
    assert status_for(QuotaExceeded("x")) == 400
    assert status_for(InvalidArgument("x")) == 400
    assert status_for(CertGateError("x")) == 500
