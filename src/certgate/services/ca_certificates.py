"""Custom client CAs (PRODUCT §3) and the hostname bindings of every CA of a site.

A binding is addressed by CA id; "no id" means the account's managed CA, as in ESA. Binding
calls replace the whole list, atomically: a bad name refuses the call and changes nothing.
"""

from __future__ import annotations

from certgate.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, QuotaExceeded
from certgate.ids import AccountId, CACertificateId, SiteId
from certgate.model import Binding, ClientCACertificate, Site
from certgate.pki.custom_ca import validate_custom_ca
from certgate.services.certificates import summarize
from certgate.services.context import ServiceContext
from certgate.services.hostnames import normalize_site_hostnames
from certgate.services.ports import Transaction
from certgate.services.sites import require_site


def upload_ca_certificate(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, *, certificate_pem: str, name: str = ""
) -> ClientCACertificate:
    now = ctx.clock.now()
    cert = validate_custom_ca(certificate_pem, now=now, max_bytes=ctx.limits.ca_pem_max_bytes)
    summary = summarize(cert)
    name = name.strip() or summary.common_name or summary.fingerprint_sha256[:16]
    if len(name) > ctx.limits.name_max_chars:
        raise InvalidArgument("Name is limited to 128 characters", reason="ca.name")
    record = ClientCACertificate(
        id=CACertificateId(ctx.ids.hex_id()),
        account_id=account_id,
        site_id=site_id,
        name=name,
        cert=summary,
        created_at=now,
        updated_at=now,
    )
    with ctx.store.transaction() as tx:
        require_site(tx, account_id, site_id)
        account = tx.get_account(account_id)
        assert account is not None
        existing, _ = tx.list_ca_certificates(site_id, offset=0, limit=10_000)
        if any(c.cert.fingerprint_sha256 == summary.fingerprint_sha256 for c in existing):
            raise AlreadyExists(
                f"this CA certificate (SHA-256 {summary.fingerprint_sha256}) is already uploaded to the site",
                reason="ca.duplicate",
            )
        limit = account.plan.custom_ca_limit
        if tx.count_ca_certificates(account_id) >= limit:
            raise QuotaExceeded(
                f"the plan allows at most {limit} custom CA certificates", reason="ca.quota_exceeded"
            )
        tx.add_ca_certificate(record)
    return record


def _require_ca(
    tx: Transaction, account_id: AccountId, site_id: SiteId, ca_id: CACertificateId
) -> tuple[Site, ClientCACertificate]:
    site = require_site(tx, account_id, site_id)
    ca = tx.get_ca_certificate(account_id, site_id, ca_id)
    if ca is None:
        raise NotFound(f"CA certificate {ca_id} does not exist", reason="ca.not_found")
    return site, ca


def get_ca_certificate(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, ca_id: CACertificateId
) -> tuple[Site, ClientCACertificate]:
    with ctx.store.read_transaction() as tx:
        return _require_ca(tx, account_id, site_id, ca_id)


def list_ca_certificates(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, *, page: int = 1, size: int = 20
) -> tuple[Site, list[ClientCACertificate], int]:
    with ctx.store.read_transaction() as tx:
        site = require_site(tx, account_id, site_id)
        items, total = tx.list_ca_certificates(site_id, offset=(page - 1) * size, limit=size)
    return site, items, total


def delete_ca_certificate(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, ca_id: CACertificateId
) -> Site:
    with ctx.store.transaction() as tx:
        site, ca = _require_ca(tx, account_id, site_id, ca_id)
        bound = tx.get_binding(site_id, ca.id).hostnames
        if bound:
            raise Conflict(
                f"CA certificate {ca_id} is still bound to {', '.join(bound)}; unbind it first",
                reason="ca.still_bound",
            )
        tx.delete_ca_certificate(ca.id)
        return site


def _resolve_ca(
    tx: Transaction, account_id: AccountId, site_id: SiteId, ca_id: str | None
) -> tuple[Site, CACertificateId]:
    site = require_site(tx, account_id, site_id)
    managed = tx.get_managed_authority(account_id)
    if managed is None:
        raise NotFound("the account has no managed CA", reason="account.no_ca")
    if not ca_id or ca_id == managed.id:
        return site, managed.id
    _, ca = _require_ca(tx, account_id, site_id, CACertificateId(ca_id))
    return site, ca.id


def set_hostnames(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, ca_id: str | None, hostnames: list[str]
) -> tuple[Site, Binding]:
    with ctx.store.transaction() as tx:
        account = tx.get_account(account_id)
        assert account is not None
        site, resolved = _resolve_ca(tx, account_id, site_id, ca_id)
        names = normalize_site_hostnames(hostnames, site.name, limit=account.plan.hostnames_per_call)
        binding = Binding(site_id=site.id, ca_id=resolved, hostnames=names)
        tx.set_binding(binding)
        return site, binding


def get_hostnames(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, ca_id: str | None
) -> tuple[Site, Binding]:
    with ctx.store.read_transaction() as tx:
        site, resolved = _resolve_ca(tx, account_id, site_id, ca_id)
        return site, tx.get_binding(site.id, resolved)
