"""One full SDK session over every action on the memory store and on PostgreSQL (the action
modules run on SQLite), with exact JSON types checked on every response; and two replicas of the
control plane over one SQL database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import threading
import time
from typing import Any

import httpx
import pytest
from alibabacloud_esa20240910 import models as esa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certgate.api.app import create_app
from certgate.api.auth import sign_acs3
from certgate.api.registry import REGISTRY
from certgate.api.server import BackgroundServer
from certgate.pki.authority import create_certificate_authority
from certgate.pki.pem import certificate_to_pem
from certgate.storage import open_store


@pytest.fixture(params=["memory_api", pytest.param("postgres_api", marks=pytest.mark.postgres)])
def store_api(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def edge_pair(now: dt.datetime, hostname: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return certificate_to_pem(cert), key_pem


def test_every_action_end_to_end(store_api: Any, expect_error: Any) -> None:
    api = store_api
    seen: set[str] = set()

    def ok(response: Any) -> dict[str, Any]:
        body = api.raw_json(response)
        rid = response.headers["x-acs-request-id"]
        seen.add(api.recorder.bodies[rid][0])
        return body

    owner = api.tenant("flow", "flow.example")
    c = api.sdk(owner.key_id, owner.secret)
    site_id = ok(
        c.create_site(
            esa.CreateSiteRequest(
                site_name=f"s{secrets.token_hex(3)}.example",
                access_type="NS",
                coverage="global",
                instance_id=owner.instance_id,
            )
        )
    )["SiteId"]
    site_name = ok(c.get_site(esa.GetSiteRequest(site_id=site_id)))["SiteModel"]["SiteName"]
    assert ok(c.list_sites(esa.ListSitesRequest(site_name=site_name)))["TotalCount"] == 1
    host = f"api.{site_name}"
    record_id = ok(
        c.create_record(
            esa.CreateRecordRequest(
                site_id=site_id,
                record_name=host,
                type="A/AAAA",
                ttl=1,
                proxied=True,
                data=esa.CreateRecordRequestData(value="192.0.2.7"),
            )
        )
    )["RecordId"]
    assert ok(c.list_records(esa.ListRecordsRequest(site_id=site_id)))["Records"][0]["RecordId"] == record_id

    created = ok(
        c.create_client_certificate(
            esa.CreateClientCertificateRequest(site_id=site_id, pkey_type="RSA", validity_days=365)
        )
    )
    cert_id = created["Id"]
    assert created["ValidityDays"] == "365" and "PrivateKey" in created
    assert (
        ok(c.get_client_certificate(esa.GetClientCertificateRequest(site_id=site_id, id=cert_id)))["Status"]
        == "active"
    )
    assert (
        ok(c.list_client_certificates(esa.ListClientCertificatesRequest(site_id=site_id)))["TotalCount"] == 1
    )

    assert ok(
        c.set_client_certificate_hostnames(
            esa.SetClientCertificateHostnamesRequest(site_id=site_id, hostnames=[host])
        )
    )["Hostnames"] == [host]
    assert ok(c.get_client_certificate_hostnames(esa.GetClientCertificateHostnamesRequest(site_id=site_id)))[
        "Hostnames"
    ] == [host]

    ca_pem = certificate_to_pem(create_certificate_authority("Flow CA", now=api.clock.now()).certificate)
    ca_id = ok(
        c.upload_client_ca_certificate(
            esa.UploadClientCaCertificateRequest(site_id=site_id, certificate=ca_pem, name="flow")
        )
    )["Id"]
    assert (
        ok(c.get_client_ca_certificate(esa.GetClientCaCertificateRequest(site_id=site_id, id=ca_id)))[
            "Status"
        ]
        == "OK"
    )
    assert (
        ok(c.list_client_ca_certificates(esa.ListClientCaCertificatesRequest(site_id=site_id)))["TotalCount"]
        == 1
    )
    ok(
        c.set_client_ca_certificate_hostnames(
            esa.SetClientCaCertificateHostnamesRequest(site_id=site_id, id=ca_id, hostnames=[host])
        )
    )
    assert ok(
        c.get_client_ca_certificate_hostnames(
            esa.GetClientCaCertificateHostnamesRequest(site_id=site_id, id=ca_id)
        )
    )["Hostnames"] == [host]
    expect_error(
        lambda: c.delete_client_ca_certificate(
            esa.DeleteClientCaCertificateRequest(site_id=site_id, id=ca_id)
        ),
        "CaCertificate.InUse",
        400,
    )

    rule_id = ok(
        c.create_waf_rule(
            esa.CreateWafRuleRequest(
                site_id=site_id,
                phase="http_custom",
                config=esa.WafRuleConfig(
                    name="mtls",
                    action="deny",
                    status="on",
                    expression=f'(http.host eq "{host}" and not tls.client_auth.cert_verified)',
                ),
            )
        )
    )["Id"]
    assert ok(c.get_waf_rule(esa.GetWafRuleRequest(site_id=site_id, id=rule_id)))["Status"] == "on"
    ok(c.update_waf_rule(esa.UpdateWafRuleRequest(site_id=site_id, id=rule_id, status="off")))
    assert (
        ok(c.list_waf_rules(esa.ListWafRulesRequest(site_id=site_id, phase="http_custom")))["Rules"][0][
            "Status"
        ]
        == "off"
    )
    origin_id = ok(
        c.create_origin_rule(
            esa.CreateOriginRuleRequest(
                site_id=site_id, rule=f'(http.host eq "{host}")', rule_name="o", origin_http_port="8080"
            )
        )
    )["ConfigId"]
    assert (
        ok(c.list_origin_rules(esa.ListOriginRulesRequest(site_id=site_id)))["Configs"][0]["OriginHttpPort"]
        == "8080"
    )
    chain, key = edge_pair(api.clock.now(), host)
    assert (
        len(
            ok(
                c.set_certificate(
                    esa.SetCertificateRequest(
                        site_id=site_id, type="upload", certificate=chain, private_key=key
                    )
                )
            )["Id"]
        )
        == 64
    )

    ok(c.revoke_client_certificate(esa.RevokeClientCertificateRequest(site_id=site_id, id=cert_id)))
    ok(c.activate_client_certificate(esa.ActivateClientCertificateRequest(site_id=site_id, id=cert_id)))
    ok(c.revoke_client_certificate(esa.RevokeClientCertificateRequest(site_id=site_id, id=cert_id)))
    ok(c.delete_client_certificate(esa.DeleteClientCertificateRequest(site_id=site_id, id=cert_id)))
    ok(
        c.set_client_ca_certificate_hostnames(
            esa.SetClientCaCertificateHostnamesRequest(site_id=site_id, id=ca_id, hostnames=[])
        )
    )
    ok(c.delete_client_ca_certificate(esa.DeleteClientCaCertificateRequest(site_id=site_id, id=ca_id)))
    ok(c.delete_waf_rule(esa.DeleteWafRuleRequest(site_id=site_id, id=rule_id)))
    ok(c.delete_origin_rule(esa.DeleteOriginRuleRequest(site_id=site_id, config_id=origin_id)))
    ok(c.delete_record(esa.DeleteRecordRequest(record_id=record_id)))
    ok(c.delete_site(esa.DeleteSiteRequest(site_id=site_id)))
    expect_error(lambda: c.get_site(esa.GetSiteRequest(site_id=site_id)), "SiteNotFound", 404)

    assert seen == {a.name for a in REGISTRY}


@pytest.fixture(params=["api", pytest.param("postgres_api", marks=pytest.mark.postgres)])
def sql_api(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def test_two_replicas_share_nonces_and_changes(sql_api: Any) -> None:
    """A second app over its own connection to the same database, as another replica would be:
    it refuses a nonce the first one accepted, and its edges learn of the first one's changes."""
    api = sql_api
    store = open_store(api.settings.database_url)
    try:
        replica = create_app(
            dataclasses.replace(api.ctx, store=store), api.settings, edge_token=api.edge_token
        )
        with BackgroundServer(replica) as other, httpx.Client(timeout=10) as http:
            query = [("SiteId", str(api.alice.site_id))]
            headers = sign_acs3(
                method="GET",
                host=api.server.endpoint,
                action="ListClientCertificates",
                query=query,
                body=b"",
                access_key_id=api.alice.key_id,
                secret=api.alice.secret,
                date=api.clock.now(),
                nonce=secrets.token_hex(16),
            )
            target = "/?" + str(httpx.QueryParams(query))
            assert http.get(api.server.url + target, headers=headers).status_code == 200
            replayed = http.get(other.url + target, headers=headers)
            assert replayed.status_code == 400 and replayed.json()["Code"] == "SignatureNonceUsed"

            version = store.current_version()
            auth = {"Authorization": f"Bearer {api.edge_token}"}
            result: dict[str, httpx.Response] = {}
            poll = threading.Thread(
                target=lambda: result.update(
                    r=http.get(
                        other.url + "/edge/v1/snapshot", params={"after": version, "wait": 10}, headers=auth
                    )
                )
            )
            poll.start()
            time.sleep(0.2)
            api.alice.client.create_client_certificate(
                esa.CreateClientCertificateRequest(
                    site_id=api.alice.site_id, pkey_type="ECDSA", validity_days=1
                )
            )
            changed = time.monotonic()
            poll.join(10)
            assert result["r"].status_code == 200
            assert int(result["r"].headers["x-certgate-snapshot-version"]) == version + 1
            assert time.monotonic() - changed < 1.0
    finally:
        store.close()
