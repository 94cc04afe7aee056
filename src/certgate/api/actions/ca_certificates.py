"""Custom client CA certificates uploaded to a site (ESA "custom certificate issuance")."""

from __future__ import annotations

from typing import Any

from certgate.api.actions.certificates import (
    SITE_FIELDS,
    SITE_ID,
    certificate_result_fields,
    site_fields,
    summary_fields,
)
from certgate.api.registry import REGISTRY, Call
from certgate.api.wire import Kind, PageRule, Shape, b, esa_time, f, iso_z, q
from certgate.ids import CACertificateId, SiteId
from certgate.model import ClientCACertificate
from certgate.services import ca_certificates

CA_STATUS = "OK"
CA_TYPE = "upload"
CA_ID = q("Id", Kind.STR, "CA certificate id (32 hex)", required=True, max_length=64)
CA_PAGES = PageRule(default_size=20, max_size=100, max_number=500)
CLIENT_CA_CERTIFICATE = Shape("ClientCaCertificate", certificate_result_fields())


def ca_result(ca: ClientCACertificate) -> dict[str, Any]:
    return {
        "Id": ca.id,
        "Name": ca.name,
        **summary_fields(ca.cert),
        "Status": CA_STATUS,
        "Type": CA_TYPE,
        "CreateTime": esa_time(ca.created_at),
        "UpdateTime": esa_time(ca.updated_at),
    }


def _validity_days(ca: ClientCACertificate) -> str:
    return str((ca.cert.not_after - ca.cert.not_before).days)


@REGISTRY.action(
    "UploadClientCaCertificate",
    group="Client CA certificates",
    method="POST",
    summary="Upload your own CA (one PEM certificate, CA:TRUE, currently valid, SHA-256+, RSA >= 2048 or "
    "EC P-256/384/521); at most 5 per plan, no duplicates in a site.",
    params=(
        SITE_ID,
        b("Certificate", Kind.STR, "PEM of the CA certificate (<= 16 KiB)", required=True),
        b("Name", Kind.STR, "display name (default: its common name)", max_length=128),
    ),
    fields=(
        f("Id", "str", "CA certificate id"),
        f("Status", "str", CA_STATUS),
        f("CommonName", "str"),
        f("NotBefore", "str", "ISO 8601 UTC"),
        f("NotAfter", "str", "ISO 8601 UTC"),
        f("Issuer", "str", "issuer common name"),
        f("SerialNumber", "str"),
        f("FingerprintSha256", "str"),
        f("SignatureAlgorithm", "str"),
        f("ValidityDays", "str", "whole days between NotBefore and NotAfter, as a string"),
    ),
    mutates=True,
    errors=(
        "ca.not_a_ca",
        "ca.duplicate",
        "ca.quota_exceeded",
        "ca.expired",
        "ca.malformed",
        "site.not_found",
    ),
)
def upload_client_ca_certificate(call: Call) -> dict[str, Any]:
    p = call.params
    ca = ca_certificates.upload_ca_certificate(
        call.ctx,
        call.account.id,
        SiteId(p.get_int("SiteId")),
        certificate_pem=p.get_str("Certificate"),
        name=p.opt_str("Name") or "",
    )
    return {
        "Id": ca.id,
        "Status": CA_STATUS,
        "CommonName": ca.cert.common_name,
        "NotBefore": iso_z(ca.cert.not_before),
        "NotAfter": iso_z(ca.cert.not_after),
        "Issuer": ca.cert.issuer_common_name,
        "SerialNumber": ca.cert.serial_hex,
        "FingerprintSha256": ca.cert.fingerprint_sha256,
        "SignatureAlgorithm": ca.cert.signature_algorithm,
        "ValidityDays": _validity_days(ca),
    }


@REGISTRY.action(
    "GetClientCaCertificate",
    group="Client CA certificates",
    method="GET",
    summary="One custom CA of a site.",
    params=(CA_ID, SITE_ID),
    fields=(
        *SITE_FIELDS,
        f("Status", "str", CA_STATUS),
        f("Certificate", "str", "PEM"),
        f("Result", "shape", shape=CLIENT_CA_CERTIFICATE),
    ),
    mutates=False,
    errors=("ca.not_found", "site.not_found"),
)
def get_client_ca_certificate(call: Call) -> dict[str, Any]:
    p = call.params
    site, ca = ca_certificates.get_ca_certificate(
        call.ctx, call.account.id, SiteId(p.get_int("SiteId")), CACertificateId(p.get_str("Id"))
    )
    return {
        **site_fields(site),
        "Status": CA_STATUS,
        "Certificate": ca.cert.certificate_pem,
        "Result": ca_result(ca),
    }


@REGISTRY.action(
    "ListClientCaCertificates",
    group="Client CA certificates",
    method="GET",
    summary="Custom CAs of a site, newest first, paged.",
    params=(SITE_ID, *CA_PAGES.params()),
    fields=(
        *SITE_FIELDS,
        f("PageNumber", "int"),
        f("PageSize", "int"),
        f("TotalCount", "int"),
        f("Result", "list[shape]", shape=CLIENT_CA_CERTIFICATE),
    ),
    mutates=False,
    errors=("site.not_found",),
)
def list_client_ca_certificates(call: Call) -> dict[str, Any]:
    paging = CA_PAGES.paging(call.params)
    site, items, total = ca_certificates.list_ca_certificates(
        call.ctx, call.account.id, SiteId(call.params.get_int("SiteId")), page=paging.number, size=paging.size
    )
    return {
        **site_fields(site),
        "PageNumber": paging.number,
        "PageSize": paging.size,
        "TotalCount": total,
        "Result": [ca_result(c) for c in items],
    }


@REGISTRY.action(
    "DeleteClientCaCertificate",
    group="Client CA certificates",
    method="GET",
    summary="Delete a custom CA that no hostname is bound to (unbind it first).",
    params=(CA_ID, SITE_ID),
    fields=(*SITE_FIELDS, f("Id", "str", "CA certificate id")),
    mutates=True,
    errors=("ca.still_bound", "ca.not_found", "site.not_found"),
)
def delete_client_ca_certificate(call: Call) -> dict[str, Any]:
    p = call.params
    ca_id = CACertificateId(p.get_str("Id"))
    site = ca_certificates.delete_ca_certificate(
        call.ctx, call.account.id, SiteId(p.get_int("SiteId")), ca_id
    )
    return {**site_fields(site), "Id": ca_id}
