"""Websites: the list, a site's overview and its left navigation; one account never sees another's."""

from __future__ import annotations

import pytest
from tests.console.conftest import ConsoleClient, World, text_of


async def test_websites_lists_only_the_accounts_sites(world: World, alice: ConsoleClient) -> None:
    page = await alice.get("/console/sites")
    assert page.status_code == 200
    assert f'href="/console/sites/{world.alice.site_id}">example.com</a>' in page.text
    assert "other.org" not in page.text


async def test_site_overview_has_the_left_navigation(world: World, alice: ConsoleClient) -> None:
    page = await alice.get(world.alice.site_url)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "api.example.com" in text and "www.example.com" in text
    assert "SSL/TLS" in text
    assert (
        f'<a href="/console/sites/{world.alice.site_id}/ssl/client-certificates">Client Certificates</a>'
        in page.text
    )
    assert 'aria-current="page">Overview</a>' in page.text


@pytest.mark.parametrize(
    "suffix",
    [
        "",
        "/ssl/client-certificates",
        "/ssl/client-certificates/create",
        "/ssl/client-certificates/domain-names",
        "/ssl/client-certificates/mtls-rule",
        "/security/waf-rules",
        "/security/waf-rules/new",
    ],
)
async def test_another_accounts_site_is_not_found(world: World, alice: ConsoleClient, suffix: str) -> None:
    page = await alice.get(world.bob.site_url + suffix)
    assert page.status_code == 404
    assert f"site {world.bob.site_id} does not exist" in text_of(page.text)
    assert "other.org" not in page.text


async def test_a_site_that_does_not_exist_looks_the_same(alice: ConsoleClient) -> None:
    page = await alice.get("/console/sites/999")
    assert page.status_code == 404
    assert "site 999 does not exist" in text_of(page.text)
