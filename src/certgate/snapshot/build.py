"""Compile model objects into a Snapshot. Pure: the caller passes everything, already unsealed.

What is served: every proxied record of every site. A hostname's trust set is the set of CAs
whose binding names it, exactly or through a one-label wildcard binding (``*.example.com``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from certgate.model import (
    Authority,
    Binding,
    ClientCACertificate,
    OriginRule,
    Record,
    RevokedSerial,
    RuleStatus,
    Site,
    WafRule,
)
from certgate.snapshot.format import (
    EdgeTLSCertificate,
    HostPolicy,
    OriginPolicy,
    OriginRuleSpec,
    SitePolicy,
    Snapshot,
    TrustAnchor,
    WafRuleSpec,
)


def _bound(hostname: str, bound: set[str]) -> bool:
    if hostname in bound:
        return True
    if "." in hostname and not hostname.startswith("*."):
        return "*." + hostname.split(".", 1)[1] in bound
    return False


def build_snapshot(
    *,
    version: int,
    now: dt.datetime,
    sites: Iterable[Site],
    records: Iterable[Record],
    managed_authorities: Iterable[Authority],
    custom_cas: Iterable[ClientCACertificate],
    bindings: Iterable[Binding],
    revoked: Iterable[RevokedSerial],
    waf_rules: Iterable[WafRule],
    origin_rules: Iterable[OriginRule],
    edge_certificates: Mapping[str, EdgeTLSCertificate],
) -> Snapshot:
    """``edge_certificates`` maps every served hostname to its (unsealed) TLS certificate."""
    site_list = list(sites)
    revoked_by_ca: dict[str, list[str]] = {}
    for entry in revoked:
        if entry.not_after > now:  # an expired certificate fails on its dates anyway
            revoked_by_ca.setdefault(entry.authority_id, []).append(entry.serial_hex)

    anchors: dict[str, TrustAnchor] = {}
    managed_by_account = {a.account_id: a for a in managed_authorities}
    for authority in managed_by_account.values():
        anchors[authority.id] = TrustAnchor(
            id=authority.id,
            kind="managed",
            certificate_pem=authority.certificate_pem,
            revoked_serials=tuple(sorted(revoked_by_ca.get(authority.id, ()))),
        )
    for ca in custom_cas:
        anchors[ca.id] = TrustAnchor(id=ca.id, kind="custom", certificate_pem=ca.cert.certificate_pem)

    rules_by_site: dict[int, list[WafRuleSpec]] = {}
    for rule in sorted(waf_rules, key=lambda r: (r.position, r.id)):
        if rule.status is RuleStatus.ON and rule.phase == "http_custom":
            rules_by_site.setdefault(rule.site_id, []).append(
                WafRuleSpec(
                    id=rule.id,
                    name=rule.name,
                    expression=rule.expression,
                    action=rule.action.value,
                    position=rule.position,
                )
            )
    origin_by_site: dict[int, list[OriginRuleSpec]] = {}
    for orule in sorted(origin_rules, key=lambda r: (r.sequence, r.id)):
        if orule.enabled:
            origin_by_site.setdefault(orule.site_id, []).append(
                OriginRuleSpec(
                    id=orule.id,
                    name=orule.name,
                    expression=orule.expression,
                    sequence=orule.sequence,
                    scheme=orule.origin_scheme,
                    http_port=orule.origin_http_port,
                    https_port=orule.origin_https_port,
                    host=orule.origin_host,
                    sni=orule.origin_sni,
                    read_timeout=orule.origin_read_timeout,
                    address=orule.dns_record,
                )
            )

    site_policies: dict[int, SitePolicy] = {
        site.id: SitePolicy(
            id=site.id,
            account_id=site.account_id,
            name=site.name,
            waf_rules=tuple(rules_by_site.get(site.id, ())),
            origin_rules=tuple(origin_by_site.get(site.id, ())),
        )
        for site in site_list
    }

    # A binding only counts if its CA still exists and belongs to the binding's site/account.
    site_account = {site.id: site.account_id for site in site_list}
    bound_by_site: dict[int, dict[str, set[str]]] = {}
    for binding in bindings:
        anchor = anchors.get(binding.ca_id)
        if anchor is None or binding.site_id not in site_account:
            continue
        bound_by_site.setdefault(binding.site_id, {})[binding.ca_id] = set(binding.hostnames)

    hosts: dict[str, HostPolicy] = {}
    for record in records:
        if not record.proxied or record.site_id not in site_policies:
            continue
        certificate = edge_certificates.get(record.name)
        if certificate is None:
            continue
        trust = tuple(
            sorted(
                ca_id
                for ca_id, names in bound_by_site.get(record.site_id, {}).items()
                if _bound(record.name, names)
            )
        )
        hosts[record.name] = HostPolicy(
            hostname=record.name,
            site_id=record.site_id,
            origin=OriginPolicy(address=record.value),
            certificate=certificate,
            trust=trust,
        )
    used = {a for h in hosts.values() for a in h.trust}
    return Snapshot(
        version=version,
        generated_at=int(now.timestamp()),
        anchors={k: v for k, v in anchors.items() if k in used},
        sites=site_policies,
        hosts=hosts,
    )
