"""Client certificates issued by the account's managed CA, and the hostname bindings of any CA
of a site (the deprecated ``*ClientCertificateHostnames`` twins bind CAs too, as in ESA)."""

from __future__ import annotations

from typing import Any

from certgate.api.registry import REGISTRY, Call
from certgate.api.wire import Field, Kind, PageRule, Shape, b, esa_time, f, iso_z, q
from certgate.ids import CertificateId, SiteId
from certgate.model import Binding, CertificateSummary, ClientCertificate, Site
from certgate.services import ca_certificates, certificates

CLIENT_CERTIFICATE_TYPE = "managed"  # issued by the account's managed CA (ESA's examples say "dcdn")

SITE_ID = q("SiteId", Kind.LONG, "site id", required=True)
CERT_ID = q("Id", Kind.STR, "client certificate id (32 hex)", required=True, max_length=64)
CERT_PAGES = PageRule(default_size=20, max_size=100)


def summary_fields(summary: CertificateSummary) -> dict[str, Any]:
    return {
        "CommonName": summary.common_name,
        "Issuer": summary.issuer_common_name,
        "SerialNumber": summary.serial_hex,
        "FingerprintSha256": summary.fingerprint_sha256,
        "SignatureAlgorithm": summary.signature_algorithm,
        "PubkeyAlgorithm": summary.public_key_algorithm,
        "SAN": summary.san,
        "NotBefore": esa_time(summary.not_before),
        "NotAfter": esa_time(summary.not_after),
    }


def certificate_result_fields(*extra: Field) -> tuple[Field, ...]:
    return (
        f("Id", "str", "certificate id"),
        f("Name", "str", "name (client certificates: their common name)"),
        f("CommonName", "str", "subject common name"),
        f("Issuer", "str", "issuer common name"),
        f("SerialNumber", "str", "serial number, lowercase hex"),
        f("FingerprintSha256", "str", "SHA-256 of the DER, 64 lowercase hex"),
        f("SignatureAlgorithm", "str", "Go-style name, e.g. ECDSA-SHA256, SHA256-RSA"),
        f("PubkeyAlgorithm", "str", "RSA or ECDSA"),
        f("SAN", "str", "subjectAltName values, comma-separated"),
        f("Status", "str", "client certificates: active | revoked; CAs: OK"),
        f("Type", "str", f"client certificates: {CLIENT_CERTIFICATE_TYPE}; CAs: upload"),
        *extra,
        f("NotBefore", "str", "YYYY-MM-DD HH:MM:SS (UTC)"),
        f("NotAfter", "str", "YYYY-MM-DD HH:MM:SS (UTC)"),
        f("CreateTime", "str", "YYYY-MM-DD HH:MM:SS (UTC)"),
        f("UpdateTime", "str", "YYYY-MM-DD HH:MM:SS (UTC)"),
    )


CLIENT_CERTIFICATE = Shape(
    "ClientCertificate",
    certificate_result_fields(f("CACertificateId", "str", "id of the managed CA that issued it")),
)
SITE_FIELDS = (f("SiteId", "int", "site id"), f("SiteName", "str", "site name"))
HOSTNAMES_FIELDS = (
    *SITE_FIELDS,
    f("Id", "str", "the CA id (the managed CA's id when none was given)"),
    f("Hostnames", "list[str]", "the hostnames bound to the CA, normalised"),
)


def client_certificate_result(cert: ClientCertificate) -> dict[str, Any]:
    return {
        "Id": cert.id,
        "Name": cert.cert.common_name,
        **summary_fields(cert.cert),
        "Status": cert.status.value,
        "Type": CLIENT_CERTIFICATE_TYPE,
        "CACertificateId": cert.authority_id,
        "CreateTime": esa_time(cert.created_at),
        "UpdateTime": esa_time(cert.updated_at),
    }


def site_fields(site: Site) -> dict[str, Any]:
    return {"SiteId": site.id, "SiteName": site.name}


def _cert_key(call: Call) -> tuple[SiteId, CertificateId]:
    return SiteId(call.params.get_int("SiteId")), CertificateId(call.params.get_str("Id"))


@REGISTRY.action(
    "CreateClientCertificate",
    group="Client certificates",
    method="POST",
    summary="Issue a client certificate from the account's managed CA: from your CSR, or with a key "
    "pair made by the server (PkeyType) whose private key is returned once, here, and never stored.",
    params=(
        SITE_ID,
        b("CSR", Kind.STR, "PEM certificate signing request (RSA >= 2048, EC P-256/P-384)"),
        b(
            "PkeyType",
            Kind.STR,
            "key to generate when no CSR: RSA (=RSA2048), RSA3072, RSA4096, ECDSA (=P-256), ECDSA384",
        ),
        b("ValidityDays", Kind.LONG, "validity in days, 1-3650", required=True),
    ),
    fields=(
        f("Id", "str", "certificate id"),
        f("Status", "str", "active"),
        f("Certificate", "str", "PEM"),
        f("PrivateKey", "str", "PKCS#8 PEM, only when the server made the key", optional=True),
        f("CommonName", "str"),
        f("NotBefore", "str", "ISO 8601 UTC, 2023-12-01T02:12:49Z"),
        f("NotAfter", "str", "ISO 8601 UTC"),
        f("Issuer", "str", "issuer common name"),
        f("SerialNumber", "str", "lowercase hex"),
        f("FingerprintSha256", "str", "64 lowercase hex"),
        f("SignatureAlgorithm", "str"),
        f("ValidityDays", "str", "the requested validity, as a string"),
        f("CACertificateId", "str", "id of the managed CA"),
    ),
    mutates=True,
    errors=(
        "certificate.no_key_source",
        "key.unsupported_type",
        "validity.out_of_range",
        "csr.malformed",
        "csr.bad_signature",
        "site.not_found",
    ),
)
def create_client_certificate(call: Call) -> dict[str, Any]:
    p = call.params
    issued = certificates.issue_client_certificate(
        call.ctx,
        call.account.id,
        SiteId(p.get_int("SiteId")),
        validity_days=p.get_int("ValidityDays"),
        csr_pem=p.opt_str("CSR") or None,
        key_type=p.opt_str("PkeyType") or None,
    )
    cert = issued.certificate
    out: dict[str, Any] = {
        "Id": cert.id,
        "Status": cert.status.value,
        "Certificate": cert.cert.certificate_pem,
    }
    if issued.private_key_pem is not None:
        out["PrivateKey"] = issued.private_key_pem
    out.update(
        {
            "CommonName": cert.cert.common_name,
            "NotBefore": iso_z(cert.cert.not_before),
            "NotAfter": iso_z(cert.cert.not_after),
            "Issuer": cert.cert.issuer_common_name,
            "SerialNumber": cert.cert.serial_hex,
            "FingerprintSha256": cert.cert.fingerprint_sha256,
            "SignatureAlgorithm": cert.cert.signature_algorithm,
            "ValidityDays": str(cert.validity_days),
            "CACertificateId": cert.authority_id,
        }
    )
    return out


@REGISTRY.action(
    "GetClientCertificate",
    group="Client certificates",
    method="GET",
    summary="One client certificate of a site (never its private key).",
    params=(CERT_ID, SITE_ID),
    fields=(
        *SITE_FIELDS,
        f("Status", "str", "active | revoked"),
        f("Certificate", "str", "PEM"),
        f("Result", "shape", shape=CLIENT_CERTIFICATE),
    ),
    mutates=False,
    errors=("certificate.not_found", "site.not_found"),
)
def get_client_certificate(call: Call) -> dict[str, Any]:
    site, cert = certificates.get_client_certificate(call.ctx, call.account.id, *_cert_key(call))
    return {
        **site_fields(site),
        "Status": cert.status.value,
        "Certificate": cert.cert.certificate_pem,
        "Result": client_certificate_result(cert),
    }


@REGISTRY.action(
    "ListClientCertificates",
    group="Client certificates",
    method="GET",
    summary="Client certificates of a site, newest first, paged.",
    params=(SITE_ID, *CERT_PAGES.params()),
    fields=(
        *SITE_FIELDS,
        f("PageNumber", "int"),
        f("PageSize", "int"),
        f("TotalCount", "int", "certificates in the site"),
        f("Result", "list[shape]", shape=CLIENT_CERTIFICATE),
    ),
    mutates=False,
    errors=("site.not_found",),
)
def list_client_certificates(call: Call) -> dict[str, Any]:
    paging = CERT_PAGES.paging(call.params)
    site, items, total = certificates.list_client_certificates(
        call.ctx, call.account.id, SiteId(call.params.get_int("SiteId")), page=paging.number, size=paging.size
    )
    return {
        **site_fields(site),
        "PageNumber": paging.number,
        "PageSize": paging.size,
        "TotalCount": total,
        "Result": [client_certificate_result(c) for c in items],
    }


_STATE_FIELDS = (*SITE_FIELDS, f("Id", "str", "certificate id"))


@REGISTRY.action(
    "RevokeClientCertificate",
    group="Client certificates",
    method="GET",
    summary="Revoke an active certificate (active → revoked); edges refuse it on their next request.",
    params=(CERT_ID, SITE_ID),
    fields=_STATE_FIELDS,
    mutates=True,
    errors=("certificate.status", "certificate.not_found"),
)
def revoke_client_certificate(call: Call) -> dict[str, Any]:
    site, cert = certificates.revoke_client_certificate(call.ctx, call.account.id, *_cert_key(call))
    return {**site_fields(site), "Id": cert.id}


@REGISTRY.action(
    "ActivateClientCertificate",
    group="Client certificates",
    method="GET",
    summary="Re-activate a revoked certificate (revoked → active).",
    params=(CERT_ID, SITE_ID),
    fields=_STATE_FIELDS,
    mutates=True,
    errors=("certificate.status", "certificate.not_found"),
)
def activate_client_certificate(call: Call) -> dict[str, Any]:
    site, cert = certificates.activate_client_certificate(call.ctx, call.account.id, *_cert_key(call))
    return {**site_fields(site), "Id": cert.id}


@REGISTRY.action(
    "DeleteClientCertificate",
    group="Client certificates",
    method="GET",
    summary="Delete a revoked certificate; its serial stays revoked until it would have expired.",
    params=(CERT_ID, SITE_ID),
    fields=_STATE_FIELDS,
    mutates=True,
    errors=("certificate.status", "certificate.not_found"),
)
def delete_client_certificate(call: Call) -> dict[str, Any]:
    site, cert = certificates.delete_client_certificate(call.ctx, call.account.id, *_cert_key(call))
    return {**site_fields(site), "Id": cert.id}


# -- hostname bindings -------------------------------------------------------------------------

_CA_ID = b("Id", Kind.STR, "CA id; omitted: the account's managed CA", max_length=64)
_HOSTNAMES = b(
    "Hostnames", Kind.JSON, "JSON array of hostnames (replaces the list; [] clears it)", required=True
)
_BINDING_ERRORS = (
    "hostname.too_many",
    "hostname.foreign_site",
    "hostname.malformed",
    "ca.not_found",
    "site.not_found",
)


def binding_fields(site: Site, binding: Binding) -> dict[str, Any]:
    return {**site_fields(site), "Id": binding.ca_id, "Hostnames": list(binding.hostnames)}


def set_hostnames(call: Call) -> dict[str, Any]:
    p = call.params
    site, binding = ca_certificates.set_hostnames(
        call.ctx,
        call.account.id,
        SiteId(p.get_int("SiteId")),
        p.opt_str("Id") or None,
        p.string_list("Hostnames"),
    )
    return binding_fields(site, binding)


def get_hostnames(call: Call) -> dict[str, Any]:
    p = call.params
    site, binding = ca_certificates.get_hostnames(
        call.ctx, call.account.id, SiteId(p.get_int("SiteId")), p.opt_str("Id") or None
    )
    return binding_fields(site, binding)


_SET_SUMMARY = (
    "Replace the hostnames bound to a CA (the managed CA when Id is absent): at most 50 per call, each "
    "the site apex or under it, *.wildcards allowed, [] clears the list."
)
for _name, _summary in (
    ("SetClientCaCertificateHostnames", _SET_SUMMARY),
    ("SetClientCertificateHostnames", _SET_SUMMARY + " Deprecated twin of SetClientCaCertificateHostnames."),
):
    REGISTRY.action(
        _name,
        group="Hostname bindings",
        method="POST",
        summary=_summary,
        params=(SITE_ID, _HOSTNAMES, _CA_ID),
        fields=HOSTNAMES_FIELDS,
        mutates=True,
        errors=_BINDING_ERRORS,
    )(set_hostnames)

REGISTRY.action(
    "GetClientCaCertificateHostnames",
    group="Hostname bindings",
    method="POST",
    summary="The hostnames bound to a CA (the managed CA when Id is absent).",
    params=(SITE_ID, q("Id", Kind.STR, "CA id; omitted: the managed CA", max_length=64)),
    fields=HOSTNAMES_FIELDS,
    mutates=False,
    errors=("ca.not_found", "site.not_found"),
)(get_hostnames)

REGISTRY.action(
    "GetClientCertificateHostnames",
    group="Hostname bindings",
    method="GET",
    summary="Deprecated twin of GetClientCaCertificateHostnames.",
    params=(SITE_ID, q("Id", Kind.STR, "CA id; omitted: the managed CA", max_length=64)),
    fields=HOSTNAMES_FIELDS,
    mutates=False,
    errors=("ca.not_found", "site.not_found"),
)(get_hostnames)
