"""WAF custom rules and origin rules as stored objects, validated through the rule language."""

from __future__ import annotations

import json

import pytest

from certgate.errors import InvalidArgument, NotFound
from certgate.model import RuleAction, RuleStatus
from certgate.services import rules as svc

SEED_RULE = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'


def test_create_get_list_update_delete(world) -> None:
    ctx = world.ctx
    rule = svc.create_waf_rule(
        ctx,
        world.account,
        world.site,
        phase="http_custom",
        data=svc.WafRuleInput(name="mtls", expression=SEED_RULE, action="deny"),
    )
    assert rule.status is RuleStatus.ON and rule.action is RuleAction.DENY and rule.position == 1
    second = svc.create_waf_rule(
        ctx,
        world.account,
        world.site,
        phase="http_custom",
        data=svc.WafRuleInput(name="watch", expression="ssl", action="monitor", status="off"),
    )
    assert second.position == 2 and second.ruleset_id == rule.ruleset_id
    rules, total = svc.list_waf_rules(ctx, world.account, world.site, phase="http_custom")
    assert total == 2 and [r.id for r in rules] == [rule.id, second.id]
    assert svc.list_waf_rules(ctx, world.account, world.site, phase="http_custom", name_like="wat")[1] == 1
    updated = svc.update_waf_rule(ctx, world.account, world.site, rule.id, status="off")
    assert updated.status is RuleStatus.OFF and updated.expression == SEED_RULE
    assert json.loads(updated.config_json)["Status"] == "off"
    svc.delete_waf_rule(ctx, world.account, world.site, rule.id)
    with pytest.raises(NotFound):
        svc.get_waf_rule(ctx, world.account, world.site, rule.id)


@pytest.mark.parametrize(
    "phase,data,reason",
    [
        (
            "http_custom",
            svc.WafRuleInput(name="x", expression="http.host eq", action="deny"),
            "rule.parse_error",
        ),
        (
            "http_custom",
            svc.WafRuleInput(name="x", expression="no.such.field", action="deny"),
            "rule.parse_error",
        ),
        (
            "http_custom",
            svc.WafRuleInput(name="x", expression="ssl", action="captcha"),
            "waf.action_unsupported",
        ),
        ("http_custom", svc.WafRuleInput(name="x", expression="ssl", action="allow"), "waf.action"),
        ("http_custom", svc.WafRuleInput(name="x", action="deny"), "waf.expression"),
        ("http_bot", svc.WafRuleInput(name="x", expression="ssl", action="deny"), "waf.phase_unsupported"),
        ("nope", svc.WafRuleInput(name="x", expression="ssl", action="deny"), "waf.phase"),
    ],
)
def test_bad_rules_are_refused_and_change_nothing(
    world, phase: str, data: svc.WafRuleInput, reason: str
) -> None:
    version = world.ctx.store.current_version()
    with pytest.raises(InvalidArgument) as err:
        svc.create_waf_rule(world.ctx, world.account, world.site, phase=phase, data=data)
    assert err.value.reason == reason
    assert world.ctx.store.current_version() == version


def test_parse_errors_carry_line_and_column(world) -> None:
    with pytest.raises(InvalidArgument) as err:
        svc.create_waf_rule(
            world.ctx,
            world.account,
            world.site,
            phase="http_custom",
            data=svc.WafRuleInput(name="x", expression='http.host eq "a"\nand nope', action="deny"),
        )
    assert err.value.details["line"] == 2
    assert "line 2" in err.value.message


def test_rules_of_another_account_are_invisible(world) -> None:
    rule = svc.create_waf_rule(
        world.ctx,
        world.account,
        world.site,
        phase="http_custom",
        data=svc.WafRuleInput(name="mtls", expression=SEED_RULE, action="deny"),
    )
    for site in (world.site, world.other_site):
        with pytest.raises(NotFound):
            svc.get_waf_rule(world.ctx, world.other_account, site, rule.id)
        with pytest.raises(NotFound):
            svc.delete_waf_rule(world.ctx, world.other_account, site, rule.id)


def test_origin_rules(world) -> None:
    ctx = world.ctx
    _, rule = svc.create_origin_rule(
        ctx,
        world.account,
        world.site,
        svc.OriginRuleInput(
            name="to-8080",
            expression='starts_with(http.request.uri.path, "/v2")',
            origin_http_port=8080,
            origin_host="Backend.Example.com",
        ),
    )
    assert rule.origin_host == "backend.example.com" and rule.sequence == 1
    assert [r.id for r in svc.list_origin_rules(ctx, world.account, world.site)[1]] == [rule.id]
    with pytest.raises(InvalidArgument):
        svc.create_origin_rule(
            ctx,
            world.account,
            world.site,
            svc.OriginRuleInput(name="bad", expression="ssl", origin_http_port=70000),
        )
    with pytest.raises(NotFound):
        svc.delete_origin_rule(ctx, world.other_account, world.site, rule.id)
    svc.delete_origin_rule(ctx, world.account, world.site, rule.id)
    assert svc.list_origin_rules(ctx, world.account, world.site)[1] == []
