"""SetCertificate (Type=upload): the server certificate the edge shows for a site's hostnames."""

from __future__ import annotations

from typing import Any

from certgate.api.errors import invalid_parameter, missing_parameter
from certgate.api.registry import REGISTRY, Call
from certgate.api.wire import Kind, b, f, q
from certgate.ids import SiteId
from certgate.pki.pem import fingerprint_sha256, load_certificates
from certgate.services import edge_certificates

UPLOAD = "upload"


@REGISTRY.action(
    "SetCertificate",
    group="Edge certificates",
    method="POST",
    summary="Upload the edge's server certificate (Type=upload): leaf first, then intermediates, with its "
    "private key; installed on every record of the site that its DNS SANs cover.",
    params=(
        b("SiteId", Kind.LONG, "site id", required=True),
        b("Type", Kind.STR, "upload (cas and keyless are not supported)", required=True),
        b("Certificate", Kind.STR, "PEM chain, leaf first"),
        b("PrivateKey", Kind.STR, "PEM private key of the leaf"),
        b("Name", Kind.STR, "accepted and ignored", max_length=128),
        b("Id", Kind.STR, "accepted and ignored: certificates are replaced per hostname"),
        b("CasId", Kind.LONG, "not supported", supported=False),
        b("Region", Kind.STR, "not supported", supported=False),
        q("KeyServerId", Kind.STR, "not supported", supported=False),
        q("SecurityToken", Kind.STR, "accepted and ignored"),
    ),
    fields=(f("Id", "str", "the leaf certificate's SHA-256 fingerprint (64 lowercase hex)"),),
    mutates=True,
    errors=(
        "edge_cert.no_hostname",
        "edge_cert.key_mismatch",
        "edge_cert.expired",
        "pem.malformed",
        "site.not_found",
    ),
)
def set_certificate(call: Call) -> dict[str, Any]:
    p = call.params
    if p.get_str("Type") != UPLOAD:
        raise invalid_parameter("Type", "certgate supports Type=upload only")
    chain = p.opt_str("Certificate")
    if not chain:
        raise missing_parameter("Certificate")
    key = p.opt_str("PrivateKey")
    if not key:
        raise missing_parameter("PrivateKey")
    edge_certificates.upload_edge_certificate(
        call.ctx, call.account.id, SiteId(p.get_int("SiteId")), chain_pem=chain, key_pem=key
    )
    return {"Id": fingerprint_sha256(load_certificates(chain)[0])}
