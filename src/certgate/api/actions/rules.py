"""WAF custom rules (phase ``http_custom``) and origin rules.

``Config`` is ESA's WafRuleConfig as JSON. certgate acts on ``Name``, ``Expression``, ``Action``
and ``Status`` and keeps ``Notes``/``Type``; every other key is accepted only when empty (the SDK
always sends ``"ManagedRulesets": []``) or, for ``Actions``, when it asks for the default 403 block
page, so a setting certgate would not enforce is refused instead of silently dropped.
"""

from __future__ import annotations

import json
from typing import Any

from certgate.api.actions.certificates import SITE_ID
from certgate.api.errors import invalid_parameter
from certgate.api.registry import REGISTRY, Call
from certgate.api.wire import Kind, PageRule, Param, Params, Shape, b, f, iso_z, q
from certgate.ids import RuleId, SiteId
from certgate.model import OriginRule, WafRule
from certgate.services import rules, sites

RULE_PAGES = PageRule(default_size=20, max_size=100)
ORIGIN_PAGES = PageRule(default_size=20, max_size=500)
_KEPT_KEYS = ("Id", "Name", "Expression", "Action", "Status", "Notes", "Type")
_STRING_KEYS = ("Name", "Expression", "Action", "Status", "Notes", "Type")
ORIGIN_CONFIG_TYPE = "rule"


def _site_version_param() -> Param:
    return q("SiteVersion", Kind.INT, "configuration version; certgate has no version management, so only 0")


def _check_site_version(params: Params) -> None:
    version = params.opt_int("SiteVersion")
    if version not in (None, 0):
        raise invalid_parameter("SiteVersion", "version management is not enabled; only version 0 exists")


def _is_default_actions(value: Any) -> bool:
    if value in (None, {}, []):
        return True
    if not isinstance(value, dict) or set(value) - {"Response"}:
        return False
    response = value.get("Response")
    if response in (None, {}):
        return True
    return (
        isinstance(response, dict)
        and not set(response) - {"Code", "Id"}
        and response.get("Code") in (None, 403)
        and response.get("Id") in (None, 0)
    )


def waf_input(params: Params) -> rules.WafRuleInput:
    """The part of ``Config`` certgate acts on; refuses settings it would not enforce."""
    config = params.json_object("Config")
    if config is None:
        return rules.WafRuleInput()
    kept: dict[str, Any] = {}
    for key, value in config.items():
        if key in _KEPT_KEYS:
            if key in _STRING_KEYS and value is not None and not isinstance(value, str):
                raise invalid_parameter("Config", f"Config.{key} must be a string")
            if key == "Id" and value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise invalid_parameter("Config", "Config.Id must be an integer")
            if value is not None:
                kept[key] = value
        elif key == "Actions":
            if not _is_default_actions(value):
                raise invalid_parameter(
                    "Config",
                    "Config.Actions: only the default block page (Response.Code 403, Id 0) is supported",
                )
        elif value not in (None, "", [], {}):
            raise invalid_parameter(
                "Config", f"Config.{key} is not supported by certgate for http_custom rules"
            )
    kept.pop("Id", None)
    return rules.WafRuleInput(
        name=kept.get("Name"),
        expression=kept.get("Expression"),
        action=kept.get("Action"),
        status=kept.get("Status"),
        config=kept,
    )


def rule_config(rule: WafRule) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(rule.config_json) if rule.config_json else {}
    return config


WAF_RULE_ITEM = Shape(
    "WafRule",
    (
        f("Id", "int"),
        f("Name", "str"),
        f("Phase", "str", "http_custom"),
        f("Action", "str", "deny | monitor"),
        f("Status", "str", "on | off"),
        f("Position", "int", "evaluation order, from 1"),
        f("RulesetId", "int"),
        f("Config", "object", "the WafRuleConfig (Id, Name, Expression, Action, Status, ...)"),
        f("UpdateTime", "str", "ISO 8601 UTC"),
    ),
)
_WAF_ERRORS = (
    "rule.parse_error",
    "waf.phase_unsupported",
    "waf.action",
    "waf.action_unsupported",
    "waf.status",
    "waf.not_found",
    "site.not_found",
)


@REGISTRY.action(
    "CreateWafRule",
    group="WAF rules",
    method="POST",
    summary="Add an http_custom rule: Config.Expression in the rule language (parse errors name line and "
    "column), Config.Action deny (403) or monitor, Config.Status on/off; appended after the last rule.",
    params=(
        SITE_ID,
        _site_version_param(),
        b("Phase", Kind.STR, "http_custom (the only phase certgate runs)", required=True),
        b("Config", Kind.JSON, "JSON WafRuleConfig: Name, Expression, Action, Status"),
        b("RulesetId", Kind.LONG, "accepted and ignored: each site has one http_custom ruleset"),
    ),
    fields=(f("Id", "int", "rule id"), f("RulesetId", "int", "the site's http_custom ruleset")),
    mutates=True,
    errors=(*_WAF_ERRORS, "waf.expression", "waf.quota_exceeded"),
)
def create_waf_rule(call: Call) -> dict[str, Any]:
    p = call.params
    _check_site_version(p)
    rule = rules.create_waf_rule(
        call.ctx, call.account.id, SiteId(p.get_int("SiteId")), phase=p.get_str("Phase"), data=waf_input(p)
    )
    return {"Id": rule.id, "RulesetId": rule.ruleset_id}


@REGISTRY.action(
    "GetWafRule",
    group="WAF rules",
    method="POST",
    summary="One WAF rule of a site.",
    params=(q("Id", Kind.LONG, "rule id", required=True), SITE_ID),
    fields=(
        f("Id", "int"),
        f("Name", "str"),
        f("Phase", "str"),
        f("Position", "int"),
        f("RulesetId", "int"),
        f("Status", "str", "on | off"),
        f("UpdateTime", "str", "ISO 8601 UTC"),
        f("Config", "object", "the WafRuleConfig"),
    ),
    mutates=False,
    errors=("waf.not_found", "site.not_found"),
)
def get_waf_rule(call: Call) -> dict[str, Any]:
    p = call.params
    rule = rules.get_waf_rule(call.ctx, call.account.id, SiteId(p.get_int("SiteId")), RuleId(p.get_int("Id")))
    return {
        "Id": rule.id,
        "Name": rule.name,
        "Phase": rule.phase,
        "Position": rule.position,
        "RulesetId": rule.ruleset_id,
        "Status": rule.status.value,
        "UpdateTime": iso_z(rule.updated_at),
        "Config": rule_config(rule),
    }


def _query_args(params: Params) -> dict[str, Any]:
    args = params.json_object("QueryArgs") or {}
    unsupported = sorted(set(args) - {"Id", "NameLike", "IdNameLike", "Status"})
    given = [k for k in unsupported if args[k] not in (None, "")]
    if given:
        raise invalid_parameter("QueryArgs", f"certgate does not support QueryArgs.{given[0]}")
    for key in ("NameLike", "IdNameLike", "Status"):
        if args.get(key) is not None and not isinstance(args[key], str):
            raise invalid_parameter("QueryArgs", f"QueryArgs.{key} must be a string")
    rule_id = args.get("Id")
    if rule_id is not None and (not isinstance(rule_id, int) or isinstance(rule_id, bool)):
        raise invalid_parameter("QueryArgs", "QueryArgs.Id must be an integer")
    return args


def _waf_usage(call: Call, site_id: SiteId, phase: str) -> tuple[int, int]:
    """(rules of this site, rules of all the account's sites) in the phase."""
    _, site_usage = rules.list_waf_rules(call.ctx, call.account.id, site_id, phase=phase, page=1, size=1)
    instance_usage = 0
    page = 1
    while True:
        site_page, total = sites.list_sites(call.ctx, call.account.id, page=page, size=500)
        for site in site_page:
            instance_usage += rules.list_waf_rules(
                call.ctx, call.account.id, site.id, phase=phase, page=1, size=1
            )[1]
        if not site_page or page * 500 >= total:
            return site_usage, instance_usage
        page += 1


@REGISTRY.action(
    "ListWafRules",
    group="WAF rules",
    method="POST",
    summary="WAF rules of a site in a phase, in position order, paged; QueryArgs filters by Id, NameLike, "
    "IdNameLike (name or id contains) and Status.",
    params=(
        SITE_ID,
        q("Phase", Kind.STR, "http_custom", required=True),
        q(
            "QueryArgs",
            Kind.JSON,
            'JSON filter: {"Id": 1, "NameLike": "mtls", "IdNameLike": "..", "Status": "on"}',
        ),
        q("RulesetId", Kind.LONG, "only rules of this ruleset"),
        _site_version_param(),
        *RULE_PAGES.params(),
    ),
    fields=(
        f("PageNumber", "int"),
        f("PageSize", "int"),
        f("TotalCount", "int", "rules matching the filter"),
        f("SiteUsage", "int", "rules of the site in this phase"),
        f("InstanceUsage", "int", "rules of all the account's sites in this phase"),
        f("Rules", "list[shape]", shape=WAF_RULE_ITEM),
    ),
    mutates=False,
    errors=("waf.phase", "waf.phase_unsupported", "site.not_found"),
)
def list_waf_rules(call: Call) -> dict[str, Any]:
    p = call.params
    _check_site_version(p)
    paging = RULE_PAGES.paging(p)
    site_id = SiteId(p.get_int("SiteId"))
    phase = p.get_str("Phase")
    args = _query_args(p)
    ruleset = p.opt_int("RulesetId")
    name_like = args.get("IdNameLike") or args.get("NameLike") or None
    if ruleset is None:
        items, total = rules.list_waf_rules(
            call.ctx,
            call.account.id,
            site_id,
            phase=phase,
            page=paging.number,
            size=paging.size,
            name_like=name_like,
            status=args.get("Status") or None,
            rule_id=args.get("Id"),
        )
    else:
        everything, _ = rules.list_waf_rules(
            call.ctx,
            call.account.id,
            site_id,
            phase=phase,
            page=1,
            size=1_000_000,
            name_like=name_like,
            status=args.get("Status") or None,
            rule_id=args.get("Id"),
        )
        selected = [r for r in everything if r.ruleset_id == ruleset]
        items, total = selected[paging.offset : paging.offset + paging.size], len(selected)
    site_usage, instance_usage = _waf_usage(call, site_id, phase)
    return {
        "PageNumber": paging.number,
        "PageSize": paging.size,
        "TotalCount": total,
        "SiteUsage": site_usage,
        "InstanceUsage": instance_usage,
        "Rules": [
            {
                "Id": r.id,
                "Name": r.name,
                "Phase": r.phase,
                "Action": r.action.value,
                "Status": r.status.value,
                "Position": r.position,
                "RulesetId": r.ruleset_id,
                "Config": rule_config(r),
                "UpdateTime": iso_z(r.updated_at),
            }
            for r in items
        ],
    }


@REGISTRY.action(
    "UpdateWafRule",
    group="WAF rules",
    method="POST",
    summary="Change a rule partially: any of Config (Name, Expression, Action, Status), Status, Position.",
    params=(
        SITE_ID,
        _site_version_param(),
        b("Id", Kind.LONG, "rule id", required=True),
        b("Config", Kind.JSON, "JSON WafRuleConfig; the keys given replace the stored ones"),
        b("Position", Kind.INT, "new position, from 1", min=1),
        b("Status", Kind.STR, "on | off"),
    ),
    fields=(f("Id", "int"),),
    mutates=True,
    errors=_WAF_ERRORS,
)
def update_waf_rule(call: Call) -> dict[str, Any]:
    p = call.params
    _check_site_version(p)
    rule = rules.update_waf_rule(
        call.ctx,
        call.account.id,
        SiteId(p.get_int("SiteId")),
        RuleId(p.get_int("Id")),
        data=waf_input(p),
        position=p.opt_int("Position"),
        status=p.opt_str("Status") or None,
    )
    return {"Id": rule.id}


@REGISTRY.action(
    "DeleteWafRule",
    group="WAF rules",
    method="POST",
    summary="Delete a WAF rule.",
    params=(SITE_ID, _site_version_param(), b("Id", Kind.LONG, "rule id", required=True)),
    fields=(),
    mutates=True,
    errors=("waf.not_found", "site.not_found"),
)
def delete_waf_rule(call: Call) -> dict[str, Any]:
    p = call.params
    _check_site_version(p)
    rules.delete_waf_rule(call.ctx, call.account.id, SiteId(p.get_int("SiteId")), RuleId(p.get_int("Id")))
    return {}


# -- origin rules ------------------------------------------------------------------------------

_ON_OFF = ("on", "off")
ORIGIN_CONFIG = Shape(
    "OriginRuleConfig",
    (
        f("ConfigId", "int"),
        f("ConfigType", "str", ORIGIN_CONFIG_TYPE),
        f("Rule", "str", "expression"),
        f("RuleName", "str"),
        f("RuleEnable", "str", "on | off"),
        f("Sequence", "int", "evaluation order"),
        f("SiteVersion", "int", "always 0"),
        f("OriginScheme", "str", "http | https | follow", optional=True),
        f("OriginHttpPort", "str", optional=True),
        f("OriginHttpsPort", "str", optional=True),
        f("OriginHost", "str", "Host header sent to the origin", optional=True),
        f("OriginSni", "str", "SNI sent to the origin", optional=True),
        f("OriginReadTimeout", "str", "seconds", optional=True),
        f("DnsRecord", "str", "origin address override", optional=True),
    ),
)


def origin_config(rule: OriginRule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ConfigId": rule.id,
        "ConfigType": ORIGIN_CONFIG_TYPE,
        "Rule": rule.expression,
        "RuleName": rule.name,
        "RuleEnable": "on" if rule.enabled else "off",
        "Sequence": rule.sequence,
        "SiteVersion": 0,
    }
    optional = {
        "OriginScheme": rule.origin_scheme,
        "OriginHttpPort": rule.origin_http_port,
        "OriginHttpsPort": rule.origin_https_port,
        "OriginHost": rule.origin_host,
        "OriginSni": rule.origin_sni,
        "OriginReadTimeout": rule.origin_read_timeout,
        "DnsRecord": rule.dns_record,
    }
    out.update({k: str(v) for k, v in optional.items() if v is not None})
    return out


_UNSUPPORTED_ORIGIN = (
    "Follow302Enable",
    "Follow302MaxTries",
    "Follow302RetainArgs",
    "Follow302RetainHeader",
    "Follow302TargetHost",
    "OriginMtls",
    "OriginVerify",
    "Range",
    "RangeChunkSize",
)


@REGISTRY.action(
    "CreateOriginRule",
    group="Origin rules",
    method="POST",
    summary="Choose origin scheme, ports, Host, SNI, read timeout or address for requests matching an "
    "expression.",
    params=(
        SITE_ID,
        q("Rule", Kind.STR, "expression in the rule language", required=True, max_length=4096),
        q("RuleName", Kind.STR, "name, 1-128 characters", required=True, max_length=128),
        q("RuleEnable", Kind.STR, "on (default) | off"),
        q("Sequence", Kind.INT, "evaluation order (default: after the last rule)", min=1),
        q("OriginScheme", Kind.STR, "http | https | follow"),
        q("OriginHttpPort", Kind.INT, "1-65535"),
        q("OriginHttpsPort", Kind.INT, "1-65535"),
        q("OriginHost", Kind.STR, "Host header for the origin", max_length=253),
        q("OriginSni", Kind.STR, "SNI for the origin", max_length=253),
        q("OriginReadTimeout", Kind.INT, "seconds, 1-600"),
        q("DnsRecord", Kind.STR, "origin address override (IP or domain)", max_length=253),
        _site_version_param(),
        *(q(name, Kind.STR, "not supported", supported=False) for name in _UNSUPPORTED_ORIGIN),
    ),
    fields=(f("ConfigId", "int", "origin rule id"),),
    mutates=True,
    errors=(
        "rule.parse_error",
        "origin_rule.scheme",
        "origin_rule.port",
        "origin_rule.timeout",
        "site.not_found",
    ),
)
def create_origin_rule(call: Call) -> dict[str, Any]:
    p = call.params
    _check_site_version(p)
    enable = p.opt_str("RuleEnable") or "on"
    if enable not in _ON_OFF:
        raise invalid_parameter("RuleEnable", "must be on or off")
    _, rule = rules.create_origin_rule(
        call.ctx,
        call.account.id,
        SiteId(p.get_int("SiteId")),
        rules.OriginRuleInput(
            name=p.get_str("RuleName"),
            expression=p.get_str("Rule"),
            enabled=enable == "on",
            origin_scheme=p.opt_str("OriginScheme") or None,
            origin_http_port=p.opt_int("OriginHttpPort"),
            origin_https_port=p.opt_int("OriginHttpsPort"),
            origin_host=p.opt_str("OriginHost") or None,
            origin_sni=p.opt_str("OriginSni") or None,
            origin_read_timeout=p.opt_int("OriginReadTimeout"),
            dns_record=p.opt_str("DnsRecord") or None,
            sequence=p.opt_int("Sequence"),
        ),
    )
    return {"ConfigId": rule.id}


@REGISTRY.action(
    "ListOriginRules",
    group="Origin rules",
    method="GET",
    summary="Origin rules of a site in evaluation order, paged; filter by ConfigId or RuleName.",
    params=(
        SITE_ID,
        q("ConfigId", Kind.LONG, "only this rule"),
        q("RuleName", Kind.STR, "only rules of this name"),
        q("ConfigType", Kind.STR, "rule (global configurations do not exist in certgate)"),
        _site_version_param(),
        *ORIGIN_PAGES.params(),
    ),
    fields=(
        f("PageNumber", "int"),
        f("PageSize", "int"),
        f("TotalCount", "int"),
        f("TotalPage", "int"),
        f("Configs", "list[shape]", shape=ORIGIN_CONFIG),
    ),
    mutates=False,
    errors=("site.not_found",),
)
def list_origin_rules(call: Call) -> dict[str, Any]:
    p = call.params
    _check_site_version(p)
    paging = ORIGIN_PAGES.paging(p)
    _, items = rules.list_origin_rules(call.ctx, call.account.id, SiteId(p.get_int("SiteId")))
    config_id = p.opt_int("ConfigId")
    name = p.opt_str("RuleName")
    config_type = p.opt_str("ConfigType")
    selected = [
        r
        for r in items
        if (config_id is None or r.id == config_id)
        and (not name or r.name == name)
        and (not config_type or config_type == ORIGIN_CONFIG_TYPE)
    ]
    total = len(selected)
    return {
        "PageNumber": paging.number,
        "PageSize": paging.size,
        "TotalCount": total,
        "TotalPage": (total + paging.size - 1) // paging.size,
        "Configs": [origin_config(r) for r in selected[paging.offset : paging.offset + paging.size]],
    }


@REGISTRY.action(
    "DeleteOriginRule",
    group="Origin rules",
    method="POST",
    summary="Delete an origin rule.",
    params=(SITE_ID, q("ConfigId", Kind.LONG, "origin rule id", required=True)),
    fields=(),
    mutates=True,
    errors=("origin_rule.not_found", "site.not_found"),
)
def delete_origin_rule(call: Call) -> dict[str, Any]:
    p = call.params
    rules.delete_origin_rule(
        call.ctx, call.account.id, SiteId(p.get_int("SiteId")), RuleId(p.get_int("ConfigId"))
    )
    return {}
