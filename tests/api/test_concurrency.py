"""Parallel creates and revokes through the API leave a consistent store: every success counted
once, every loser of a race refused with the documented error, one version per change."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alibabacloud_esa20240910 import models as esa
from alibabacloud_tea_openapi.exceptions import ClientException

from certgate.services import certificates

PARALLEL = 50


@pytest.fixture(params=["api", pytest.param("postgres_api", marks=pytest.mark.postgres)])
def any_api(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def outcome(call: Any) -> str:
    try:
        call()
    except ClientException as exc:
        return exc.code
    return "ok"


def test_parallel_creates_and_revokes(any_api: Any) -> None:
    api = any_api
    tenant = api.tenant("crowd", "crowd.example")
    clients = [api.sdk(tenant.key_id, tenant.secret) for _ in range(PARALLEL)]
    start = api.ctx.store.current_version()

    def create(i: int) -> str:
        request = esa.CreateClientCertificateRequest(
            site_id=tenant.site_id, pkey_type="ECDSA", validity_days=30
        )
        return str(clients[i].create_client_certificate(request).body.id)

    with ThreadPoolExecutor(PARALLEL) as pool:
        ids = list(pool.map(create, range(PARALLEL)))
    assert len(set(ids)) == PARALLEL
    assert api.ctx.store.current_version() == start + PARALLEL
    listed = tenant.client.list_client_certificates(
        esa.ListClientCertificatesRequest(site_id=tenant.site_id, page_size=100)
    ).body
    assert listed.total_count == PARALLEL and {c.id for c in listed.result} == set(ids)

    # Every certificate revoked twice at the same time: exactly one of each pair wins.
    def revoke(i: int) -> str:
        cert_id = ids[i % PARALLEL]
        request = esa.RevokeClientCertificateRequest(site_id=tenant.site_id, id=cert_id)
        return outcome(lambda: clients[i % PARALLEL].revoke_client_certificate(request))

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = Counter(pool.map(revoke, range(2 * PARALLEL)))
    assert results == {"ok": PARALLEL, "Certificate.StatusError": PARALLEL}
    assert api.ctx.store.current_version() == start + 2 * PARALLEL

    _, items, total = certificates.list_client_certificates(
        api.ctx, tenant.account_id, tenant.site_id, page=1, size=100
    )
    assert total == PARALLEL and {c.status.value for c in items} == {"revoked"}
    with api.ctx.store.transaction() as tx:
        revoked = {r.serial_hex for r in tx.list_revoked_serials() if r.authority_id == items[0].authority_id}
    assert revoked == {c.cert.serial_hex for c in items}

    # Half re-activated, half deleted, all at once.
    def settle(i: int) -> str:
        cert_id = ids[i]
        if i % 2:
            return outcome(
                lambda: clients[i].activate_client_certificate(
                    esa.ActivateClientCertificateRequest(site_id=tenant.site_id, id=cert_id)
                )
            )
        return outcome(
            lambda: clients[i].delete_client_certificate(
                esa.DeleteClientCertificateRequest(site_id=tenant.site_id, id=cert_id)
            )
        )

    with ThreadPoolExecutor(PARALLEL) as pool:
        assert set(pool.map(settle, range(PARALLEL))) == {"ok"}
    _, items, total = certificates.list_client_certificates(
        api.ctx, tenant.account_id, tenant.site_id, page=1, size=100
    )
    assert total == PARALLEL // 2 and {c.status.value for c in items} == {"active"}
    with api.ctx.store.transaction() as tx:
        still_revoked = {
            r.serial_hex for r in tx.list_revoked_serials() if r.authority_id == items[0].authority_id
        }
    deleted = revoked - {c.cert.serial_hex for c in items}
    assert still_revoked == deleted  # deleted certificates stay revoked; re-activated ones do not
    assert api.ctx.store.current_version() == start + 3 * PARALLEL
