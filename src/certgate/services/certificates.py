"""Client certificates issued by an account's managed CA (PRODUCT §2).

The generated private key exists only in the ``IssuedClientCertificate`` returned to the caller:
it is never passed to the store, a log or a cache.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, replace

from cryptography import x509

from certgate.errors import Conflict, InvalidArgument, NotFound
from certgate.ids import AccountId, CACertificateId, CertificateId, SiteId
from certgate.model import CertificateStatus, CertificateSummary, ClientCertificate, RevokedSerial, Site
from certgate.pki.authority import CertificateAuthority
from certgate.pki.csr import load_csr
from certgate.pki.describe import CertificateFacts, describe_certificate
from certgate.pki.keys import KeyType, generate_private_key, private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.pki.profiles import ClientCertificateProfile, validate_validity_days
from certgate.services.accounts import unseal_authority
from certgate.services.context import ServiceContext
from certgate.services.ports import Transaction
from certgate.services.sites import require_site


@dataclass(frozen=True, slots=True)
class IssuedClientCertificate:
    certificate: ClientCertificate
    private_key_pem: str | None  # only for server-made keys; shown once


def summarize(cert: x509.Certificate, facts: CertificateFacts | None = None) -> CertificateSummary:
    """The stored summary of ``cert``; ``facts`` when already known (a fresh issuance's
    ``IssuedCertificate.facts``, equal to ``describe_certificate(cert)``), else described."""
    if facts is None:
        facts = describe_certificate(cert)
    return CertificateSummary(
        certificate_pem=certificate_to_pem(cert),
        common_name=facts.common_name,
        subject_dn=facts.subject_dn,
        issuer_dn=facts.issuer_dn,
        issuer_common_name=facts.issuer_common_name,
        serial_hex=facts.serial_hex,
        fingerprint_sha256=facts.fingerprint_sha256,
        signature_algorithm=facts.signature_algorithm,
        public_key_algorithm=facts.public_key_algorithm,
        san=facts.san,
        not_before=facts.not_before,
        not_after=facts.not_after,
    )


@functools.cache
def _profile(min_days: int, max_days: int) -> ClientCertificateProfile:
    # One per limits pair, not one per call: building (and validating) it cost ~5 us per issuance.
    return ClientCertificateProfile(min_validity_days=min_days, max_validity_days=max_days)


def _managed_authority(
    ctx: ServiceContext, tx: Transaction, account_id: AccountId
) -> tuple[CACertificateId, CertificateAuthority]:
    authority = tx.get_managed_authority(account_id)
    if authority is None:
        raise NotFound("the account has no managed CA", reason="account.no_ca")
    ca = ctx.authority_cache.get(authority.sealed_key)
    if ca is None:
        ca = unseal_authority(ctx, authority)
        if len(ctx.authority_cache) > 1024:
            ctx.authority_cache.clear()
        ctx.authority_cache[authority.sealed_key] = ca
    return authority.id, ca


def issue_client_certificate(
    ctx: ServiceContext,
    account_id: AccountId,
    site_id: SiteId,
    *,
    validity_days: int,
    csr_pem: str | None = None,
    key_type: str | None = None,
) -> IssuedClientCertificate:
    """Server-made key when ``key_type`` is given and ``csr_pem`` is not; the CSR wins otherwise."""
    profile = _profile(ctx.limits.validity_days_min, ctx.limits.validity_days_max)
    validate_validity_days(validity_days, profile)
    csr = load_csr(csr_pem, max_bytes=ctx.limits.csr_max_bytes) if csr_pem else None
    kt = None
    if csr is None:
        if not key_type:
            raise InvalidArgument("either CSR or PkeyType must be given", reason="certificate.no_key_source")
        kt = KeyType.parse(key_type)
    cert_id = CertificateId(ctx.ids.hex_id())
    now = ctx.clock.now()
    # The key pair before the unit of work: RSA keys take up to seconds to make, and every other
    # writer (and, with SQLite's group commit, every issuance waiting for the same commit) would
    # wait for them under the writer lock.
    key = generate_private_key(kt) if kt is not None else None
    # One unit of work: signing takes a fraction of a millisecond, and a single commit keeps
    # issuance fast and never stores a certificate for a site that vanished meanwhile.
    with ctx.store.transaction() as tx:
        require_site(tx, account_id, site_id)
        authority_id, ca = _managed_authority(ctx, tx, account_id)
        if csr is not None:
            issued = ca.issue_client_certificate(now=now, validity_days=validity_days, csr=csr)
        else:
            issued = ca.issue_client_certificate(
                now=now, validity_days=validity_days, private_key=key, common_name=cert_id
            )
        record = ClientCertificate(
            id=cert_id,
            account_id=account_id,
            site_id=site_id,
            authority_id=authority_id,
            status=CertificateStatus.ACTIVE,
            validity_days=validity_days,
            cert=summarize(issued.certificate, issued.facts),
            created_at=now,
            updated_at=now,
        )
        tx.add_client_certificate(record)
    key_pem = private_key_to_pem(issued.private_key) if issued.private_key is not None else None
    return IssuedClientCertificate(record, key_pem)


def _require_certificate(
    tx: Transaction, account_id: AccountId, site_id: SiteId, cert_id: CertificateId
) -> tuple[Site, ClientCertificate]:
    site = require_site(tx, account_id, site_id)
    cert = tx.get_client_certificate(account_id, site_id, cert_id)
    if cert is None:
        raise NotFound(f"certificate {cert_id} does not exist", reason="certificate.not_found")
    return site, cert


def get_client_certificate(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, cert_id: CertificateId
) -> tuple[Site, ClientCertificate]:
    with ctx.store.read_transaction() as tx:
        return _require_certificate(tx, account_id, site_id, cert_id)


def list_client_certificates(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, *, page: int = 1, size: int = 20
) -> tuple[Site, list[ClientCertificate], int]:
    with ctx.store.read_transaction() as tx:
        site = require_site(tx, account_id, site_id)
        items, total = tx.list_client_certificates(site_id, offset=(page - 1) * size, limit=size)
    return site, items, total


def _transition(
    ctx: ServiceContext,
    account_id: AccountId,
    site_id: SiteId,
    cert_id: CertificateId,
    *,
    expect: CertificateStatus,
    action: str,
) -> tuple[Site, ClientCertificate]:
    now = ctx.clock.now()
    with ctx.store.transaction() as tx:
        site, cert = _require_certificate(tx, account_id, site_id, cert_id)
        if cert.status is not expect:
            raise Conflict(
                f"cannot {action} a certificate in status {cert.status.value}",
                reason="certificate.status",
            )
        if action == "delete":
            tx.delete_client_certificate(cert.id)
            return site, cert
        if action == "revoke":
            updated = replace(cert, status=CertificateStatus.REVOKED, revoked_at=now, updated_at=now)
            tx.add_revoked_serial(
                RevokedSerial(cert.authority_id, cert.cert.serial_hex, now, cert.cert.not_after)
            )
        else:
            updated = replace(cert, status=CertificateStatus.ACTIVE, revoked_at=None, updated_at=now)
            tx.remove_revoked_serial(cert.authority_id, cert.cert.serial_hex)
        tx.update_client_certificate(updated)
        return site, updated


def revoke_client_certificate(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, cert_id: CertificateId
) -> tuple[Site, ClientCertificate]:
    return _transition(ctx, account_id, site_id, cert_id, expect=CertificateStatus.ACTIVE, action="revoke")


def activate_client_certificate(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, cert_id: CertificateId
) -> tuple[Site, ClientCertificate]:
    return _transition(ctx, account_id, site_id, cert_id, expect=CertificateStatus.REVOKED, action="activate")


def delete_client_certificate(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, cert_id: CertificateId
) -> tuple[Site, ClientCertificate]:
    """Only revoked certificates can be deleted; their serial stays revoked until it expires."""
    return _transition(ctx, account_id, site_id, cert_id, expect=CertificateStatus.REVOKED, action="delete")


def is_expired(cert: ClientCertificate, now: dt.datetime) -> bool:
    return cert.cert.not_after <= now
