"""Custom client CA actions through the official SDK: upload rules, quota, duplicates, deletion of
bound CAs, exact JSON types."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from alibabacloud_esa20240910 import models as esa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certgate.pki.authority import create_certificate_authority
from certgate.pki.pem import certificate_to_pem

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ESA_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def ca_pem(api: Any, name: str, *, days: int = 3650, start: dt.datetime | None = None) -> str:
    authority = create_certificate_authority(name, now=start or api.clock.now(), validity_days=days)
    return certificate_to_pem(authority.certificate)


def leaf_pem(api: Any) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a CA")])
    now = api.clock.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate_to_pem(cert)


def upload(tenant: Any, pem: str, name: str | None = None) -> Any:
    return tenant.client.upload_client_ca_certificate(
        esa.UploadClientCaCertificateRequest(site_id=tenant.site_id, certificate=pem, name=name)
    )


def test_upload_get_list_delete(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("ca-owner", "ca-owner.example", ("mtls.ca-owner.example",))
    response = upload(tenant, ca_pem(api, "Owner Root CA", days=300), "my root")
    body = api.raw_json(response)
    assert isinstance(response.body.validity_days, str) and body["ValidityDays"] == "300"
    assert body["Status"] == "OK" and body["CommonName"] == "Owner Root CA"
    assert body["Issuer"] == "Owner Root CA"  # self-signed: issuer CN is its own
    assert ISO_Z.match(body["NotBefore"]) and ISO_Z.match(body["NotAfter"])
    ca_id = body["Id"]

    got = api.raw_json(
        tenant.client.get_client_ca_certificate(
            esa.GetClientCaCertificateRequest(site_id=tenant.site_id, id=ca_id)
        )
    )
    assert got["Status"] == "OK" and got["SiteId"] == tenant.site_id and got["SiteName"] == "ca-owner.example"
    assert got["Certificate"].startswith("-----BEGIN CERTIFICATE-----")
    result = got["Result"]
    assert (result["Id"], result["Name"], result["Type"], result["Status"]) == (
        ca_id,
        "my root",
        "upload",
        "OK",
    )
    assert all(ESA_TIME.match(result[k]) for k in ("NotBefore", "NotAfter", "CreateTime", "UpdateTime"))
    assert result["FingerprintSha256"] == body["FingerprintSha256"]

    listed = tenant.client.list_client_ca_certificates(
        esa.ListClientCaCertificatesRequest(site_id=tenant.site_id)
    )
    as_json = api.raw_json(listed)
    assert isinstance(listed.body.total_count, int) and as_json["TotalCount"] == 1
    assert [r["Id"] for r in as_json["Result"]] == [ca_id]
    assert (as_json["PageNumber"], as_json["PageSize"]) == (1, 20)

    tenant.client.set_client_ca_certificate_hostnames(
        esa.SetClientCaCertificateHostnamesRequest(
            site_id=tenant.site_id, id=ca_id, hostnames=["mtls.ca-owner.example"]
        )
    )

    def delete() -> Any:
        return tenant.client.delete_client_ca_certificate(
            esa.DeleteClientCaCertificateRequest(site_id=tenant.site_id, id=ca_id)
        )

    exc = expect_error(delete, "CaCertificate.InUse", 400)
    assert "mtls.ca-owner.example" in exc.message  # names the hostnames still bound
    tenant.client.set_client_ca_certificate_hostnames(
        esa.SetClientCaCertificateHostnamesRequest(site_id=tenant.site_id, id=ca_id, hostnames=[])
    )
    deleted = api.raw_json(delete())
    assert deleted["Id"] == ca_id and deleted["SiteId"] == tenant.site_id
    expect_error(delete, "CaCertificate.NotFound", 404)
    expect_error(
        lambda: tenant.client.get_client_ca_certificate(
            esa.GetClientCaCertificateRequest(site_id=tenant.site_id, id=ca_id)
        ),
        "CaCertificate.NotFound",
        404,
    )


def test_default_name_is_common_name(api: Any) -> None:
    body = api.raw_json(upload(api.alice, ca_pem(api, "Named By CN")))
    got = api.raw_json(
        api.alice.client.get_client_ca_certificate(
            esa.GetClientCaCertificateRequest(site_id=api.alice.site_id, id=body["Id"])
        )
    )
    assert got["Result"]["Name"] == "Named By CN"


def test_quota_and_duplicates(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("quota", "quota.example")
    pems = [ca_pem(api, f"Quota CA {i}") for i in range(6)]
    api.raw_json(upload(tenant, pems[0]))
    expect_error(lambda: upload(tenant, pems[0]), "CaCertificate.Duplicated", 400)
    for pem in pems[1:5]:
        api.raw_json(upload(tenant, pem))
    expect_error(lambda: upload(tenant, pems[5]), "QuotaExceeded.CaCertificate", 400)
    listed = api.raw_json(
        tenant.client.list_client_ca_certificates(
            esa.ListClientCaCertificatesRequest(site_id=tenant.site_id, page_size=2, page_number=3)
        )
    )
    assert listed["TotalCount"] == 5 and len(listed["Result"]) == 1


@pytest.mark.parametrize(
    "make_pem, code",
    [
        (lambda api: leaf_pem(api), "CaCertificate.NotCA"),
        (
            lambda api: ca_pem(api, "Old CA", days=10, start=api.clock.now() - dt.timedelta(days=20)),
            "CaCertificate.Expired",
        ),
        (
            lambda api: ca_pem(api, "Future CA", start=api.clock.now() + dt.timedelta(days=2)),
            "CaCertificate.NotYetValid",
        ),
        (
            lambda api: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            "InvalidParameter.Certificate",
        ),
        (lambda api: ca_pem(api, "A") + ca_pem(api, "B"), "InvalidParameter.Certificate"),
    ],
)
def test_upload_refusals(api: Any, expect_error: Any, make_pem: Any, code: str) -> None:
    before = api.ctx.store.current_version()
    expect_error(lambda: upload(api.alice, make_pem(api)), code, 400)
    assert api.ctx.store.current_version() == before


def test_parameter_errors(api: Any, expect_error: Any) -> None:
    client = api.alice.client
    expect_error(
        lambda: client.upload_client_ca_certificate(
            esa.UploadClientCaCertificateRequest(site_id=api.alice.site_id)
        ),
        "MissingCertificate",
        400,
    )
    expect_error(lambda: upload(api.alice, ca_pem(api, "N"), "n" * 129), "InvalidParameter.Name", 400)
    expect_error(
        lambda: client.get_client_ca_certificate(esa.GetClientCaCertificateRequest(id="a" * 32)),
        "MissingSiteId",
        400,
    )
    expect_error(
        lambda: client.list_client_ca_certificates(
            esa.ListClientCaCertificatesRequest(site_id=api.alice.site_id, page_number=501)
        ),
        "InvalidParameter.PageNumber",
        400,
    )
    expect_error(
        lambda: client.delete_client_ca_certificate(
            esa.DeleteClientCaCertificateRequest(site_id=api.alice.site_id)
        ),
        "MissingId",
        400,
    )
