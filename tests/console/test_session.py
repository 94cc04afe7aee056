"""The session cookie codec and the CSRF check (pure: no app, fixed times)."""

from __future__ import annotations

import datetime as dt

import pytest
from itsdangerous import URLSafeSerializer

from certgate.clock import UTC
from certgate.console.session import (
    CSRFRejected,
    Session,
    SessionCodec,
    check_csrf,
    new_session,
)
from certgate.ids import AccountId

NOW = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
SECRET = b"s" * 32
MAX_AGE = dt.timedelta(hours=8)


def codec(secret: bytes = SECRET) -> SessionCodec:
    return SessionCodec(secret, max_age=MAX_AGE)


def test_misuse_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        SessionCodec(b"short", max_age=MAX_AGE)
    with pytest.raises(ValueError, match="positive"):
        SessionCodec(SECRET, max_age=dt.timedelta(0))


def test_anonymous_and_logged_in_sessions_round_trip() -> None:
    anonymous = new_session(token="t" * 43, now=NOW)
    assert not anonymous.logged_in
    assert codec().decode(codec().encode(anonymous), now=NOW) == anonymous
    logged_in = new_session(token="u" * 43, now=NOW, account_id=AccountId("acct"), access_key_id="LTAIabc")
    assert logged_in.logged_in
    assert codec().decode(codec().encode(logged_in), now=NOW) == logged_in


def test_cookie_never_carries_more_than_the_session_fields() -> None:
    cookie = codec().encode(new_session(token="tok", now=NOW, account_id=AccountId("a"), access_key_id="k"))
    payload = URLSafeSerializer(SECRET, salt="certgate.console.session.v1").loads(cookie)
    assert set(payload) == {"v", "csrf", "iat", "acct", "akid"}


@pytest.mark.parametrize("cookie", [None, "", "garbage", "eyJ2IjoxfQ.bad-signature"])
def test_absent_or_unsigned_cookies_give_no_session(cookie: str | None) -> None:
    assert codec().decode(cookie, now=NOW) is None


def test_a_cookie_signed_with_another_secret_is_refused() -> None:
    cookie = codec(b"o" * 32).encode(new_session(token="tok", now=NOW))
    assert codec().decode(cookie, now=NOW) is None


def test_expiry_is_exact_to_the_second() -> None:
    cookie = codec().encode(new_session(token="tok", now=NOW))
    assert codec().decode(cookie, now=NOW + MAX_AGE - dt.timedelta(seconds=1)) is not None
    assert codec().decode(cookie, now=NOW + MAX_AGE) is None
    # Issued "in the future" (clock jump or forgery): refused, one second either side.
    assert codec().decode(cookie, now=NOW) is not None
    assert codec().decode(cookie, now=NOW - dt.timedelta(seconds=1)) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"v": 2, "csrf": "tok", "iat": 1795867200},
        {"v": 1, "iat": 1795867200},
        {"v": 1, "csrf": "", "iat": 1795867200},
        {"v": 1, "csrf": "tok", "iat": "1795867200"},
        {"v": 1, "csrf": "tok", "iat": True},
        {"v": 1, "csrf": "tok", "iat": 1795867200, "acct": "a"},
        {"v": 1, "csrf": "tok", "iat": 1795867200, "acct": 7, "akid": "k"},
        ["not", "a", "dict"],
    ],
)
def test_signed_but_malformed_payloads_are_refused(payload: object) -> None:
    cookie = URLSafeSerializer(SECRET, salt="certgate.console.session.v1").dumps(payload)
    assert codec().decode(cookie, now=NOW) is None


def test_csrf_check_raises_unless_the_token_is_the_sessions() -> None:
    session = Session(csrf_token="right-token", issued_at=0)
    check_csrf(session, "right-token")
    for submitted in (None, "", "wrong-token", "right-token "):
        with pytest.raises(CSRFRejected) as info:
            check_csrf(session, submitted)
        assert info.value.reason == "console.csrf"
    with pytest.raises(CSRFRejected, match="expired"):
        check_csrf(None, "right-token")
