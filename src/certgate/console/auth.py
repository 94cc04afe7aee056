"""Login with an access key (AccessKeyId + AccessKey secret) and logout.

A successful login always starts a new session (new CSRF token); a failed one says the same
thing whether the key id or the secret was wrong. Repeated failures lock the key id or the
client address out for a while (``certgate.console.throttle``).
"""

from __future__ import annotations

import hmac
import math

from starlette.requests import Request
from starlette.responses import Response

from certgate.console.session import new_session
from certgate.console.web import (
    LoginRequired,
    call,
    console_of,
    field,
    read_form,
    redirect,
    render,
    require_login,
    safe_next,
    set_session,
)
from certgate.errors import Unauthenticated
from certgate.services import accounts

LOGIN_FAILED = "The AccessKey ID or AccessKey secret is incorrect."
TOO_MANY_FAILURES = "Too many failed logins. Try again in {minutes} minute{s}."
# Compared against when the key id is unknown, so both failures take the same path.
_NO_SECRET = "certgate-console-no-such-key"


async def login_page(request: Request) -> Response:
    try:
        await require_login(request)
    except LoginRequired:
        nxt = safe_next(request.query_params.get("next"))
        return render(request, "login.html", principal=None, next=nxt or "", access_key_id="")
    return redirect(request, "/sites")


async def login(request: Request) -> Response:
    form = await read_form(request)
    key_id = field(form, "access_key_id").strip()
    secret = field(form, "access_key_secret")
    nxt = safe_next(field(form, "next"))
    console = console_of(request)
    now = console.ctx.clock.now()
    address = request.client.host if request.client else ""
    throttle_key = key_id[:128]
    wait = console.throttle.retry_after(throttle_key, address, now)
    if wait is not None:
        minutes = max(1, math.ceil(wait.total_seconds() / 60))
        response = render(
            request,
            "login.html",
            principal=None,
            status=429,
            error=TOO_MANY_FAILURES.format(minutes=minutes, s="" if minutes == 1 else "s"),
            next=nxt or "",
            access_key_id=key_id,
        )
        response.headers["Retry-After"] = str(math.ceil(wait.total_seconds()))
        return response
    expected, account = _NO_SECRET, None
    if key_id and len(key_id) <= 128:
        try:
            account, expected = await call(request, accounts.resolve_access_key, key_id)
        except Unauthenticated:
            account = None
    matches = hmac.compare_digest(expected.encode(), secret.encode())
    if account is None or not matches:
        console.throttle.failed(throttle_key, address, now)
        return render(
            request,
            "login.html",
            principal=None,
            status=401,
            error=LOGIN_FAILED,
            next=nxt or "",
            access_key_id=key_id,
        )
    console.throttle.succeeded(throttle_key)
    ctx = console.ctx
    set_session(
        request,
        new_session(token=ctx.ids.token(32), now=now, account_id=account.id, access_key_id=key_id),
    )
    return redirect(request, nxt or "/sites")


async def logout(request: Request) -> Response:
    await read_form(request)
    ctx = console_of(request).ctx
    set_session(request, new_session(token=ctx.ids.token(32), now=ctx.clock.now()))
    return redirect(request, "/login", notice="logged-out")


async def home(request: Request) -> Response:
    await require_login(request)
    return redirect(request, "/sites")
