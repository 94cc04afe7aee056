"""The console's session: a signed cookie that says who is logged in, and its CSRF token.

Owns the cookie format and the CSRF check. The cookie is signed with the installation's console
secret (itsdangerous), not encrypted: everything in it is readable by whoever holds the cookie,
so it must never carry a secret other than its own CSRF token. In particular no access-key
secret and no private key (PRODUCT §2: a generated key lives only in the response that shows it).

Time comes from the injected clock, so expiry is tested with a fixed clock.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from typing import Any, Final

from itsdangerous import BadSignature, URLSafeSerializer

from certgate.errors import PermissionDenied
from certgate.ids import AccountId

SESSION_FORMAT: Final = 1
MIN_SECRET_BYTES: Final = 32
_SALT: Final = "certgate.console.session.v1"


class CSRFRejected(PermissionDenied):
    """A form was posted without the CSRF token of the session that displayed it."""

    default_reason = "console.csrf"


@dataclass(frozen=True, slots=True)
class Session:
    csrf_token: str
    issued_at: int
    """Unix seconds (injected clock) when the session began; it ends ``max_age`` later."""
    account_id: AccountId | None = None
    access_key_id: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.account_id is not None and self.access_key_id is not None


class SessionCodec:
    """Turns a :class:`Session` into a cookie value and back, refusing forged or stale ones."""

    def __init__(self, secret_key: bytes, *, max_age: dt.timedelta) -> None:
        if len(secret_key) < MIN_SECRET_BYTES:
            raise ValueError(f"the console secret key must be at least {MIN_SECRET_BYTES} bytes")
        if max_age <= dt.timedelta(0):
            raise ValueError("the session max_age must be positive")
        self._serializer = URLSafeSerializer(secret_key, salt=_SALT)
        self._max_age = int(max_age.total_seconds())

    def encode(self, session: Session) -> str:
        payload: dict[str, Any] = {"v": SESSION_FORMAT, "csrf": session.csrf_token, "iat": session.issued_at}
        if session.logged_in:
            payload["acct"] = session.account_id
            payload["akid"] = session.access_key_id
        return self._serializer.dumps(payload)

    def decode(self, cookie: str | None, *, now: dt.datetime) -> Session | None:
        """The session in ``cookie``; None when it is absent, forged, malformed or expired."""
        if not cookie:
            return None
        try:
            payload = self._serializer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(payload, dict) or payload.get("v") != SESSION_FORMAT:
            return None
        csrf, issued_at = payload.get("csrf"), payload.get("iat")
        if not isinstance(csrf, str) or not csrf or type(issued_at) is not int:
            return None
        age = int(now.timestamp()) - issued_at
        # A session from the future means a clock jump or a forgery; neither is trusted.
        if not 0 <= age < self._max_age:
            return None
        account, key_id = payload.get("acct"), payload.get("akid")
        if account is None and key_id is None:
            return Session(csrf_token=csrf, issued_at=issued_at)
        if not isinstance(account, str) or not isinstance(key_id, str):
            return None
        return Session(
            csrf_token=csrf, issued_at=issued_at, account_id=AccountId(account), access_key_id=key_id
        )


def new_session(
    *, token: str, now: dt.datetime, account_id: AccountId | None = None, access_key_id: str | None = None
) -> Session:
    """A fresh session. Logging in always makes a new one, so a CSRF token seen before login
    (or planted by someone else) is worthless afterwards."""
    return Session(
        csrf_token=token, issued_at=int(now.timestamp()), account_id=account_id, access_key_id=access_key_id
    )


def check_csrf(session: Session | None, submitted: str | None) -> None:
    """Raise unless ``submitted`` is the CSRF token of ``session`` (synchronizer token)."""
    if session is None:
        raise CSRFRejected("your session has expired; reload the page and try again")
    if not submitted or not hmac.compare_digest(session.csrf_token.encode(), submitted.encode()):
        raise CSRFRejected(
            "the form is missing its security token or it is stale; reload the page and try again"
        )
