"""Custom CA certificates: shown in the list, details, delete (refused while bound)."""

from __future__ import annotations

from tests.console.conftest import ConsoleClient, World, text_of, upload_ca

from certgate.services import ca_certificates


async def test_uploaded_cas_are_listed_with_their_bindings(world: World, alice: ConsoleClient) -> None:
    ca = upload_ca(world)
    ca_certificates.set_hostnames(
        world.ctx, world.alice.account_id, world.alice.site_id, ca.id, ["api.example.com"]
    )
    page = await alice.get(world.alice.certs_url)
    text = text_of(page.text)
    assert "Partner Root" in text
    assert ca.cert.fingerprint_sha256 in text
    assert "UploadClientCaCertificate" in text  # upload is API-only, as the seed says
    row = page.text[page.text.index("Partner Root") :]
    assert "api.example.com" in row[: row.index("</tr>")]


async def test_details_and_delete(world: World, alice: ConsoleClient) -> None:
    ca = upload_ca(world)
    ca_certificates.set_hostnames(
        world.ctx, world.alice.account_id, world.alice.site_id, ca.id, ["api.example.com"]
    )
    url = f"/console/sites/{world.alice.site_id}/ssl/ca-certificates/{ca.id}"
    page = await alice.get(url)
    assert page.status_code == 200
    text = text_of(page.text)
    assert ca.cert.serial_hex in text and ca.cert.subject_dn in text and "api.example.com" in text

    refused = await alice.post(url + "/delete")
    assert refused.status_code == 409
    assert f"CA certificate {ca.id} is still bound to api.example.com; unbind it first" in text_of(
        refused.text
    )

    ca_certificates.set_hostnames(world.ctx, world.alice.account_id, world.alice.site_id, ca.id, [])
    done = await alice.post(url + "/delete")
    assert done.headers["location"] == world.alice.certs_url + "?notice=ca-deleted"
    assert (
        ca_certificates.list_ca_certificates(world.ctx, world.alice.account_id, world.alice.site_id)[2] == 0
    )


async def test_another_accounts_ca_is_not_found(world: World, alice: ConsoleClient) -> None:
    theirs = upload_ca(world, world.bob, "Bob Root")
    await alice.get(world.alice.certs_url)
    for site in (world.bob, world.alice):
        url = f"/console/sites/{site.site_id}/ssl/ca-certificates/{theirs.id}"
        assert (await alice.get(url)).status_code == 404
        assert (await alice.post(url + "/delete")).status_code == 404
    assert ca_certificates.list_ca_certificates(world.ctx, world.bob.account_id, world.bob.site_id)[2] == 1
