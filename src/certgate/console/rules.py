"""Create mTLS Rule (the seed's panel), the list of WAF custom rules with on/off and delete,
and an editor for free expressions that shows parse errors at their line and column.

Rules are saved through the same use cases as the API (phase ``http_custom``). The mTLS panel
saves only the expression the server computed *and* showed: the form carries the expression the
user saw, and a save whose fields would give a different one shows the new one instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from certgate.console.expressions import ErrorExcerpt, error_excerpt, mtls_rule_expression, split_hostnames
from certgate.console.web import (
    Principal,
    call,
    console_of,
    field,
    query_int,
    read_form,
    redirect,
    render,
    require_login,
    status_for,
)
from certgate.errors import CertGateError, InvalidArgument
from certgate.ids import RuleId, SiteId
from certgate.model import Site, WafRule
from certgate.services import rules, sites
from certgate.services.context import ServiceContext
from certgate.services.hostnames import normalize_hostname, normalize_site_hostnames
from certgate.services.rules import WafRuleInput

PHASE: Final = "http_custom"
ACTIONS: Final = (("deny", "Block"), ("monitor", "Monitor"))
ACTION_LABELS: Final = dict(ACTIONS)
DEFAULT_MTLS_RULE_NAME: Final = "mTLS rule"
NO_HOSTNAME_WARNING: Final = (
    "Make sure to configure the hostname condition. If it is not configured, all requests that "
    "haven't been authenticated or failed the certificate authentication will be intercepted."
)


def _site_id(request: Request) -> SiteId:
    return SiteId(request.path_params["site_id"])


def _rule_id(request: Request) -> RuleId:
    return RuleId(request.path_params["rule_id"])


def rules_path(site_id: SiteId) -> str:
    return f"/sites/{site_id}/security/waf-rules"


def _action(value: str) -> str:
    # Anything else goes to the use case unchanged, so it answers with the API's message.
    return value or "deny"


# -- Create mTLS Rule -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MTLSRuleForm:
    name: str = DEFAULT_MTLS_RULE_NAME
    verified: str = "off"  # the seed's default: match requests whose certificate is not verified
    hostnames: str = ""
    action: str = "deny"  # Block


def mtls_hostnames(raw: str, site: Site, limit: int) -> list[str]:
    """The Hostname field, normalised like a binding; wildcards are refused because the rule
    compares ``http.host`` for equality."""
    names = [normalize_hostname(name) for name in split_hostnames(raw)]
    return list(normalize_site_hostnames(names, site.name, limit=limit))


async def _show_mtls(
    request: Request,
    who: Principal,
    values: MTLSRuleForm,
    *,
    error: CertGateError | None = None,
    info: str | None = None,
) -> Response:
    site_id = _site_id(request)
    site, records, _ = await call(request, sites.list_records, who.account_id, site_id, size=500)
    expression = ""
    hostnames: list[str] = []
    if error is None:
        try:
            hostnames = mtls_hostnames(values.hostnames, site, who.account.plan.hostnames_per_call)
            expression = mtls_rule_expression(hostnames, match_verified=values.verified == "on")
        except CertGateError as exc:
            error = exc
    return render(
        request,
        "mtls_rule.html",
        principal=who,
        section="client-certificates",
        site=site,
        form=values,
        site_hostnames=sorted(r.name for r in records),
        expression=expression,
        warning=NO_HOSTNAME_WARNING if not hostnames else None,
        warning_text=NO_HOSTNAME_WARNING,
        actions=ACTIONS,
        info=info,
        error=error.message if error else None,
        status=status_for(error) if error else 200,
    )


async def mtls_rule_page(request: Request) -> Response:
    who = await require_login(request)
    return await _show_mtls(request, who, MTLSRuleForm())


async def create_mtls_rule(request: Request) -> Response:
    form = await read_form(request)
    who = await require_login(request)
    site_id = _site_id(request)
    values = MTLSRuleForm(
        name=field(form, "name"),
        verified="on" if field(form, "verified") == "on" else "off",
        hostnames=field(form, "hostnames"),
        action=_action(field(form, "action")),
    )
    try:
        site = await call(request, sites.get_site, who.account_id, site_id)
        names = mtls_hostnames(values.hostnames, site, who.account.plan.hostnames_per_call)
        expression = mtls_rule_expression(names, match_verified=values.verified == "on")
        if field(form, "step") != "save" or field(form, "shown_expression") != expression:
            info = None
            if field(form, "step") == "save":
                info = "The expression changed with your input. Check it below, then click OK again."
            return await _show_mtls(request, who, values, info=info)
        data = WafRuleInput(name=values.name, expression=expression, action=values.action, status="on")
        await call(request, rules.create_waf_rule, who.account_id, site_id, phase=PHASE, data=data)
    except CertGateError as exc:
        if status_for(exc) == 404:
            raise
        return await _show_mtls(request, who, values, error=exc)
    return redirect(request, rules_path(site_id), notice="rule-created")


# -- the rule list ----------------------------------------------------------------------------


async def _show_list(request: Request, who: Principal, error: CertGateError | None = None) -> Response:
    site_id = _site_id(request)
    size = console_of(request).settings.page_size
    page = query_int(request, "page", default=1)
    site = await call(request, sites.get_site, who.account_id, site_id)
    items, total = await call(
        request, rules.list_waf_rules, who.account_id, site_id, phase=PHASE, page=page, size=size
    )
    return render(
        request,
        "waf_rules.html",
        principal=who,
        section="waf-rules",
        site=site,
        rules=items,
        action_labels=ACTION_LABELS,
        page=page,
        pages=max(1, -(-total // size)),
        total=total,
        error=error.message if error else None,
        status=status_for(error) if error else 200,
    )


async def rules_page(request: Request) -> Response:
    who = await require_login(request)
    return await _show_list(request, who)


async def set_status(request: Request) -> Response:
    form = await read_form(request)
    who = await require_login(request)
    site_id, status = _site_id(request), field(form, "status")
    try:
        await call(request, rules.update_waf_rule, who.account_id, site_id, _rule_id(request), status=status)
    except CertGateError as exc:
        if status_for(exc) == 404:
            raise
        return await _show_list(request, who, exc)
    return redirect(request, rules_path(site_id), notice="rule-on" if status == "on" else "rule-off")


async def delete_rule(request: Request) -> Response:
    await read_form(request)
    who = await require_login(request)
    site_id = _site_id(request)
    await call(request, rules.delete_waf_rule, who.account_id, site_id, _rule_id(request))
    return redirect(request, rules_path(site_id), notice="rule-deleted")


# -- the free-expression editor ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleForm:
    name: str = ""
    expression: str = ""
    action: str = "deny"


def check_expression(ctx: ServiceContext, expression: str) -> None:
    if not expression.strip():
        raise InvalidArgument("Config.Expression is required for http_custom rules", reason="waf.expression")
    ctx.expressions.validate(expression)


def excerpt_for(error: CertGateError, expression: str) -> ErrorExcerpt | None:
    """Where a parse error points, when the rule language said (``line``/``column`` details,
    and ``length`` to underline a whole token)."""
    line, column, length = (error.details.get(k) for k in ("line", "column", "length"))
    if isinstance(line, int) and isinstance(column, int):
        return error_excerpt(expression, line, column, length if isinstance(length, int) else 1)
    return None


async def _show_editor(
    request: Request,
    who: Principal,
    values: RuleForm,
    *,
    rule: WafRule | None = None,
    error: CertGateError | None = None,
    checked: bool = False,
) -> Response:
    site = await call(request, sites.get_site, who.account_id, _site_id(request))
    return render(
        request,
        "waf_rule_editor.html",
        principal=who,
        section="waf-rules",
        site=site,
        rule=rule,
        form=values,
        actions=ACTIONS,
        checked=checked and error is None,
        excerpt=excerpt_for(error, values.expression) if error else None,
        error=error.message if error else None,
        status=status_for(error) if error else 200,
    )


async def new_rule_page(request: Request) -> Response:
    who = await require_login(request)
    return await _show_editor(request, who, RuleForm())


async def edit_rule_page(request: Request) -> Response:
    who = await require_login(request)
    rule = await call(request, rules.get_waf_rule, who.account_id, _site_id(request), _rule_id(request))
    return await _show_editor(
        request, who, RuleForm(rule.name, rule.expression, rule.action.value), rule=rule
    )


async def save_rule(request: Request) -> Response:
    """Create (``/new``) or update (``/{rule_id}/edit``) a rule; ``step=check`` only validates."""
    form = await read_form(request)
    who = await require_login(request)
    site_id = _site_id(request)
    rule_id = request.path_params.get("rule_id")
    values = RuleForm(field(form, "name"), field(form, "expression"), _action(field(form, "action")))
    rule = None
    try:
        if rule_id is not None:
            rule = await call(request, rules.get_waf_rule, who.account_id, site_id, RuleId(rule_id))
        await call(request, check_expression, values.expression)
        if field(form, "step") != "save":
            return await _show_editor(request, who, values, rule=rule, checked=True)
        data = WafRuleInput(name=values.name, expression=values.expression, action=values.action)
        if rule is None:
            await call(request, rules.create_waf_rule, who.account_id, site_id, phase=PHASE, data=data)
        else:
            await call(request, rules.update_waf_rule, who.account_id, site_id, rule.id, data=data)
    except CertGateError as exc:
        if status_for(exc) == 404:
            raise
        return await _show_editor(request, who, values, rule=rule, error=exc)
    return redirect(request, rules_path(site_id), notice="rule-created" if rule is None else "rule-saved")
