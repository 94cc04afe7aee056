"""Domain Names → Configure, for the managed CA and for a custom CA."""

from __future__ import annotations

import pytest
from tests.console.conftest import ConsoleClient, World, text_of, upload_ca

from certgate.console.hostnames import chosen_hostnames
from certgate.errors import CertGateError
from certgate.services import ca_certificates


def bound(world: World, ca_id: str | None = None) -> tuple[str, ...]:
    _, binding = ca_certificates.get_hostnames(world.ctx, world.alice.account_id, world.alice.site_id, ca_id)
    return binding.hostnames


async def test_configure_lists_the_sites_hostnames_and_the_seeds_notes(
    world: World, alice: ConsoleClient
) -> None:
    page = await alice.get(world.alice.certs_url + "/domain-names")
    text = text_of(page.text)
    assert "You can enter up to 50 domain names at a time." in text
    assert "The domain name that you enter must be the one of your website" in text
    assert '<label for="hostname-1">api.example.com</label>' in page.text
    assert 'data-limit="50"' in page.text


async def test_binding_a_hostname(world: World, alice: ConsoleClient) -> None:
    await alice.get(world.alice.certs_url + "/domain-names")
    response = await alice.post(
        world.alice.certs_url + "/domain-names",
        {"hostname": ["api.example.com"], "other_hostnames": "*.example.com\nAPI.example.com"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == world.alice.certs_url + "?notice=hostnames"
    assert bound(world) == ("api.example.com", "*.example.com")
    page = await alice.get(response.headers["location"])
    assert "The domain names were saved." in text_of(page.text)
    assert "<li>api.example.com</li>" in page.text
    again = await alice.get(world.alice.certs_url + "/domain-names")
    assert 'value="api.example.com" checked' in again.text
    assert "*.example.com</textarea>" in again.text


async def test_clearing_the_list(world: World, alice: ConsoleClient) -> None:
    ca_certificates.set_hostnames(
        world.ctx, world.alice.account_id, world.alice.site_id, None, ["api.example.com"]
    )
    await alice.get(world.alice.certs_url + "/domain-names")
    await alice.post(world.alice.certs_url + "/domain-names", {"other_hostnames": ""})
    assert bound(world) == ()


@pytest.mark.parametrize(
    "typed",
    [
        "\n".join(f"h{i}.example.com" for i in range(51)),
        "api.other.org",
        "api.example.com:8443",
        "bad_name!.example.com",
    ],
)
async def test_refusals_carry_the_api_message_and_change_nothing(
    world: World, alice: ConsoleClient, typed: str
) -> None:
    ca_certificates.set_hostnames(
        world.ctx, world.alice.account_id, world.alice.site_id, None, ["www.example.com"]
    )
    with pytest.raises(CertGateError) as expected:
        ca_certificates.set_hostnames(
            world.ctx, world.alice.account_id, world.alice.site_id, None, typed.split("\n")
        )
    await alice.get(world.alice.certs_url + "/domain-names")
    response = await alice.post(world.alice.certs_url + "/domain-names", {"other_hostnames": typed})
    assert response.status_code == 400
    assert expected.value.message in text_of(response.text)
    assert bound(world) == ("www.example.com",)
    # The form comes back as it was typed, so it can be corrected.
    assert typed.split("\n")[0] in response.text


async def test_a_custom_cas_hostnames(world: World, alice: ConsoleClient) -> None:
    ca = upload_ca(world)
    url = f"/console/sites/{world.alice.site_id}/ssl/ca-certificates/{ca.id}/domain-names"
    page = await alice.get(url)
    assert "Custom CA" in text_of(page.text) and ca.name in text_of(page.text)
    response = await alice.post(url, {"hostname": ["www.example.com"]})
    assert (
        response.headers["location"]
        == f"/console/sites/{world.alice.site_id}/ssl/ca-certificates/{ca.id}?notice=hostnames"
    )
    assert bound(world, ca.id) == ("www.example.com",)
    assert bound(world) == ()


async def test_another_accounts_binding_is_not_found(world: World, alice: ConsoleClient) -> None:
    await alice.get(world.alice.certs_url)
    response = await alice.post(world.bob.certs_url + "/domain-names", {"other_hostnames": "api.other.org"})
    assert response.status_code == 404
    _, binding = ca_certificates.get_hostnames(world.ctx, world.bob.account_id, world.bob.site_id, None)
    assert binding.hostnames == ()


def test_chosen_hostnames_keeps_order_and_folds_exact_repeats() -> None:
    assert chosen_hostnames(["a.example.com"], "b.example.com, a.example.com\n\n c.example.com ") == [
        "a.example.com",
        "b.example.com",
        "c.example.com",
    ]
