"""The console application: its routes, middleware and error pages.

``create_console`` returns a Starlette app meant to be mounted at ``/console`` by the control
plane (``Mount("/console", app=create_console(...))``); every link it renders is relative to
where it is mounted.
"""

from __future__ import annotations

import datetime as dt

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from certgate.console import auth, ca_certificates, certificates, hostnames, rules, sites
from certgate.console.session import CSRFRejected, SessionCodec
from certgate.console.throttle import LoginThrottle, ThrottleSettings
from certgate.console.web import (
    STATIC_DIR,
    Console,
    ConsoleMiddleware,
    ConsoleSettings,
    LoginRequired,
    make_templates,
    on_domain_error,
    on_http_error,
    on_login_required,
)
from certgate.errors import CertGateError
from certgate.services.context import ServiceContext

_SITE = "/sites/{site_id:int}"
_CERTS = _SITE + "/ssl/client-certificates"
_CAS = _SITE + "/ssl/ca-certificates/{ca_id:str}"
_RULES = _SITE + "/security/waf-rules"
GET, POST = ["GET"], ["POST"]


def console_routes() -> list[BaseRoute]:
    return [
        Route("/", auth.home, methods=GET),
        Route("/login", auth.login_page, methods=GET),
        Route("/login", auth.login, methods=POST),
        Route("/logout", auth.logout, methods=POST),
        Route("/sites", sites.sites_page, methods=GET),
        Route(_SITE, sites.site_page, methods=GET),
        Route(_CERTS, certificates.list_page, methods=GET),
        Route(_CERTS + "/create", certificates.create_page, methods=GET),
        Route(_CERTS + "/create", certificates.create, methods=POST),
        Route(_CERTS + "/domain-names", hostnames.hostnames_page, methods=GET),
        Route(_CERTS + "/domain-names", hostnames.save_hostnames, methods=POST),
        Route(_CERTS + "/mtls-rule", rules.mtls_rule_page, methods=GET),
        Route(_CERTS + "/mtls-rule", rules.create_mtls_rule, methods=POST),
        Route(_CERTS + "/{cert_id:str}", certificates.detail_page, methods=GET),
        Route(_CERTS + "/{cert_id:str}/revoke", certificates.revoke_page, methods=GET),
        Route(_CERTS + "/{cert_id:str}/revoke", certificates.revoke, methods=POST),
        Route(_CERTS + "/{cert_id:str}/activate", certificates.activate, methods=POST),
        Route(_CERTS + "/{cert_id:str}/delete", certificates.delete, methods=POST),
        Route(_CAS, ca_certificates.detail_page, methods=GET),
        Route(_CAS + "/delete", ca_certificates.delete, methods=POST),
        Route(_CAS + "/domain-names", hostnames.hostnames_page, methods=GET),
        Route(_CAS + "/domain-names", hostnames.save_hostnames, methods=POST),
        Route(_RULES, rules.rules_page, methods=GET),
        Route(_RULES + "/new", rules.new_rule_page, methods=GET),
        Route(_RULES + "/new", rules.save_rule, methods=POST),
        Route(_RULES + "/{rule_id:int}/edit", rules.edit_rule_page, methods=GET),
        Route(_RULES + "/{rule_id:int}/edit", rules.save_rule, methods=POST),
        Route(_RULES + "/{rule_id:int}/status", rules.set_status, methods=POST),
        Route(_RULES + "/{rule_id:int}/delete", rules.delete_rule, methods=POST),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def create_console(
    ctx: ServiceContext,
    *,
    secret_key: bytes,
    secure_cookies: bool,
    session_max_age: dt.timedelta = dt.timedelta(hours=8),
    login_throttle: ThrottleSettings | None = None,
) -> Starlette:
    """The web console over ``ctx``'s use cases.

    ``secret_key`` signs session cookies: one per installation, at least 32 random bytes, the
    same on every control-plane replica (see ``load_or_create_secret``). Set ``secure_cookies``
    whenever the console is reached over HTTPS. ``login_throttle`` bounds failed logins (see
    ``certgate.console.throttle``).
    """
    settings = ConsoleSettings(secure_cookies=secure_cookies, session_max_age=session_max_age)
    console = Console(
        ctx=ctx,
        codec=SessionCodec(secret_key, max_age=session_max_age),
        settings=settings,
        templates=make_templates(),
        throttle=LoginThrottle(login_throttle),
    )
    app = Starlette(
        routes=console_routes(),
        middleware=[Middleware(ConsoleMiddleware, console=console)],
        exception_handlers={
            LoginRequired: on_login_required,
            CSRFRejected: on_domain_error,
            CertGateError: on_domain_error,
            HTTPException: on_http_error,
        },
    )
    app.state.console = console
    return app
