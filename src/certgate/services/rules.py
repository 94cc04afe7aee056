"""WAF custom rules (phase ``http_custom``) and origin rules, stored as expression text.

The expression language itself lives in ``certgate.rules``; services only validate through the
``ExpressionValidator`` port, so a rule that reaches the store always parses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from certgate.errors import InvalidArgument, NotFound, QuotaExceeded
from certgate.ids import AccountId, RuleId, SiteId
from certgate.model import OriginRule, RuleAction, RuleStatus, Site, WafRule
from certgate.services.context import ServiceContext
from certgate.services.hostnames import normalize_hostname
from certgate.services.ports import Transaction
from certgate.services.sites import require_site

SUPPORTED_PHASES = ("http_custom",)
KNOWN_PHASES = (
    "http_whitelist",
    "http_custom",
    "http_managed",
    "http_anti_scan",
    "http_ratelimit",
    "ip_access_rule",
    "http_bot",
    "http_security_level_rule",
)
UNSUPPORTED_ACTIONS = ("js", "captcha")


@dataclass(frozen=True, slots=True)
class WafRuleInput:
    """What a caller may set on a rule: the ESA WafRuleConfig keys certgate understands."""

    name: str | None = None
    expression: str | None = None
    action: str | None = None
    status: str | None = None
    config: dict[str, Any] | None = None


def _check_phase(phase: str) -> None:
    if phase not in KNOWN_PHASES:
        raise InvalidArgument(f"unknown Phase {phase!r}", reason="waf.phase")
    if phase not in SUPPORTED_PHASES:
        raise InvalidArgument(
            f"Phase {phase} is not supported by certgate; use http_custom", reason="waf.phase_unsupported"
        )


def _check_action(action: str) -> RuleAction:
    if action in UNSUPPORTED_ACTIONS:
        raise InvalidArgument(
            f"Action {action} is not available yet; use deny or monitor", reason="waf.action_unsupported"
        )
    try:
        return RuleAction(action)
    except ValueError:
        raise InvalidArgument(
            f"Action must be deny or monitor, not {action!r}", reason="waf.action"
        ) from None


def _check_status(status: str) -> RuleStatus:
    try:
        return RuleStatus(status)
    except ValueError:
        raise InvalidArgument(f"Status must be on or off, not {status!r}", reason="waf.status") from None


def _check_name(ctx: ServiceContext, name: str) -> str:
    name = name.strip()
    if not name or len(name) > ctx.limits.name_max_chars:
        raise InvalidArgument("Name must be 1-128 characters", reason="waf.name")
    return name


def _canonical_config(rule: WafRule, extra: dict[str, Any] | None) -> str:
    config = dict(extra or {})
    config.update(
        {
            "Id": rule.id,
            "Name": rule.name,
            "Expression": rule.expression,
            "Action": rule.action.value,
            "Status": rule.status.value,
        }
    )
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _ruleset_id(ctx: ServiceContext, tx: Transaction, site_id: SiteId) -> int:
    existing, _ = tx.list_waf_rules(site_id, phase=None, offset=0, limit=1)
    return existing[0].ruleset_id if existing else ctx.ids.int_id() % 100_000_000 + 10_000_000


def create_waf_rule(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, *, phase: str, data: WafRuleInput
) -> WafRule:
    _check_phase(phase)
    if not data.expression:
        raise InvalidArgument("Config.Expression is required for http_custom rules", reason="waf.expression")
    if not data.action:
        raise InvalidArgument("Config.Action is required for http_custom rules", reason="waf.action")
    action = _check_action(data.action)
    status = _check_status(data.status or "on")
    name = _check_name(ctx, data.name or "mtls rule")
    ctx.expressions.validate(data.expression)
    now = ctx.clock.now()
    with ctx.store.transaction() as tx:
        account = tx.get_account(account_id)
        assert account is not None
        require_site(tx, account_id, site_id)
        count = tx.count_waf_rules(site_id)
        if count >= account.plan.waf_rules_per_site:
            raise QuotaExceeded(
                f"the plan allows {account.plan.waf_rules_per_site} WAF rules per site",
                reason="waf.quota_exceeded",
            )
        rule = WafRule(
            id=RuleId(ctx.ids.int_id() % 1_000_000_000 + 1_000_000),
            site_id=site_id,
            ruleset_id=_ruleset_id(ctx, tx, site_id),
            phase=phase,
            name=name,
            expression=data.expression,
            action=action,
            status=status,
            position=_next_position(tx, site_id),
            config_json="",
            updated_at=now,
        )
        rule = replace(rule, config_json=_canonical_config(rule, data.config))
        tx.add_waf_rule(rule)
    return rule


def _next_position(tx: Transaction, site_id: SiteId) -> int:
    rules, _ = tx.list_waf_rules(site_id, phase=None, offset=0, limit=100_000)
    return max((r.position for r in rules), default=0) + 1


def _require_rule(tx: Transaction, account_id: AccountId, site_id: SiteId, rule_id: RuleId) -> WafRule:
    require_site(tx, account_id, site_id)
    rule = tx.get_waf_rule(site_id, rule_id)
    if rule is None:
        raise NotFound(f"WAF rule {rule_id} does not exist", reason="waf.not_found")
    return rule


def get_waf_rule(ctx: ServiceContext, account_id: AccountId, site_id: SiteId, rule_id: RuleId) -> WafRule:
    with ctx.store.read_transaction() as tx:
        return _require_rule(tx, account_id, site_id, rule_id)


def list_waf_rules(
    ctx: ServiceContext,
    account_id: AccountId,
    site_id: SiteId,
    *,
    phase: str,
    page: int = 1,
    size: int = 20,
    name_like: str | None = None,
    status: str | None = None,
    rule_id: int | None = None,
) -> tuple[list[WafRule], int]:
    _check_phase(phase)
    with ctx.store.read_transaction() as tx:
        require_site(tx, account_id, site_id)
        rules, _ = tx.list_waf_rules(site_id, phase=phase, offset=0, limit=100_000)
    if name_like:
        needle = name_like.lower()
        rules = [r for r in rules if needle in r.name.lower() or needle in str(r.id)]
    if status:
        rules = [r for r in rules if r.status.value == status]
    if rule_id is not None:
        rules = [r for r in rules if r.id == rule_id]
    start = (page - 1) * size
    return rules[start : start + size], len(rules)


def update_waf_rule(
    ctx: ServiceContext,
    account_id: AccountId,
    site_id: SiteId,
    rule_id: RuleId,
    *,
    data: WafRuleInput | None = None,
    position: int | None = None,
    status: str | None = None,
) -> WafRule:
    data = data or WafRuleInput()
    changes: dict[str, Any] = {}
    if data.expression is not None:
        ctx.expressions.validate(data.expression)
        changes["expression"] = data.expression
    if data.action is not None:
        changes["action"] = _check_action(data.action)
    if data.name is not None:
        changes["name"] = _check_name(ctx, data.name)
    new_status = status if status is not None else data.status
    if new_status is not None:
        changes["status"] = _check_status(new_status)
    if position is not None:
        if position < 1:
            raise InvalidArgument("Position must be ≥ 1", reason="waf.position")
        changes["position"] = position
    with ctx.store.transaction() as tx:
        rule = _require_rule(tx, account_id, site_id, rule_id)
        updated = replace(rule, updated_at=ctx.clock.now(), **changes)
        extra = json.loads(rule.config_json) if rule.config_json else {}
        if data.config:
            extra.update(data.config)
        updated = replace(updated, config_json=_canonical_config(updated, extra))
        tx.update_waf_rule(updated)
    return updated


def delete_waf_rule(ctx: ServiceContext, account_id: AccountId, site_id: SiteId, rule_id: RuleId) -> None:
    with ctx.store.transaction() as tx:
        _require_rule(tx, account_id, site_id, rule_id)
        tx.delete_waf_rule(rule_id)


# -- origin rules ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OriginRuleInput:
    name: str
    expression: str
    enabled: bool = True
    origin_scheme: str | None = None
    origin_http_port: int | None = None
    origin_https_port: int | None = None
    origin_host: str | None = None
    origin_sni: str | None = None
    origin_read_timeout: int | None = None
    dns_record: str | None = None
    sequence: int | None = None


def _check_port(value: int | None, name: str) -> None:
    if value is not None and not 1 <= value <= 65535:
        raise InvalidArgument(f"{name} must be 1-65535", reason="origin_rule.port")


def create_origin_rule(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId, data: OriginRuleInput
) -> tuple[Site, OriginRule]:
    name = _check_name(ctx, data.name)
    ctx.expressions.validate(data.expression)
    if data.origin_scheme is not None and data.origin_scheme not in ("http", "https", "follow"):
        raise InvalidArgument("OriginScheme must be http, https or follow", reason="origin_rule.scheme")
    _check_port(data.origin_http_port, "OriginHttpPort")
    _check_port(data.origin_https_port, "OriginHttpsPort")
    if data.origin_read_timeout is not None and not 1 <= data.origin_read_timeout <= 600:
        raise InvalidArgument("OriginReadTimeout must be 1-600 seconds", reason="origin_rule.timeout")
    host = normalize_hostname(data.origin_host) if data.origin_host else None
    sni = normalize_hostname(data.origin_sni) if data.origin_sni else None
    dns = data.dns_record.strip() if data.dns_record else None
    with ctx.store.transaction() as tx:
        site = require_site(tx, account_id, site_id)
        existing = tx.list_origin_rules(site_id)
        rule = OriginRule(
            id=RuleId(ctx.ids.int_id() % 1_000_000_000 + 1_000_000),
            site_id=site_id,
            name=name,
            expression=data.expression,
            enabled=data.enabled,
            sequence=data.sequence or max((r.sequence for r in existing), default=0) + 1,
            origin_scheme=data.origin_scheme,
            origin_http_port=data.origin_http_port,
            origin_https_port=data.origin_https_port,
            origin_host=host,
            origin_sni=sni,
            origin_read_timeout=data.origin_read_timeout,
            dns_record=dns,
            updated_at=ctx.clock.now(),
        )
        tx.add_origin_rule(rule)
    return site, rule


def list_origin_rules(
    ctx: ServiceContext, account_id: AccountId, site_id: SiteId
) -> tuple[Site, list[OriginRule]]:
    with ctx.store.read_transaction() as tx:
        site = require_site(tx, account_id, site_id)
        return site, tx.list_origin_rules(site_id)


def delete_origin_rule(ctx: ServiceContext, account_id: AccountId, site_id: SiteId, rule_id: RuleId) -> None:
    with ctx.store.transaction() as tx:
        require_site(tx, account_id, site_id)
        if tx.get_origin_rule(site_id, rule_id) is None:
            raise NotFound(f"origin rule {rule_id} does not exist", reason="origin_rule.not_found")
        tx.delete_origin_rule(rule_id)
