"""Fixtures for the API tests: a live uvicorn server on loopback over a real store, two accounts
(alice and bob, each with a site and records), official SDK clients for both, a raw client with
our own signer for the cases the SDK cannot produce, and a recorder of the exact JSON each
response carried (the SDK copies values without checking types, so tests read the raw bytes).

The server's clock is a ``FixedClock`` set to the real time when the fixture starts (the SDK
signs with the real clock); tests that judge the signature window move it explicitly.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alibabacloud_esa20240910.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
from alibabacloud_tea_openapi.models import Config
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certgate.api.app import create_app
from certgate.api.auth import sign_acs3
from certgate.api.registry import REGISTRY
from certgate.api.server import BackgroundServer
from certgate.api.wire import check_body
from certgate.bootstrap import RuleLanguageValidator
from certgate.clock import FixedClock, SystemClock
from certgate.ids import RandomIdFactory
from certgate.services import accounts, sites
from certgate.services.context import ServiceContext
from certgate.settings import ControlPlaneSettings
from certgate.storage import open_store
from certgate.storage.keystore import AESGCMSealer

EDGE_TOKEN = "edge-token-for-tests-" + "x" * 20
# The SDK (darabonba) calls datetime.utcnow() when it signs; pytest turns warnings into errors.
SDK_WARNING = "ignore:datetime.datetime.utcnow:DeprecationWarning"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents:
            item.add_marker(pytest.mark.filterwarnings(SDK_WARNING))


ERROR_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


class Recorder:
    """ASGI wrapper keeping the raw JSON of every response by its request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.bodies: dict[str, tuple[str, int, bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        action = dict(scope["headers"]).get(b"x-acs-action", b"").decode()
        state: dict[str, Any] = {"chunks": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["rid"] = dict(message.get("headers", [])).get(b"x-acs-request-id", b"").decode()
            elif message["type"] == "http.response.body":
                state["chunks"].append(message.get("body", b""))
                if not message.get("more_body") and state.get("rid"):
                    self.bodies[state["rid"]] = (action, state["status"], b"".join(state["chunks"]))
            await send(message)

        await self.app(scope, receive, capture)


@dataclass
class Tenant:
    name: str
    account_id: str
    instance_id: str
    key_id: str
    secret: str
    site_id: int
    site_name: str
    client: Client


@dataclass
class Api:
    ctx: ServiceContext
    clock: FixedClock
    settings: ControlPlaneSettings
    server: BackgroundServer
    recorder: Recorder
    alice: Tenant
    bob: Tenant
    http: httpx.Client
    edge_token: str = EDGE_TOKEN

    def sdk(self, key_id: str, secret: str, **config: Any) -> Client:
        return Client(
            Config(
                access_key_id=key_id,
                access_key_secret=secret,
                endpoint=self.server.endpoint,
                protocol="http",
                **config,
            )
        )

    def tenant(self, name: str, site_name: str, hostnames: tuple[str, ...] = ()) -> Tenant:
        """Another account with a site of its own (for tests that need a clean slate)."""
        return _tenant(self.ctx, name, site_name, hostnames, self.server.endpoint)

    def raw_json(self, response: Any) -> dict[str, Any]:
        """The exact JSON of an SDK response, checked against the action's declared fields."""
        rid = response.headers["x-acs-request-id"]
        action, status, raw = self.recorder.bodies[rid]
        assert status == 200
        body: dict[str, Any] = json.loads(raw)
        declared = REGISTRY.get(action)
        assert declared is not None
        problems = check_body(declared.response, body)
        assert problems == [], f"{action}: {problems}"
        assert body["RequestId"] == rid == response.body.request_id
        return body

    def raw(
        self,
        action: str,
        *,
        tenant: Tenant | None = None,
        method: str = "POST",
        query: list[tuple[str, str]] | None = None,
        form: list[tuple[str, str]] | None = None,
        key_id: str | None = None,
        secret: str | None = None,
        date: dt.datetime | None = None,
        nonce: str | None = None,
        sign_body: bytes | None = None,
        send_query: list[tuple[str, str]] | None = None,
        drop: tuple[str, ...] = (),
        override: dict[str, str] | None = None,
        version: str = "2024-09-10",
    ) -> httpx.Response:
        """A request signed by our own ACS3 signer, with knobs to break it on purpose:
        ``sign_body``/``send_query`` sign one thing and send another, ``drop`` removes headers
        after signing, ``override`` replaces header values after signing."""
        who = tenant or self.alice
        query = query or []
        body = httpx.QueryParams(form).__str__().encode() if form else b""
        headers = sign_acs3(
            method=method,
            host=self.server.endpoint,
            action=action,
            query=query,
            body=body if sign_body is None else sign_body,
            access_key_id=key_id or who.key_id,
            secret=secret if secret is not None else who.secret,
            date=date or self.clock.now(),
            nonce=nonce or secrets.token_hex(16),
            version=version,
            content_type="application/x-www-form-urlencoded" if form else None,
        )
        for name in drop:
            headers.pop(name, None)
        headers.update(override or {})
        sent_query = query if send_query is None else send_query
        url = self.server.url + "/" + ("?" + str(httpx.QueryParams(sent_query)) if sent_query else "")
        return self.http.request(method, url, headers=headers, content=body)


def _tenant(
    ctx: ServiceContext, name: str, site_name: str, hostnames: tuple[str, ...], endpoint: str
) -> Tenant:
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
    client = Client(
        Config(
            access_key_id=new.access_key_id,
            access_key_secret=new.access_key_secret,
            endpoint=endpoint,
            protocol="http",
        )
    )
    return Tenant(
        name,
        new.account.id,
        new.account.instance_id,
        new.access_key_id,
        new.access_key_secret,
        site.id,
        site.name,
        client,
    )


def build_api(url: str, data_dir: Path, **settings_overrides: Any) -> Iterator[Api]:
    clock = FixedClock(SystemClock().now())
    store = open_store(url)
    try:
        ctx = ServiceContext(
            store=store,
            sealer=AESGCMSealer(secrets.token_bytes(32)),
            clock=clock,
            ids=RandomIdFactory(),
            expressions=RuleLanguageValidator(),
        )
        settings = ControlPlaneSettings(data_dir=data_dir, database_url=url, **settings_overrides)
        recorder = Recorder(create_app(ctx, settings, edge_token=EDGE_TOKEN))
        with BackgroundServer(recorder) as server:
            accounts.ensure_edge_authority(ctx)
            alice = _tenant(
                ctx, "alice", "example.com", ("api.example.com", "www.example.com"), server.endpoint
            )
            bob = _tenant(ctx, "bob", "other.org", ("api.other.org",), server.endpoint)
            with httpx.Client(timeout=10) as http:
                yield Api(ctx, clock, settings, server, recorder, alice, bob, http)
    finally:
        store.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A live server over a SQLite store, shared by the tests of one module."""
    data_dir = tmp_path_factory.mktemp("api")
    yield from build_api(f"sqlite:///{data_dir / 'certgate.db'}", data_dir)


@pytest.fixture(scope="session")
def build_api_factory() -> Callable[..., Iterator[Api]]:
    """``build_api(url, data_dir, **settings)`` for tests that need a server of their own."""
    return build_api


@pytest.fixture(scope="module")
def memory_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from build_api("memory://", tmp_path_factory.mktemp("api-memory"))


@pytest.fixture(scope="module")
def postgres_api(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[Api]:
    """A live server over a fresh schema of the test PostgreSQL server (dropped afterwards)."""
    schema = f"certgate_api_{secrets.token_hex(6)}"
    admin = make_url(postgres_server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(postgres_server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield from build_api(url.render_as_string(hide_password=False), tmp_path_factory.mktemp("api-pg"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def expect_error() -> Callable[..., ClientException | ServerException]:
    """``expect_error(call, code, status)``: the SDK exception, with ESA's error body checked."""

    def check(call: Callable[[], Any], code: str, status: int) -> ClientException | ServerException:
        with pytest.raises((ClientException, ServerException)) as info:
            call()
        exc = info.value
        assert (exc.code, exc.status_code) == (code, status), f"{exc.code} {exc.status_code}: {exc.message}"
        body = {k: v for k, v in exc.data.items() if k != "statusCode"}
        assert set(body) == ERROR_KEYS
        assert all(isinstance(v, str) and v for v in body.values())
        assert "Traceback" not in str(body)
        return exc

    return check
