"""Sites (apex domains) and records (proxied hostnames with their origin).

A proxied record is a hostname the edge serves; creating one gives it an edge server
certificate from the installation's edge CA unless a certificate was uploaded for it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from certgate.errors import AlreadyExists, InvalidArgument, NotFound, QuotaExceeded
from certgate.ids import AccountId, RecordId, SiteId
from certgate.model import EdgeCertificate, Record, Site
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.services.accounts import get_account, unseal_authority
from certgate.services.context import ServiceContext
from certgate.services.hostnames import belongs_to_site, normalize_hostname
from certgate.services.ports import Transaction

ACCESS_TYPES = ("NS", "CNAME")
COVERAGES = ("domestic", "global", "overseas")
RECORD_TYPES = ("A/AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA")
PROXIABLE_TYPES = ("A/AAAA", "CNAME")
SEARCH_TYPES = ("exact", "prefix", "suffix", "fuzzy")


def edge_key_context(hostname: str) -> str:
    return f"edge-cert:{hostname}"


def require_site(tx: Transaction, account_id: AccountId, site_id: SiteId) -> Site:
    site = tx.get_site(account_id, site_id)
    if site is None:
        raise NotFound(f"site {site_id} does not exist", reason="site.not_found")
    return site


def create_site(
    ctx: ServiceContext,
    account_id: AccountId,
    *,
    name: str,
    access_type: str,
    coverage: str,
    instance_id: str,
) -> Site:
    account = get_account(ctx, account_id)
    site_name = normalize_hostname(name)
    if access_type not in ACCESS_TYPES:
        raise InvalidArgument(
            f"AccessType must be one of {', '.join(ACCESS_TYPES)}", reason="site.access_type"
        )
    if coverage not in COVERAGES:
        raise InvalidArgument(f"Coverage must be one of {', '.join(COVERAGES)}", reason="site.coverage")
    if instance_id != account.instance_id:
        raise NotFound(f"plan instance {instance_id} does not exist", reason="site.instance_not_found")
    now = ctx.clock.now()
    site = Site(
        id=SiteId(ctx.ids.int_id()),
        account_id=account_id,
        name=site_name,
        access_type=access_type,
        coverage=coverage,
        instance_id=instance_id,
        status="active",
        verify_code=f"verify_{ctx.ids.hex_id()}",
        created_at=now,
        updated_at=now,
    )
    with ctx.store.transaction() as tx:
        if tx.get_site_by_name(site_name) is not None:
            raise AlreadyExists(f"site {site_name} already exists", reason="site.exists")
        _, total = tx.list_sites(account_id, name=None, match="exact", offset=0, limit=1)
        if total >= account.plan.sites_limit:
            raise QuotaExceeded(
                f"the plan allows {account.plan.sites_limit} sites", reason="site.quota_exceeded"
            )
        tx.add_site(site)
    return site


def get_site(ctx: ServiceContext, account_id: AccountId, site_id: SiteId) -> Site:
    with ctx.store.read_transaction() as tx:
        return require_site(tx, account_id, site_id)


def list_sites(
    ctx: ServiceContext,
    account_id: AccountId,
    *,
    name: str | None = None,
    match: str = "exact",
    page: int = 1,
    size: int = 20,
) -> tuple[list[Site], int]:
    if match not in SEARCH_TYPES:
        raise InvalidArgument(
            f"SiteSearchType must be one of {', '.join(SEARCH_TYPES)}", reason="site.search"
        )
    with ctx.store.read_transaction() as tx:
        return tx.list_sites(account_id, name=name, match=match, offset=(page - 1) * size, limit=size)


def delete_site(ctx: ServiceContext, account_id: AccountId, site_id: SiteId) -> None:
    with ctx.store.transaction() as tx:
        require_site(tx, account_id, site_id)
        tx.delete_site(site_id)


def _check_record_value(rtype: str, value: str) -> str:
    value = value.strip()
    if rtype == "A/AAAA":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise InvalidArgument(
                f"Data.Value {value!r} is not an IP address", reason="record.value"
            ) from None
    if rtype == "CNAME":
        return normalize_hostname(value)
    if not value:
        raise InvalidArgument("Data.Value is empty", reason="record.value")
    return value


def create_record(
    ctx: ServiceContext,
    account_id: AccountId,
    site_id: SiteId,
    *,
    name: str,
    rtype: str,
    ttl: int,
    value: str,
    proxied: bool,
    biz_name: str = "",
    comment: str = "",
) -> Record:
    if rtype not in RECORD_TYPES:
        raise InvalidArgument(f"Type must be one of {', '.join(RECORD_TYPES)}", reason="record.type")
    if proxied and rtype not in PROXIABLE_TYPES:
        raise InvalidArgument(f"a {rtype} record cannot be proxied", reason="record.proxied")
    if not 1 <= ttl <= 86400:
        raise InvalidArgument("Ttl must be 1 (auto) to 86400", reason="record.ttl")
    if len(comment) > 100:
        raise InvalidArgument("Comment is limited to 100 characters", reason="record.comment")
    hostname = normalize_hostname(name, allow_wildcard=True)
    origin = _check_record_value(rtype, value)
    now = ctx.clock.now()
    record = Record(
        id=RecordId(ctx.ids.int_id()),
        site_id=site_id,
        name=hostname,
        type=rtype,
        ttl=ttl,
        value=origin,
        proxied=proxied,
        biz_name=biz_name or ("web" if proxied else ""),
        comment=comment,
        created_at=now,
        updated_at=now,
    )
    with ctx.store.transaction() as tx:
        site = require_site(tx, account_id, site_id)
        if not belongs_to_site(hostname, site.name):
            raise InvalidArgument(
                f"record {hostname} does not belong to site {site.name}", reason="hostname.foreign_site"
            )
        if tx.get_record_by_name(hostname) is not None:
            raise AlreadyExists(f"record {hostname} already exists", reason="record.exists")
        tx.add_record(record)
        if proxied and tx.get_edge_certificate(hostname) is None:
            tx.put_edge_certificate(issue_edge_certificate(ctx, tx, site_id, hostname, now))
    return record


def issue_edge_certificate(
    ctx: ServiceContext, tx: Transaction, site_id: SiteId, hostname: str, now: dt.datetime
) -> EdgeCertificate:
    """An ECDSA P-256 server certificate for ``hostname`` from the installation's edge CA."""
    authority = tx.get_edge_authority()
    if authority is None:
        raise NotFound("the installation has no edge CA; run `certgate admin init`", reason="edge.no_ca")
    ca = unseal_authority(ctx, authority)
    issued = ca.issue_server_certificate(
        [hostname], now=now, validity_days=ctx.limits.edge_certificate_days, key_type=KeyType.ECDSA_P256
    )
    assert issued.private_key is not None
    chain = certificate_to_pem(issued.certificate) + certificate_to_pem(ca.certificate)
    return EdgeCertificate(
        site_id=site_id,
        hostname=hostname,
        chain_pem=chain,
        sealed_key=ctx.sealer.seal(
            private_key_to_pem(issued.private_key).encode(), context=edge_key_context(hostname)
        ),
        uploaded=False,
        not_after=issued.certificate.not_valid_after_utc,
        updated_at=now,
    )


def list_records(
    ctx: ServiceContext,
    account_id: AccountId,
    site_id: SiteId,
    *,
    name: str | None = None,
    match: str = "exact",
    page: int = 1,
    size: int = 500,
) -> tuple[Site, list[Record], int]:
    if match not in SEARCH_TYPES:
        raise InvalidArgument(
            f"RecordMatchType must be one of {', '.join(SEARCH_TYPES)}", reason="record.search"
        )
    with ctx.store.read_transaction() as tx:
        site = require_site(tx, account_id, site_id)
        records, total = tx.list_records(
            site_id, name=name, match=match, offset=(page - 1) * size, limit=size
        )
    return site, records, total


def find_record(ctx: ServiceContext, account_id: AccountId, record_id: RecordId) -> tuple[Site, Record]:
    """A record by id alone (ESA DeleteRecord names only RecordId), within the caller's account."""
    with ctx.store.read_transaction() as tx:
        for site in tx.list_sites(account_id, name=None, match="exact", offset=0, limit=10_000)[0]:
            record = tx.get_record(site.id, record_id)
            if record is not None:
                return site, record
    raise NotFound(f"record {record_id} does not exist", reason="record.not_found")


def delete_record(ctx: ServiceContext, account_id: AccountId, record_id: RecordId) -> None:
    _, record = find_record(ctx, account_id, record_id)
    with ctx.store.transaction() as tx:
        tx.delete_record(record.id)
        edge = tx.get_edge_certificate(record.name)
        if edge is not None and not edge.uploaded:
            tx.delete_edge_certificate(record.name)


def site_hostnames(tx: Transaction, site: Site) -> list[str]:
    records, _ = tx.list_records(site.id, name=None, match="exact", offset=0, limit=100_000)
    return [r.name for r in records]
