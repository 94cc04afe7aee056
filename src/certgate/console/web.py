"""Plumbing shared by every console page: the session middleware and security headers, the
login and CSRF checks, form reading, rendering, redirects and error pages.

Must never: put anything but the session into a cookie, let a dynamic page be kept by a cache
(every response but static assets is ``Cache-Control: no-store``), or accept a POST whose CSRF
token is not the session's (``read_form`` is the only way handlers read a form).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Final, TypeVar

import jinja2
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certgate.console.session import Session, SessionCodec, check_csrf, new_session
from certgate.console.throttle import LoginThrottle
from certgate.errors import (
    AlreadyExists,
    CertGateError,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    Unauthenticated,
)
from certgate.ids import AccountId
from certgate.model import Account
from certgate.services import accounts
from certgate.services.context import ServiceContext

SESSION_COOKIE: Final = "certgate_console"
CSRF_FIELD: Final = "csrf_token"
TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
STATIC_DIR: Final = Path(__file__).parent / "static"

_SESSION: Final = "certgate.console.session"
_NEW_SESSION: Final = "certgate.console.new_session"

# No inline script or style anywhere, so the policy can forbid both; nothing comes from
# another origin, so nothing else is allowed either.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)

#: Confirmations shown after a redirect, chosen by a fixed code so no text is reflected.
NOTICES: Final = {
    "logged-out": "You have logged out.",
    "revoked": "The certificate was revoked.",
    "activated": "The certificate was activated.",
    "deleted": "The certificate was deleted.",
    "hostnames": "The domain names were saved.",
    "ca-deleted": "The CA certificate was deleted.",
    "rule-created": "The rule was created.",
    "rule-saved": "The rule was saved.",
    "rule-on": "The rule was turned on.",
    "rule-off": "The rule was turned off.",
    "rule-deleted": "The rule was deleted.",
}

# HTTP status of the page that shows a domain error; the API keeps its own table for ESA codes.
_ERROR_STATUS: Final[tuple[tuple[type[CertGateError], int], ...]] = (
    (NotFound, 404),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (Conflict, 409),
    (AlreadyExists, 409),
    (QuotaExceeded, 400),
    (InvalidArgument, 400),
)

# ``next`` after login: a console-relative path, nothing that could leave the console.
_SAFE_NEXT = re.compile(r"^/(?!/)[A-Za-z0-9/_.-]{0,200}$")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    secure_cookies: bool
    """Mark the session cookie ``Secure`` (set it whenever the console is served over HTTPS)."""

    session_max_age: dt.timedelta = dt.timedelta(hours=8)
    """How long a login lasts; the session cookie is refused after that."""

    form_max_part_bytes: int = 128 * 1024
    """Largest form field accepted (a CSR is at most 64 KiB, PRODUCT §6)."""

    form_max_fields: int = 200
    """Most form fields accepted in one post (a binding has at most 50 names plus a few)."""

    page_size: int = 20
    """Rows per page in the console's lists."""


@dataclass(frozen=True, slots=True)
class Console:
    """What every handler needs; kept in ``app.state.console``."""

    ctx: ServiceContext
    codec: SessionCodec
    settings: ConsoleSettings
    templates: jinja2.Environment
    throttle: LoginThrottle


@dataclass(frozen=True, slots=True)
class Principal:
    """The logged-in caller of one request."""

    account: Account
    access_key_id: str

    @property
    def account_id(self) -> AccountId:
        return self.account.id


class LoginRequired(Exception):
    """Raised by ``require_login``; answered with a redirect to the login page."""


def status_for(error: CertGateError) -> int:
    for kind, status in _ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return 500


def format_time(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = format_time
    return env


# -- session middleware ---------------------------------------------------------------------


class ConsoleMiddleware:
    """Decodes the session cookie into the scope, writes it back when a handler replaced it,
    and adds the security and caching headers to every response."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        scope[_SESSION] = self.console.codec.decode(
            request.cookies.get(SESSION_COOKIE), now=self.console.ctx.clock.now()
        )
        root = scope.get("root_path", "")
        static = scope["path"].startswith(f"{root}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
                if not static:
                    headers["Cache-Control"] = "no-store"
                fresh: Session | None = scope.get(_NEW_SESSION)
                if fresh is not None:
                    headers.append("Set-Cookie", self._cookie(fresh, root))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _cookie(self, session: Session, root: str) -> str:
        cookie: SimpleCookie = SimpleCookie()
        cookie[SESSION_COOKIE] = self.console.codec.encode(session)
        morsel = cookie[SESSION_COOKIE]
        morsel["path"] = root or "/"
        morsel["httponly"] = True
        morsel["samesite"] = "Strict"
        morsel["max-age"] = str(int(self.console.settings.session_max_age.total_seconds()))
        if self.console.settings.secure_cookies:
            morsel["secure"] = True
        return morsel.OutputString()


# -- request helpers ------------------------------------------------------------------------


def console_of(request: Request) -> Console:
    console = request.app.state.console
    assert isinstance(console, Console)
    return console


def root_of(request: Request) -> str:
    root = request.scope.get("root_path", "")
    assert isinstance(root, str)
    return root


def session_of(request: Request) -> Session | None:
    session = request.scope.get(_SESSION)
    return session if isinstance(session, Session) else None


def set_session(request: Request, session: Session) -> None:
    request.scope[_SESSION] = session
    request.scope[_NEW_SESSION] = session


def ensure_session(request: Request) -> Session:
    """The caller's session, or a new anonymous one (so every form can carry a CSRF token)."""
    session = session_of(request)
    if session is None:
        console = console_of(request)
        session = new_session(token=console.ctx.ids.token(32), now=console.ctx.clock.now())
        set_session(request, session)
    return session


async def call(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (synchronous) use case off the event loop."""
    return await run_in_threadpool(fn, console_of(request).ctx, *args, **kwargs)


async def require_login(request: Request) -> Principal:
    """The logged-in caller; the access key is checked on every request, so disabling it ends
    every session made with it."""
    session = session_of(request)
    if session is None or session.account_id is None or session.access_key_id is None:
        raise LoginRequired
    try:
        account, _secret = await call(request, accounts.resolve_access_key, session.access_key_id)
    except Unauthenticated:
        raise LoginRequired from None
    if account.id != session.account_id:
        raise LoginRequired
    return Principal(account=account, access_key_id=session.access_key_id)


async def read_form(request: Request) -> FormData:
    """The posted form, after the CSRF check (raises ``CSRFRejected`` → 403)."""
    settings = console_of(request).settings
    form = await request.form(
        max_files=0, max_fields=settings.form_max_fields, max_part_size=settings.form_max_part_bytes
    )
    token = form.get(CSRF_FIELD)
    check_csrf(session_of(request), token if isinstance(token, str) else None)
    return form


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def fields(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def safe_next(value: str | None) -> str | None:
    return value if value and _SAFE_NEXT.match(value) and ".." not in value else None


def query_int(request: Request, name: str, *, default: int, minimum: int = 1, maximum: int = 10_000) -> int:
    raw = request.query_params.get(name, "")
    if not raw.isdigit():
        return default
    return min(max(int(raw), minimum), maximum)


# -- responses ------------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    console = console_of(request)
    session = ensure_session(request)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    csrf_field = Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, session.csrf_token)
    values.setdefault("error", None)
    html = console.templates.get_template(template).render(
        root=root_of(request),
        principal=principal,
        csrf_field=csrf_field,
        notice=notice,
        **values,
    )
    return HTMLResponse(html, status_code=status)


def redirect(request: Request, path: str, *, notice: str | None = None) -> RedirectResponse:
    assert notice is None or notice in NOTICES
    target = root_of(request) + path + (f"?notice={notice}" if notice else "")
    return RedirectResponse(target, status_code=303)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", principal=None, status=status, title=title, message=message)


# -- exception handlers ---------------------------------------------------------------------

_TITLES: Final = {
    400: "The request cannot be completed",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Not possible in the current state",
}


async def on_login_required(request: Request, exc: Exception) -> Response:
    path = request.url.path[len(root_of(request)) :]
    nxt = safe_next(path) if request.method == "GET" else None
    target = root_of(request) + "/login" + (f"?next={nxt}" if nxt and nxt != "/" else "")
    return RedirectResponse(target, status_code=303)


async def on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CertGateError)
    status = status_for(exc)
    return error_page(request, status, _TITLES.get(status, "Error"), exc.message)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "There is no such page.", 405: "This page does not accept that method."}.get(
        exc.status_code, str(exc.detail)
    )
    return error_page(request, exc.status_code, _TITLES.get(exc.status_code, "Error"), message)
