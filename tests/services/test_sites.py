"""Sites and records, and the edge certificates proxied records get."""

from __future__ import annotations

import pytest

from certgate.errors import AlreadyExists, InvalidArgument, NotFound
from certgate.services import sites


def test_site_names_are_unique_and_instance_must_match(world) -> None:
    ctx = world.ctx
    with ctx.store.transaction() as tx:
        other = tx.get_account(world.other_account)
        own = tx.get_account(world.account)
    assert other is not None and own is not None
    with pytest.raises(AlreadyExists):
        sites.create_site(
            ctx,
            world.other_account,
            name="Example.COM",
            access_type="NS",
            coverage="global",
            instance_id=other.instance_id,
        )
    with pytest.raises(NotFound):
        sites.create_site(
            ctx,
            world.account,
            name="new.org",
            access_type="NS",
            coverage="global",
            instance_id=other.instance_id,
        )
    with pytest.raises(InvalidArgument):
        sites.create_site(
            ctx,
            world.account,
            name="new.org",
            access_type="XX",
            coverage="global",
            instance_id=own.instance_id,
        )


def test_list_sites_search_modes(world) -> None:
    ctx = world.ctx
    with ctx.store.transaction() as tx:
        own = tx.get_account(world.account)
    assert own is not None
    sites.create_site(
        ctx,
        world.account,
        name="example.net",
        access_type="CNAME",
        coverage="global",
        instance_id=own.instance_id,
    )
    names = lambda **kw: sorted(s.name for s in sites.list_sites(ctx, world.account, **kw)[0])  # noqa: E731
    assert names() == ["example.com", "example.net"]
    assert names(name="example.com") == ["example.com"]
    assert names(name="example", match="prefix") == ["example.com", "example.net"]
    assert names(name=".net", match="suffix") == ["example.net"]
    assert names(name="ample", match="fuzzy") == ["example.com", "example.net"]


def test_records_belong_to_their_site_and_get_an_edge_certificate(world) -> None:
    ctx = world.ctx
    with pytest.raises(InvalidArgument) as err:
        sites.create_record(
            ctx,
            world.account,
            world.site,
            name="api.other.org",
            rtype="A/AAAA",
            ttl=1,
            value="127.0.0.1",
            proxied=True,
        )
    assert err.value.reason == "hostname.foreign_site"
    with pytest.raises(InvalidArgument):
        sites.create_record(
            ctx,
            world.account,
            world.site,
            name="x.example.com",
            rtype="A/AAAA",
            ttl=1,
            value="not-an-ip",
            proxied=True,
        )
    with pytest.raises(AlreadyExists):
        sites.create_record(
            ctx,
            world.account,
            world.site,
            name="API.example.com",
            rtype="A/AAAA",
            ttl=1,
            value="127.0.0.1",
            proxied=True,
        )
    with ctx.store.transaction() as tx:
        edge = tx.get_edge_certificate("api.example.com")
    assert edge is not None and not edge.uploaded and "BEGIN CERTIFICATE" in edge.chain_pem
    _, records, total = sites.list_records(ctx, world.account, world.site)
    assert total == 2
    sites.delete_record(ctx, world.account, records[0].id)
    with ctx.store.transaction() as tx:
        assert tx.get_edge_certificate(records[0].name) is None
    with pytest.raises(NotFound):
        sites.delete_record(ctx, world.other_account, records[1].id)


def test_delete_site_is_scoped_to_the_account(world) -> None:
    with pytest.raises(NotFound):
        sites.delete_site(world.ctx, world.other_account, world.site)
    sites.delete_site(world.ctx, world.account, world.site)
    with pytest.raises(NotFound):
        sites.get_site(world.ctx, world.account, world.site)
