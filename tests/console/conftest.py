"""Fixtures for the console tests: a real ServiceContext on SQLite with two accounts (alice and
bob, each with a site and records), the console mounted at ``/console``, and an in-process HTTP
client that keeps cookies and the CSRF token of the last page it saw.

The client is ``httpx.AsyncClient`` over ``httpx.ASGITransport``, which is what Starlette's
TestClient wraps; TestClient itself warns (httpx → httpx2) and warnings are errors here.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from certgate.bootstrap import RuleLanguageValidator
from certgate.clock import UTC, Clock, FixedClock
from certgate.console import create_console
from certgate.ids import AccountId, RandomIdFactory, SiteId
from certgate.model import ClientCACertificate
from certgate.pki.authority import create_certificate_authority
from certgate.pki.pem import certificate_to_pem
from certgate.services import accounts, ca_certificates, sites
from certgate.services.context import ServiceContext
from certgate.storage import open_store
from certgate.storage.keystore import AESGCMSealer

START = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
SECRET_KEY = b"console-test-secret-" + b"x" * 20
BASE_URL = "http://testserver"

_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')


@dataclass(frozen=True)
class Tenant:
    name: str
    account_id: AccountId
    key_id: str
    secret: str
    site_id: SiteId
    site_name: str

    @property
    def site_url(self) -> str:
        return f"/console/sites/{self.site_id}"

    @property
    def certs_url(self) -> str:
        return f"/console/sites/{self.site_id}/ssl/client-certificates"

    @property
    def rules_url(self) -> str:
        return f"/console/sites/{self.site_id}/security/waf-rules"


@dataclass
class World:
    ctx: ServiceContext
    clock: FixedClock
    alice: Tenant
    bob: Tenant
    db_path: str


def make_tenant(ctx: ServiceContext, name: str, site_name: str, hostnames: list[str]) -> Tenant:
    new = accounts.create_account(ctx, name)
    site = sites.create_site(
        ctx,
        new.account.id,
        name=site_name,
        access_type="NS",
        coverage="global",
        instance_id=new.account.instance_id,
    )
    for hostname in hostnames:
        sites.create_record(
            ctx,
            new.account.id,
            site.id,
            name=hostname,
            rtype="A/AAAA",
            ttl=1,
            value="127.0.0.1",
            proxied=True,
        )
    return Tenant(name, new.account.id, new.access_key_id, new.access_key_secret, site.id, site.name)


def upload_ca(world: World, tenant: Tenant | None = None, name: str = "Partner Root") -> ClientCACertificate:
    tenant = tenant or world.alice
    authority = create_certificate_authority(name, now=world.clock.now(), validity_days=3650)
    return ca_certificates.upload_ca_certificate(
        world.ctx,
        tenant.account_id,
        tenant.site_id,
        certificate_pem=certificate_to_pem(authority.certificate),
        name=name,
    )


def console_app(ctx: ServiceContext, *, secure_cookies: bool = False) -> Starlette:
    """The console mounted where the control plane mounts it."""
    return Starlette(
        routes=[
            Mount("/console", app=create_console(ctx, secret_key=SECRET_KEY, secure_cookies=secure_cookies))
        ]
    )


def make_context(url: str, clock: Clock) -> ServiceContext:
    return ServiceContext(
        store=open_store(url),
        sealer=AESGCMSealer(b"m" * 32),
        clock=clock,
        ids=RandomIdFactory(),
        expressions=RuleLanguageValidator(),
    )


@pytest.fixture(scope="session")
def _populated_sqlite_file(
    _migrated_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Tenant, Tenant]:
    """Alice and bob in a database made once per session; each test works on a copy (making the
    CAs and edge certificates again for every test costs more than the tests themselves)."""
    path = tmp_path_factory.mktemp("console-world") / "world.db"
    shutil.copyfile(_migrated_sqlite_file, path)
    ctx = make_context(f"sqlite:///{path}", FixedClock(START))
    try:
        accounts.ensure_edge_authority(ctx)
        alice = make_tenant(ctx, "alice", "example.com", ["api.example.com", "www.example.com"])
        bob = make_tenant(ctx, "bob", "other.org", ["api.other.org"])
    finally:
        ctx.store.close()  # closing the last connection folds the WAL into the file
    return path, alice, bob


@pytest.fixture
def world(tmp_path: Path, _populated_sqlite_file: tuple[Path, Tenant, Tenant]) -> Iterator[World]:
    template, alice, bob = _populated_sqlite_file
    path = tmp_path / "certgate.db"
    shutil.copyfile(template, path)
    clock = FixedClock(START)
    ctx = make_context(f"sqlite:///{path}", clock)
    try:
        yield World(ctx, clock, alice, bob, str(path))
    finally:
        ctx.store.close()


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


def text_of(page: str) -> str:
    """The page's text with tags removed and entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


class ConsoleClient:
    """A browser-like client: cookies, and the CSRF token of the last page seen."""

    def __init__(self, app: Starlette, base_url: str = BASE_URL) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
        self.page_fields: dict[str, str] = {}

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.get(path, **kwargs)
        self._remember(response)
        return response

    async def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf and "csrf_token" not in form:
            form["csrf_token"] = self.page_fields["csrf_token"]
        response = await self.http.post(path, data=form, **kwargs)
        self._remember(response)
        return response

    def _remember(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("text/html"):
            found = hidden_fields(response.text)
            if "csrf_token" in found:
                self.page_fields = found

    async def login(self, tenant: Tenant) -> httpx.Response:
        await self.get("/console/login")
        response = await self.post(
            "/console/login", {"access_key_id": tenant.key_id, "access_key_secret": tenant.secret, "next": ""}
        )
        assert response.status_code == 303, response.text
        return response

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def anonymous(world: World) -> AsyncIterator[ConsoleClient]:
    client = ConsoleClient(console_app(world.ctx))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def alice(world: World, anonymous: ConsoleClient) -> ConsoleClient:
    """A client logged in as alice."""
    await anonymous.login(world.alice)
    return anonymous
