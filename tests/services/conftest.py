"""Fixtures for use-case tests: a full ServiceContext over a chosen store, a fixed clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certgate.bootstrap import RuleLanguageValidator
from certgate.clock import UTC, FixedClock
from certgate.ids import AccountId, RandomIdFactory, SiteId
from certgate.services import accounts, sites
from certgate.services.context import ServiceContext
from certgate.storage import open_store
from certgate.storage.keystore import AESGCMSealer

START = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@dataclass
class World:
    ctx: ServiceContext
    clock: FixedClock
    account: AccountId
    site: SiteId
    other_account: AccountId
    other_site: SiteId


def make_context(url: str, clock: FixedClock) -> ServiceContext:
    return ServiceContext(
        store=open_store(url),
        sealer=AESGCMSealer(b"k" * 32),
        clock=clock,
        ids=RandomIdFactory(),
        expressions=RuleLanguageValidator(),
    )


def populate(ctx: ServiceContext, clock: FixedClock) -> World:
    accounts.ensure_edge_authority(ctx)
    a = accounts.create_account(ctx, "alice")
    b = accounts.create_account(ctx, "bob")
    site_a = sites.create_site(
        ctx,
        a.account.id,
        name="example.com",
        access_type="NS",
        coverage="global",
        instance_id=a.account.instance_id,
    )
    site_b = sites.create_site(
        ctx,
        b.account.id,
        name="other.org",
        access_type="NS",
        coverage="global",
        instance_id=b.account.instance_id,
    )
    for name in ("api.example.com", "www.example.com"):
        sites.create_record(
            ctx, a.account.id, site_a.id, name=name, rtype="A/AAAA", ttl=1, value="127.0.0.1", proxied=True
        )
    sites.create_record(
        ctx,
        b.account.id,
        site_b.id,
        name="api.other.org",
        rtype="A/AAAA",
        ttl=1,
        value="127.0.0.1",
        proxied=True,
    )
    return World(ctx, clock, a.account.id, site_a.id, b.account.id, site_b.id)


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    clock = FixedClock(START)
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'certgate.db'}"
    ctx = make_context(url, clock)
    try:
        yield populate(ctx, clock)
    finally:
        ctx.store.close()
