"""Sites (apex domains of an account) and their DNS records (proxied hostnames and origins).

Resource groups, tags, NS delegation and plan subscriptions are not modelled: the parameters
that only select or label by them are accepted and ignored (documented per parameter); the ones
that would change behaviour are refused when given.
"""

from __future__ import annotations

from typing import Any

from certgate.api.actions.certificates import SITE_ID
from certgate.api.errors import invalid_parameter
from certgate.api.registry import REGISTRY, Call
from certgate.api.wire import Kind, PageRule, Params, Shape, f, iso_z, q
from certgate.ids import RecordId, SiteId
from certgate.model import Account, Record, Site
from certgate.services import sites

SITE_PAGES = PageRule(default_size=20, max_size=500)
RECORD_PAGES = PageRule(default_size=500, max_size=500)
BIZ_NAMES = ("web", "api", "image_video")
SOURCE_TYPES = ("OP", "Domain")  # plain origins; OSS/S3/LB need credentials certgate does not model
_SCAN_PAGE = 500

_SITE_COMMON = (
    f("SiteId", "int"),
    f("SiteName", "str"),
    f("AccessType", "str", "NS | CNAME"),
    f("Coverage", "str", "domestic | global | overseas"),
    f("CnameZone", "str", "always empty: certgate hands out no CNAME zone"),
    f("CreateTime", "str", "ISO 8601 UTC"),
    f("UpdateTime", "str", "ISO 8601 UTC"),
    f("InstanceId", "str", "the account's plan instance"),
    f("NameServerList", "str", "always empty: certgate runs no authoritative DNS"),
    f("OfflineReason", "str", "always empty"),
    f("PlanName", "str", "the account's plan"),
    f("PlanSpecName", "str", "the account's plan"),
    f("ResourceGroupId", "str", "always empty: resource groups are not modelled"),
    f("Status", "str", "active"),
    f("Tags", "object", "always {}"),
    f("VerifyCode", "str", "TXT verification code"),
)
SITE_MODEL = Shape(
    "SiteModel",
    (*_SITE_COMMON, f("VanityNSList", "object", "always {}"), f("VersionManagement", "bool", "always false")),
)
SITE_ITEM = Shape("Site", (*_SITE_COMMON, f("VisitTime", "str", "ISO 8601 UTC (the creation time)")))
RECORD_DATA = Shape("RecordData", (f("Value", "str", "origin IP or domain, or the TXT/MX/... value"),))
RECORD_ITEM = Shape(
    "Record",
    (
        f("RecordId", "int"),
        f("RecordName", "str", "full hostname"),
        f("RecordType", "str", "A/AAAA, CNAME, TXT, MX, NS, SRV, CAA"),
        f("SiteId", "int"),
        f("SiteName", "str"),
        f("Proxied", "bool"),
        f("Ttl", "int"),
        f("BizName", "str"),
        f("Comment", "str"),
        f("Data", "shape", shape=RECORD_DATA),
        f("CreateTime", "str", "ISO 8601 UTC"),
        f("UpdateTime", "str", "ISO 8601 UTC"),
    ),
)


def _site_common(site: Site, account: Account) -> dict[str, Any]:
    return {
        "SiteId": site.id,
        "SiteName": site.name,
        "AccessType": site.access_type,
        "Coverage": site.coverage,
        "CnameZone": "",
        "CreateTime": iso_z(site.created_at),
        "UpdateTime": iso_z(site.updated_at),
        "InstanceId": site.instance_id,
        "NameServerList": "",
        "OfflineReason": "",
        "PlanName": account.plan.name,
        "PlanSpecName": account.plan.name,
        "ResourceGroupId": "",
        "Status": site.status,
        "Tags": {},
        "VerifyCode": site.verify_code,
    }


@REGISTRY.action(
    "CreateSite",
    group="Sites and records",
    method="POST",
    summary="Add an apex domain to the account; site names are unique in the installation.",
    params=(
        q(
            "SiteName",
            Kind.STR,
            "apex domain, e.g. example.com (IDNs are turned to punycode)",
            required=True,
            max_length=253,
        ),
        q("AccessType", Kind.STR, "NS | CNAME", required=True),
        q("Coverage", Kind.STR, "domestic | global | overseas", required=True),
        q(
            "InstanceId",
            Kind.STR,
            "the account's plan instance id (certgate admin create-account prints it)",
            required=True,
        ),
        q("ResourceGroupId", Kind.STR, "accepted and ignored (no resource groups)"),
        q("ResourceOwner", Kind.LONG, "accepted and ignored"),
    ),
    fields=(
        f("SiteId", "int"),
        f("VerifyCode", "str", "TXT verification code"),
        f("NameServerList", "str", "always empty: certgate runs no authoritative DNS"),
    ),
    mutates=True,
    errors=(
        "site.exists",
        "site.instance_not_found",
        "site.access_type",
        "site.coverage",
        "hostname.malformed",
        "site.quota_exceeded",
    ),
)
def create_site(call: Call) -> dict[str, Any]:
    p = call.params
    site = sites.create_site(
        call.ctx,
        call.account.id,
        name=p.get_str("SiteName"),
        access_type=p.get_str("AccessType"),
        coverage=p.get_str("Coverage"),
        instance_id=p.get_str("InstanceId"),
    )
    return {"SiteId": site.id, "VerifyCode": site.verify_code, "NameServerList": ""}


@REGISTRY.action(
    "GetSite",
    group="Sites and records",
    method="GET",
    summary="One site of the account.",
    params=(SITE_ID,),
    fields=(f("SiteModel", "shape", shape=SITE_MODEL),),
    mutates=False,
    errors=("site.not_found",),
)
def get_site(call: Call) -> dict[str, Any]:
    site = sites.get_site(call.ctx, call.account.id, SiteId(call.params.get_int("SiteId")))
    model = _site_common(site, call.account)
    model.update({"VanityNSList": {}, "VersionManagement": False})
    return {"SiteModel": model}


def _tag_filter(params: Params) -> bool:
    """True when a TagFilter is given that selects something (no site has tags)."""
    value = params.opt_json("TagFilter")
    if value is None:
        return False
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise invalid_parameter("TagFilter", "must be a JSON array of {Key, Value} objects")
    return bool(value)


def _site_selected(site: Site, account: Account, params: Params) -> bool:
    for name, actual in (
        ("AccessType", site.access_type),
        ("Coverage", site.coverage),
        ("Status", site.status),
    ):
        wanted = params.opt_str(name)
        if wanted and wanted != actual:
            return False
    plan = params.opt_str("PlanSubscribeType")
    if plan and plan != f"{account.plan.name}plan":
        return False
    return not (params.opt_bool("OnlyEnterprise") and account.plan.name != "enterprise")


_SITE_FILTERS = ("AccessType", "Coverage", "Status", "PlanSubscribeType", "OnlyEnterprise")


@REGISTRY.action(
    "ListSites",
    group="Sites and records",
    method="GET",
    summary="Sites of the account by name, paged (1-500 per page).",
    params=(
        q("SiteName", Kind.STR, "name to match (see SiteSearchType)", max_length=253),
        q("SiteSearchType", Kind.STR, "exact (default) | prefix | suffix | fuzzy"),
        q("AccessType", Kind.STR, "only sites of this access type"),
        q("Coverage", Kind.STR, "only sites of this coverage"),
        q("Status", Kind.STR, "only sites in this status"),
        q("OnlyEnterprise", Kind.BOOL, "only sites on an enterprise plan"),
        q("PlanSubscribeType", Kind.STR, "only sites on this plan (<plan name>plan, e.g. enterpriseplan)"),
        q("ResourceGroupId", Kind.STR, "accepted and ignored (no resource groups)"),
        q(
            "TagFilter",
            Kind.JSON,
            "JSON [{Key, Value}]; sites carry no tags, so a non-empty filter matches none",
        ),
        q("OrderBy", Kind.STR, "not supported", supported=False),
        *SITE_PAGES.params(),
    ),
    fields=(
        f("PageNumber", "int"),
        f("PageSize", "int"),
        f("TotalCount", "int"),
        f("Sites", "list[shape]", shape=SITE_ITEM),
    ),
    mutates=False,
    errors=("site.search",),
)
def list_sites(call: Call) -> dict[str, Any]:
    p = call.params
    paging = SITE_PAGES.paging(p)
    name = p.opt_str("SiteName") or None
    match = p.opt_str("SiteSearchType") or "exact"
    if _tag_filter(p):
        items: list[Site] = []
        total = 0
    elif any(p.has(n) for n in _SITE_FILTERS):
        selected = [s for s in _all_sites(call, name, match) if _site_selected(s, call.account, p)]
        items, total = selected[paging.offset : paging.offset + paging.size], len(selected)
    else:
        items, total = sites.list_sites(
            call.ctx, call.account.id, name=name, match=match, page=paging.number, size=paging.size
        )
    out_sites = []
    for site in items:
        entry = _site_common(site, call.account)
        entry["VisitTime"] = iso_z(site.created_at)
        out_sites.append(entry)
    return {"PageNumber": paging.number, "PageSize": paging.size, "TotalCount": total, "Sites": out_sites}


def _all_sites(call: Call, name: str | None, match: str) -> list[Site]:
    out: list[Site] = []
    page = 1
    while True:
        items, total = sites.list_sites(
            call.ctx, call.account.id, name=name, match=match, page=page, size=_SCAN_PAGE
        )
        out.extend(items)
        if not items or len(out) >= total:
            return out
        page += 1


@REGISTRY.action(
    "DeleteSite",
    group="Sites and records",
    method="POST",
    summary="Delete a site and everything under it (records, certificates, CAs, bindings, rules).",
    params=(SITE_ID, q("SecurityToken", Kind.STR, "accepted and ignored")),
    fields=(),
    mutates=True,
    errors=("site.not_found",),
)
def delete_site(call: Call) -> dict[str, Any]:
    sites.delete_site(call.ctx, call.account.id, SiteId(call.params.get_int("SiteId")))
    return {}


# -- records -----------------------------------------------------------------------------------


def _record_value(params: Params) -> str:
    data = params.json_object("Data")
    if data is None:  # pragma: no cover - Data is required, the decoder refuses its absence
        raise invalid_parameter("Data", "is required")
    unknown = sorted(set(data) - {"Value"})
    if unknown:
        raise invalid_parameter("Data", f"certgate only supports Data.Value (got {', '.join(unknown)})")
    value = data.get("Value")
    if not isinstance(value, str) or not value.strip():
        raise invalid_parameter("Data", 'must be a JSON object {"Value": "..."} with a non-empty string')
    return value


def _check_choice(params: Params, name: str, allowed: tuple[str, ...]) -> str | None:
    value = params.opt_str(name)
    if value and value not in allowed:
        raise invalid_parameter(name, f"must be one of {', '.join(allowed)}")
    return value or None


def _check_auth_conf(params: Params) -> None:
    conf = params.opt_json("AuthConf")
    if conf is not None and conf not in ({}, []):
        raise invalid_parameter("AuthConf", "origin authentication (OSS/S3) is not supported by certgate")


@REGISTRY.action(
    "CreateRecord",
    group="Sites and records",
    method="POST",
    summary="Add a hostname (full name) under a site; a proxied A/AAAA or CNAME record is served by the edge "
    "with an automatic certificate from the edge CA unless one was uploaded (SetCertificate).",
    params=(
        SITE_ID,
        q("RecordName", Kind.STR, "full hostname, e.g. www.example.com", required=True, max_length=253),
        q("Type", Kind.STR, "A/AAAA | CNAME | TXT | MX | NS | SRV | CAA", required=True),
        q("Ttl", Kind.INT, "1 (auto) to 86400", required=True),
        q("Data", Kind.JSON, 'JSON {"Value": "<origin IP or domain, or the record value>"}', required=True),
        q("Proxied", Kind.BOOL, "served by the edge (A/AAAA and CNAME only)"),
        q("BizName", Kind.STR, "web | api | image_video (default web when proxied)"),
        q("Comment", Kind.STR, "up to 100 characters"),
        q("SourceType", Kind.STR, "CNAME origin type: OP or Domain (OSS, S3, LB are not supported)"),
        q("AuthConf", Kind.JSON, "origin authentication: only {} is accepted"),
        q("HostPolicy", Kind.STR, "not supported", supported=False),
        q("HttpPorts", Kind.STR, "not supported", supported=False),
        q("HttpsPorts", Kind.STR, "not supported", supported=False),
    ),
    fields=(f("RecordId", "int"),),
    mutates=True,
    errors=(
        "record.exists",
        "hostname.foreign_site",
        "record.value",
        "record.type",
        "record.ttl",
        "site.not_found",
    ),
)
def create_record(call: Call) -> dict[str, Any]:
    p = call.params
    value = _record_value(p)
    _check_choice(p, "SourceType", SOURCE_TYPES)
    _check_auth_conf(p)
    biz = _check_choice(p, "BizName", BIZ_NAMES) or ""
    record = sites.create_record(
        call.ctx,
        call.account.id,
        SiteId(p.get_int("SiteId")),
        name=p.get_str("RecordName"),
        rtype=p.get_str("Type"),
        ttl=p.get_int("Ttl"),
        value=value,
        proxied=bool(p.opt_bool("Proxied")),
        biz_name=biz,
        comment=p.opt_str("Comment") or "",
    )
    return {"RecordId": record.id}


def _record_item(site: Site, record: Record) -> dict[str, Any]:
    return {
        "RecordId": record.id,
        "RecordName": record.name,
        "RecordType": record.type,
        "SiteId": site.id,
        "SiteName": site.name,
        "Proxied": record.proxied,
        "Ttl": record.ttl,
        "BizName": record.biz_name,
        "Comment": record.comment,
        "Data": {"Value": record.value},
        "CreateTime": iso_z(record.created_at),
        "UpdateTime": iso_z(record.updated_at),
    }


_RECORD_FILTERS = ("Type", "Proxied", "BizName")


def _record_selected(record: Record, params: Params) -> bool:
    rtype = params.opt_str("Type")
    if rtype and record.type != rtype:
        return False
    biz = params.opt_str("BizName")
    if biz and record.biz_name != biz:
        return False
    proxied = params.opt_bool("Proxied")
    return proxied is None or record.proxied == proxied


@REGISTRY.action(
    "ListRecords",
    group="Sites and records",
    method="GET",
    summary="Records of a site by name, paged (1-500 per page, default 500).",
    params=(
        SITE_ID,
        q("RecordName", Kind.STR, "name to match (see RecordMatchType)", max_length=253),
        q("RecordMatchType", Kind.STR, "exact (default) | prefix | suffix | fuzzy"),
        q("Type", Kind.STR, "only records of this type"),
        q("Proxied", Kind.BOOL, "only proxied (true) or DNS-only (false) records"),
        q("BizName", Kind.STR, "only records of this business type"),
        q("SourceType", Kind.STR, "not supported", supported=False),
        q("CustomPort", Kind.STR, "not supported", supported=False),
        *RECORD_PAGES.params(),
    ),
    fields=(
        f("PageNumber", "int"),
        f("PageSize", "int"),
        f("TotalCount", "int"),
        f("Records", "list[shape]", shape=RECORD_ITEM),
    ),
    mutates=False,
    errors=("site.not_found", "record.search"),
)
def list_records(call: Call) -> dict[str, Any]:
    p = call.params
    paging = RECORD_PAGES.paging(p)
    site_id = SiteId(p.get_int("SiteId"))
    name = p.opt_str("RecordName") or None
    match = p.opt_str("RecordMatchType") or "exact"
    if any(p.has(n) for n in _RECORD_FILTERS):
        site, everything = _all_records(call, site_id, name, match)
        selected = [r for r in everything if _record_selected(r, p)]
        items, total = selected[paging.offset : paging.offset + paging.size], len(selected)
    else:
        site, items, total = sites.list_records(
            call.ctx, call.account.id, site_id, name=name, match=match, page=paging.number, size=paging.size
        )
    return {
        "PageNumber": paging.number,
        "PageSize": paging.size,
        "TotalCount": total,
        "Records": [_record_item(site, r) for r in items],
    }


def _all_records(call: Call, site_id: SiteId, name: str | None, match: str) -> tuple[Site, list[Record]]:
    out: list[Record] = []
    page = 1
    while True:
        site, items, total = sites.list_records(
            call.ctx, call.account.id, site_id, name=name, match=match, page=page, size=_SCAN_PAGE
        )
        out.extend(items)
        if not items or len(out) >= total:
            return site, out
        page += 1


@REGISTRY.action(
    "DeleteRecord",
    group="Sites and records",
    method="POST",
    summary="Delete a record (and its automatic edge certificate).",
    params=(
        q("RecordId", Kind.LONG, "record id", required=True),
        q("SecurityToken", Kind.STR, "accepted and ignored"),
    ),
    fields=(),
    mutates=True,
    errors=("record.not_found",),
)
def delete_record(call: Call) -> dict[str, Any]:
    sites.delete_record(call.ctx, call.account.id, RecordId(call.params.get_int("RecordId")))
    return {}
