"""Edge server certificates: uploaded by the customer (ESA SetCertificate, Type=upload), or issued
by the installation's edge CA for every proxied hostname and renewed before they expire."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certgate.errors import InvalidArgument
from certgate.ids import AccountId, SiteId
from certgate.model import EdgeCertificate, Site
from certgate.pki.keys import load_private_key_pem
from certgate.pki.pem import certificate_to_pem, load_certificates
from certgate.services.context import ServiceContext
from certgate.services.sites import edge_key_context, issue_edge_certificate, require_site, site_hostnames


def _san_matches(hostname: str, sans: list[str]) -> bool:
    for san in sans:
        san = san.lower()
        if san == hostname:
            return True
        if san.startswith("*.") and "." in hostname and hostname.split(".", 1)[1] == san[2:]:
            return True
    return False


def upload_edge_certificate(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, *, chain_pem: str, key_pem: str
) -> tuple[Site, list[str]]:
    """Install an uploaded certificate on every hostname of the site that its SANs cover."""
    if len(chain_pem) > ctx.limits.edge_certificate_max_bytes:
        raise InvalidArgument("Certificate is too large", reason="edge_cert.too_large")
    chain = load_certificates(chain_pem)
    if not chain:
        raise InvalidArgument("Certificate holds no certificate", reason="edge_cert.malformed")
    leaf = chain[0]
    try:
        key = load_private_key_pem(key_pem)
    except Exception:
        raise InvalidArgument("PrivateKey is not a valid PEM private key", reason="edge_cert.key") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, pub) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, pub
    ):
        raise InvalidArgument("PrivateKey does not match the certificate", reason="edge_cert.key_mismatch")
    now = ctx.clock.now()
    if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc:
        raise InvalidArgument("the certificate is not currently valid", reason="edge_cert.expired")
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sans.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    chain_text = "".join(certificate_to_pem(c) for c in chain)
    with ctx.store.transaction() as tx:
        site = require_site(tx, account_id, site_id)
        covered = [h for h in site_hostnames(tx, site) if _san_matches(h, names)]
        if not covered:
            raise InvalidArgument(
                "the certificate covers no hostname of this site (check its DNS SANs)",
                reason="edge_cert.no_hostname",
            )
        for hostname in covered:
            tx.put_edge_certificate(
                EdgeCertificate(
                    site_id=site.id,
                    hostname=hostname,
                    chain_pem=chain_text,
                    sealed_key=ctx.sealer.seal(key_pem.encode(), context=edge_key_context(hostname)),
                    uploaded=True,
                    not_after=leaf.not_valid_after_utc,
                    updated_at=now,
                )
            )
    return site, covered


def renew_edge_certificates(ctx: ServiceContext) -> list[str]:
    """Re-issue automatic edge certificates that expire within the renewal window."""
    now = ctx.clock.now()
    horizon = now + dt.timedelta(days=ctx.limits.edge_certificate_renew_days)
    with ctx.store.read_transaction() as tx:
        due = [c for c in tx.list_edge_certificates() if not c.uploaded and c.not_after <= horizon]
    renewed: list[str] = []
    for cert in due:
        with ctx.store.transaction() as tx:
            tx.put_edge_certificate(issue_edge_certificate(ctx, tx, cert.site_id, cert.hostname, now))
        renewed.append(cert.hostname)
    return renewed
