"""Client certificate actions and hostname bindings through the official SDK, with every
documented error path and the exact JSON types of each response."""

from __future__ import annotations

import re
from typing import Any

import pytest
from alibabacloud_esa20240910 import models as esa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certgate.pki.authority import create_certificate_authority
from certgate.pki.pem import certificate_to_pem
from certgate.services import ca_certificates

HEX32 = re.compile(r"^[0-9a-f]{32}$")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ESA_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def make_csr(common_name: str = "device-42", san: str | None = "device-42.example.com") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def create(api: Any, **kw: Any) -> Any:
    request = esa.CreateClientCertificateRequest(site_id=api.alice.site_id, **kw)
    return api.alice.client.create_client_certificate(request)


def managed_ca_id(api: Any) -> str:
    body = api.alice.client.get_client_ca_certificate_hostnames(
        esa.GetClientCaCertificateHostnamesRequest(site_id=api.alice.site_id)
    ).body
    return str(body.id)


# -- CreateClientCertificate ---------------------------------------------------------------------


@pytest.mark.parametrize("pkey_type, algorithm", [("RSA", "RSA"), ("ECDSA", "ECDSA"), ("ecdsa384", "ECDSA")])
def test_create_with_server_made_key(api: Any, pkey_type: str, algorithm: str) -> None:
    response = create(api, pkey_type=pkey_type, validity_days=365)
    body = api.raw_json(response)
    assert response.status_code == 200
    assert isinstance(response.body.validity_days, str) and body["ValidityDays"] == "365"
    assert HEX32.match(body["Id"]) and body["Status"] == "active"
    assert body["Certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert body["PrivateKey"].startswith("-----BEGIN PRIVATE KEY-----")
    assert ISO_Z.match(body["NotBefore"]) and ISO_Z.match(body["NotAfter"])
    assert re.fullmatch(r"[0-9a-f]{64}", body["FingerprintSha256"])
    assert re.fullmatch(r"[0-9a-f]+", body["SerialNumber"])
    assert body["CACertificateId"] == managed_ca_id(api)
    cert = x509.load_pem_x509_certificate(body["Certificate"].encode())
    assert body["Issuer"] == cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert body["SignatureAlgorithm"] == "ECDSA-SHA256"  # the managed CA signs with P-256
    key = serialization.load_pem_private_key(body["PrivateKey"].encode(), None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    got = api.raw_json(
        api.alice.client.get_client_certificate(
            esa.GetClientCertificateRequest(site_id=api.alice.site_id, id=body["Id"])
        )
    )
    assert got["Result"]["PubkeyAlgorithm"] == algorithm


def test_create_from_csr_returns_no_private_key(api: Any) -> None:
    response = create(api, csr=make_csr(), validity_days=30)
    body = api.raw_json(response)
    assert "PrivateKey" not in body and response.body.private_key is None
    assert body["CommonName"] == "device-42" and body["ValidityDays"] == "30"


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"pkey_type": "RSA"}, "MissingValidityDays"),
        ({"pkey_type": "RSA", "validity_days": 0}, "InvalidParameter.ValidityDays"),
        ({"pkey_type": "RSA", "validity_days": 3651}, "InvalidParameter.ValidityDays"),
        ({"validity_days": 365}, "MissingPkeyType"),
        ({"pkey_type": "DSA", "validity_days": 365}, "InvalidParameter.KeyType"),
        ({"csr": "not a csr", "validity_days": 365}, "InvalidParameter.CSR"),
        ({"csr": make_csr(san=None).replace("MI", "XX", 1), "validity_days": 365}, "InvalidParameter.CSR"),
    ],
)
def test_create_errors(api: Any, expect_error: Any, kwargs: dict[str, Any], code: str) -> None:
    before = api.ctx.store.current_version()
    expect_error(lambda: create(api, **kwargs), code, 400)
    assert api.ctx.store.current_version() == before  # nothing changed


def test_create_site_errors(api: Any, expect_error: Any) -> None:
    client = api.alice.client
    expect_error(
        lambda: client.create_client_certificate(
            esa.CreateClientCertificateRequest(pkey_type="RSA", validity_days=1)
        ),
        "MissingSiteId",
        400,
    )
    expect_error(
        lambda: client.create_client_certificate(
            esa.CreateClientCertificateRequest(site_id=123, pkey_type="RSA", validity_days=1)
        ),
        "SiteNotFound",
        404,
    )


def test_validity_days_must_be_an_integer(api: Any) -> None:
    response = api.raw(
        "CreateClientCertificate",
        query=[("SiteId", str(api.alice.site_id))],
        form=[("PkeyType", "RSA"), ("ValidityDays", "365.5")],
    )
    assert response.status_code == 400
    assert response.json()["Code"] == "InvalidParameter.ValidityDays"


# -- Get / List ----------------------------------------------------------------------------------


def test_get_client_certificate(api: Any, expect_error: Any) -> None:
    created = api.raw_json(create(api, csr=make_csr("get-me"), validity_days=10))
    response = api.alice.client.get_client_certificate(
        esa.GetClientCertificateRequest(site_id=api.alice.site_id, id=created["Id"])
    )
    body = api.raw_json(response)
    assert isinstance(response.body.site_id, int)
    assert body["SiteId"] == api.alice.site_id and body["SiteName"] == api.alice.site_name
    assert body["Status"] == "active" and body["Certificate"] == created["Certificate"]
    result = body["Result"]
    assert result["Id"] == created["Id"] and result["Type"] == "managed"
    assert result["CommonName"] == "get-me" and result["SAN"] == "device-42.example.com"
    for key in ("NotBefore", "NotAfter", "CreateTime", "UpdateTime"):
        assert ESA_TIME.match(result[key]), key
    assert "PrivateKey" not in body and "PrivateKey" not in result
    expect_error(
        lambda: api.alice.client.get_client_certificate(
            esa.GetClientCertificateRequest(site_id=api.alice.site_id, id="0" * 32)
        ),
        "Certificate.NotFound",
        404,
    )
    expect_error(
        lambda: api.alice.client.get_client_certificate(
            esa.GetClientCertificateRequest(site_id=api.alice.site_id)
        ),
        "MissingId",
        400,
    )


def test_list_client_certificates_pages(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("lister", "lister.example", ())
    ids = []
    for _ in range(3):
        body = api.raw_json(
            tenant.client.create_client_certificate(
                esa.CreateClientCertificateRequest(site_id=tenant.site_id, pkey_type="ECDSA", validity_days=5)
            )
        )
        ids.append(body["Id"])
        api.clock.advance(1)  # newest first is by creation time
    first = tenant.client.list_client_certificates(
        esa.ListClientCertificatesRequest(site_id=tenant.site_id, page_size=2)
    )
    body = api.raw_json(first)
    assert isinstance(first.body.total_count, int) and body["TotalCount"] == 3
    assert (body["PageNumber"], body["PageSize"]) == (1, 2)
    assert [r["Id"] for r in body["Result"]] == ids[::-1][:2]
    second = api.raw_json(
        tenant.client.list_client_certificates(
            esa.ListClientCertificatesRequest(site_id=tenant.site_id, page_size=2, page_number=2)
        )
    )
    assert [r["Id"] for r in second["Result"]] == [ids[0]]
    default = api.raw_json(
        tenant.client.list_client_certificates(esa.ListClientCertificatesRequest(site_id=tenant.site_id))
    )
    assert default["PageSize"] == 20 and default["PageNumber"] == 1
    for kwargs, code in (
        ({"page_size": 101}, "InvalidParameter.PageSize"),
        ({"page_number": 0}, "InvalidParameter.PageNumber"),
    ):
        expect_error(
            lambda kw=kwargs: tenant.client.list_client_certificates(
                esa.ListClientCertificatesRequest(site_id=tenant.site_id, **kw)
            ),
            code,
            400,
        )


# -- status transitions --------------------------------------------------------------------------


def test_revoke_activate_delete(api: Any, expect_error: Any) -> None:
    client, site_id = api.alice.client, api.alice.site_id
    cert_id = api.raw_json(create(api, pkey_type="ECDSA", validity_days=3))["Id"]

    def status() -> str:
        return str(
            client.get_client_certificate(
                esa.GetClientCertificateRequest(site_id=site_id, id=cert_id)
            ).body.status
        )

    def revoke() -> Any:
        return client.revoke_client_certificate(
            esa.RevokeClientCertificateRequest(site_id=site_id, id=cert_id)
        )

    def activate() -> Any:
        return client.activate_client_certificate(
            esa.ActivateClientCertificateRequest(site_id=site_id, id=cert_id)
        )

    def delete() -> Any:
        return client.delete_client_certificate(
            esa.DeleteClientCertificateRequest(site_id=site_id, id=cert_id)
        )

    expect_error(activate, "Certificate.StatusError", 400)
    expect_error(delete, "Certificate.StatusError", 400)
    body = api.raw_json(revoke())
    assert body == {
        "RequestId": body["RequestId"],
        "SiteId": site_id,
        "SiteName": "example.com",
        "Id": cert_id,
    }
    assert status() == "revoked"
    expect_error(revoke, "Certificate.StatusError", 400)
    api.raw_json(activate())
    assert status() == "active"
    api.raw_json(revoke())
    api.raw_json(delete())
    expect_error(status, "Certificate.NotFound", 404)
    for call in (revoke, activate, delete):
        expect_error(call, "Certificate.NotFound", 404)


# -- hostname bindings ---------------------------------------------------------------------------


def _set(api: Any, hostnames: list[str], ca_id: str | None = None, *, deprecated: bool = False) -> Any:
    client, site_id = api.alice.client, api.alice.site_id
    if deprecated:
        return client.set_client_certificate_hostnames(
            esa.SetClientCertificateHostnamesRequest(site_id=site_id, hostnames=hostnames, id=ca_id)
        )
    return client.set_client_ca_certificate_hostnames(
        esa.SetClientCaCertificateHostnamesRequest(site_id=site_id, hostnames=hostnames, id=ca_id)
    )


def _get(api: Any, ca_id: str | None = None, *, deprecated: bool = False) -> Any:
    client, site_id = api.alice.client, api.alice.site_id
    if deprecated:
        return client.get_client_certificate_hostnames(
            esa.GetClientCertificateHostnamesRequest(site_id=site_id, id=ca_id)
        )
    return client.get_client_ca_certificate_hostnames(
        esa.GetClientCaCertificateHostnamesRequest(site_id=site_id, id=ca_id)
    )


@pytest.mark.parametrize("deprecated", [False, True])
def test_managed_ca_hostnames_replace_and_clear(api: Any, deprecated: bool) -> None:
    managed = managed_ca_id(api)
    body = api.raw_json(
        _set(api, ["API.example.com", "api.example.com", "*.example.com"], deprecated=deprecated)
    )
    assert body["Id"] == managed and body["Hostnames"] == ["api.example.com", "*.example.com"]
    assert isinstance(body["SiteId"], int) and body["SiteName"] == "example.com"
    got = api.raw_json(_get(api, deprecated=deprecated))
    assert got["Hostnames"] == ["api.example.com", "*.example.com"] and got["Id"] == managed
    assert api.raw_json(_get(api, managed, deprecated=deprecated))["Hostnames"] == got["Hostnames"]
    api.raw_json(_set(api, ["www.example.com"], deprecated=deprecated))
    assert api.raw_json(_get(api, deprecated=deprecated))["Hostnames"] == ["www.example.com"]
    api.raw_json(_set(api, [], deprecated=deprecated))
    assert api.raw_json(_get(api, deprecated=deprecated))["Hostnames"] == []


def test_custom_ca_hostnames(api: Any) -> None:
    tenant = api.tenant("binder", "binder.example", ("a.binder.example",))
    authority = create_certificate_authority("Binder CA", now=api.clock.now())
    ca = ca_certificates.upload_ca_certificate(
        api.ctx, tenant.account_id, tenant.site_id, certificate_pem=certificate_to_pem(authority.certificate)
    )
    body = api.raw_json(
        tenant.client.set_client_ca_certificate_hostnames(
            esa.SetClientCaCertificateHostnamesRequest(
                site_id=tenant.site_id, id=ca.id, hostnames=["a.binder.example"]
            )
        )
    )
    assert body["Id"] == ca.id and body["Hostnames"] == ["a.binder.example"]
    got = api.raw_json(
        tenant.client.get_client_certificate_hostnames(
            esa.GetClientCertificateHostnamesRequest(site_id=tenant.site_id, id=ca.id)
        )
    )
    assert got["Hostnames"] == ["a.binder.example"]


@pytest.mark.parametrize(
    "hostnames, code",
    [
        ([f"h{i}.example.com" for i in range(51)], "QuotaExceeded.Hostnames"),
        (["api.other.org"], "Hostname.NotInSite"),
        (["bad_name!.example.com"], "InvalidParameter.Hostname"),
        (["api.example.com:443"], "InvalidParameter.Hostname"),
    ],
)
def test_binding_errors_change_nothing(api: Any, expect_error: Any, hostnames: list[str], code: str) -> None:
    api.raw_json(_set(api, ["api.example.com"]))
    expect_error(lambda: _set(api, ["www.example.com", *hostnames]), code, 400)
    assert api.raw_json(_get(api))["Hostnames"] == ["api.example.com"]


def test_binding_parameter_errors(api: Any, expect_error: Any) -> None:
    expect_error(lambda: _set(api, ["api.example.com"], "f" * 32), "CaCertificate.NotFound", 404)
    expect_error(lambda: _get(api, "f" * 32), "CaCertificate.NotFound", 404)
    expect_error(
        lambda: api.alice.client.set_client_ca_certificate_hostnames(
            esa.SetClientCaCertificateHostnamesRequest(site_id=api.alice.site_id)
        ),
        "MissingHostnames",
        400,
    )
    expect_error(
        lambda: api.alice.client.get_client_ca_certificate_hostnames(
            esa.GetClientCaCertificateHostnamesRequest()
        ),
        "MissingSiteId",
        400,
    )
    for raw, why in (('{"a": 1}', "object"), ("[1, 2]", "numbers"), ("[oops", "not JSON")):
        response = api.raw(
            "SetClientCaCertificateHostnames",
            query=[("SiteId", str(api.alice.site_id))],
            form=[("Hostnames", raw)],
        )
        assert response.status_code == 400, why
        assert response.json()["Code"] == "InvalidParameter.Hostnames", why
