"""Create mTLS Rule, the WAF custom rule list (on/off, delete) and the free-expression editor."""

from __future__ import annotations

import html

import pytest
from tests.console.conftest import ConsoleClient, World, text_of

from certgate.console.rules import NO_HOSTNAME_WARNING, excerpt_for
from certgate.errors import CertGateError, InvalidArgument
from certgate.model import RuleAction, RuleStatus, WafRule
from certgate.services import rules
from certgate.services.rules import WafRuleInput

SEED_RULE = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'


def site_rules(world: World) -> list[WafRule]:
    items, _ = rules.list_waf_rules(
        world.ctx, world.alice.account_id, world.alice.site_id, phase="http_custom"
    )
    return items


def shown_expression(page: str) -> str:
    start = page.index("<output data-expression>") + len("<output data-expression>")
    return html.unescape(page[start : page.index("</output>", start)])


async def test_the_panel_starts_with_the_seeds_defaults(world: World, alice: ConsoleClient) -> None:
    page = await alice.get(world.alice.certs_url + "/mtls-rule")
    text = text_of(page.text)
    assert "Client Certificate Verified" in text and "Hostname" in text and "Action" in text
    assert 'id="verified_off" name="verified" value="off" checked' in page.text
    assert '<option value="deny" selected>Block</option>' in page.text
    assert '<option value="monitor">Monitor</option>' in page.text
    assert NO_HOSTNAME_WARNING in text
    assert "data-no-hostname-warning>" in page.text  # shown, not hidden
    assert shown_expression(page.text) == "(not tls.client_auth.cert_verified)"
    assert '<option value="api.example.com">' in page.text  # the site's hostnames are offered


async def test_preview_shows_the_expression_before_saving(world: World, alice: ConsoleClient) -> None:
    await alice.get(world.alice.certs_url + "/mtls-rule")
    fields = {"name": "mTLS rule", "verified": "off", "hostnames": "API.example.com", "action": "deny"}
    preview = await alice.post(world.alice.certs_url + "/mtls-rule", {**fields, "step": "preview"})
    assert preview.status_code == 200
    assert shown_expression(preview.text) == SEED_RULE
    assert "data-no-hostname-warning hidden" in preview.text
    assert site_rules(world) == []

    # OK with the expression that was shown before the hostname was typed: shown again, not saved.
    stale = await alice.post(
        world.alice.certs_url + "/mtls-rule",
        {**fields, "step": "save", "shown_expression": "(not tls.client_auth.cert_verified)"},
    )
    assert stale.status_code == 200
    assert "The expression changed with your input" in text_of(stale.text)
    assert site_rules(world) == []

    saved = await alice.post(
        world.alice.certs_url + "/mtls-rule", {**fields, "step": "save", "shown_expression": SEED_RULE}
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == world.alice.rules_url + "?notice=rule-created"
    [rule] = site_rules(world)
    assert (rule.expression, rule.action, rule.status, rule.name) == (
        SEED_RULE,
        RuleAction.DENY,
        RuleStatus.ON,
        "mTLS rule",
    )


async def test_several_hostnames_and_monitor(world: World, alice: ConsoleClient) -> None:
    expression = '(http.host in {"api.example.com" "www.example.com"} and not tls.client_auth.cert_verified)'
    await alice.get(world.alice.certs_url + "/mtls-rule")
    saved = await alice.post(
        world.alice.certs_url + "/mtls-rule",
        {
            "name": "watch",
            "verified": "off",
            "hostnames": "api.example.com www.example.com, api.example.com",
            "action": "monitor",
            "step": "save",
            "shown_expression": expression,
        },
    )
    assert saved.status_code == 303
    [rule] = site_rules(world)
    assert rule.expression == expression and rule.action is RuleAction.MONITOR


async def test_no_hostname_still_warns_on_preview(world: World, alice: ConsoleClient) -> None:
    await alice.get(world.alice.certs_url + "/mtls-rule")
    page = await alice.post(
        world.alice.certs_url + "/mtls-rule",
        {"name": "all", "verified": "on", "hostnames": " ", "step": "preview"},
    )
    assert NO_HOSTNAME_WARNING in text_of(page.text)
    assert shown_expression(page.text) == "(tls.client_auth.cert_verified)"


@pytest.mark.parametrize(
    ("hostnames", "message"),
    [
        ("api.other.org", "hostname api.other.org does not belong to site example.com"),
        ("*.example.com", "wildcard hostname '*.example.com' is not allowed here"),
        ('a".example.com', "malformed"),
    ],
)
async def test_bad_hostnames_are_refused(
    world: World, alice: ConsoleClient, hostnames: str, message: str
) -> None:
    await alice.get(world.alice.certs_url + "/mtls-rule")
    page = await alice.post(
        world.alice.certs_url + "/mtls-rule",
        {"name": "r", "verified": "off", "hostnames": hostnames, "step": "save", "shown_expression": ""},
    )
    assert page.status_code == 400
    assert message in text_of(page.text)
    assert site_rules(world) == []


async def test_an_action_the_api_refuses_is_refused_with_its_message(
    world: World, alice: ConsoleClient
) -> None:
    with pytest.raises(CertGateError) as expected:
        rules.create_waf_rule(
            world.ctx,
            world.alice.account_id,
            world.alice.site_id,
            phase="http_custom",
            data=WafRuleInput(name="r", expression=SEED_RULE, action="js"),
        )
    await alice.get(world.alice.certs_url + "/mtls-rule")
    page = await alice.post(
        world.alice.certs_url + "/mtls-rule",
        {
            "name": "r",
            "hostnames": "api.example.com",
            "action": "js",
            "step": "save",
            "shown_expression": SEED_RULE,
        },
    )
    assert page.status_code == 400
    assert expected.value.message in text_of(page.text)


def _rule(world: World, expression: str = SEED_RULE, name: str = "mtls") -> WafRule:
    return rules.create_waf_rule(
        world.ctx,
        world.alice.account_id,
        world.alice.site_id,
        phase="http_custom",
        data=WafRuleInput(name=name, expression=expression, action="deny"),
    )


async def test_the_rule_list_turns_rules_off_and_on_and_deletes(world: World, alice: ConsoleClient) -> None:
    rule = _rule(world)
    page = await alice.get(world.alice.rules_url)
    text = text_of(page.text)
    assert "mtls" in text and SEED_RULE in text and "Block" in text and "Turn off" in text
    url = f"{world.alice.rules_url}/{rule.id}"
    off = await alice.post(url + "/status", {"status": "off"})
    assert off.headers["location"] == world.alice.rules_url + "?notice=rule-off"
    assert site_rules(world)[0].status is RuleStatus.OFF
    assert "Turn on" in text_of((await alice.get(world.alice.rules_url)).text)
    on = await alice.post(url + "/status", {"status": "on"})
    assert on.headers["location"].endswith("?notice=rule-on")
    assert site_rules(world)[0].status is RuleStatus.ON
    bad = await alice.post(url + "/status", {"status": "maybe"})
    assert bad.status_code == 400 and "Status must be on or off, not 'maybe'" in text_of(bad.text)
    deleted = await alice.post(url + "/delete")
    assert deleted.headers["location"].endswith("?notice=rule-deleted")
    assert site_rules(world) == []


async def test_the_editor_shows_parse_errors_with_a_caret(world: World, alice: ConsoleClient) -> None:
    expression = 'http.host eq "api.example.com"\n  and foo.bar'
    with pytest.raises(CertGateError) as expected:
        world.ctx.expressions.validate(expression)
    line, column = expected.value.details["line"], expected.value.details["column"]
    assert line == 2
    await alice.get(world.alice.rules_url + "/new")
    page = await alice.post(
        world.alice.rules_url + "/new",
        {"name": "r", "expression": expression, "action": "deny", "step": "check"},
    )
    assert page.status_code == 400
    assert expected.value.message in text_of(page.text)
    assert f"Line {line}, column {column}:" in page.text
    carets = "^" * expected.value.details.get("length", 1)
    assert f"<pre>  and foo.bar\n{' ' * (column - 1)}{carets}</pre>" in page.text
    assert site_rules(world) == []


def test_the_excerpt_underlines_the_token_when_its_length_is_known() -> None:
    error = InvalidArgument("unknown field", reason="rule.parse_error", line=1, column=7, length=7)
    excerpt = excerpt_for(error, "a and foo.bar")
    assert excerpt is not None and excerpt.caret_line == "      ^^^^^^^"
    assert excerpt_for(InvalidArgument("no position"), "a and foo.bar") is None


async def test_the_editor_checks_then_saves(world: World, alice: ConsoleClient) -> None:
    expression = '(http.host eq "www.example.com" and not tls.client_auth.cert_verified)'
    await alice.get(world.alice.rules_url + "/new")
    fields = {"name": "www", "expression": expression, "action": "monitor"}
    checked = await alice.post(world.alice.rules_url + "/new", {**fields, "step": "check"})
    assert "The expression is valid." in text_of(checked.text)
    assert site_rules(world) == []
    saved = await alice.post(world.alice.rules_url + "/new", {**fields, "step": "save"})
    assert saved.headers["location"] == world.alice.rules_url + "?notice=rule-created"
    [rule] = site_rules(world)
    assert (rule.name, rule.expression, rule.action) == ("www", expression, RuleAction.MONITOR)


async def test_editing_a_rule(world: World, alice: ConsoleClient) -> None:
    rule = _rule(world)
    url = f"{world.alice.rules_url}/{rule.id}/edit"
    page = await alice.get(url)
    assert html.escape(SEED_RULE, quote=False) in page.text
    new = '(http.host eq "www.example.com" and not tls.client_auth.cert_verified)'
    saved = await alice.post(url, {"name": "renamed", "expression": new, "action": "deny", "step": "save"})
    assert saved.headers["location"].endswith("?notice=rule-saved")
    [updated] = site_rules(world)
    assert (updated.id, updated.name, updated.expression) == (rule.id, "renamed", new)


async def test_an_empty_expression_gets_the_api_message(world: World, alice: ConsoleClient) -> None:
    await alice.get(world.alice.rules_url + "/new")
    page = await alice.post(world.alice.rules_url + "/new", {"name": "r", "expression": " ", "step": "save"})
    assert page.status_code == 400
    assert "Config.Expression is required for http_custom rules" in text_of(page.text)


async def test_another_accounts_rules_are_not_found(world: World, alice: ConsoleClient) -> None:
    theirs = rules.create_waf_rule(
        world.ctx,
        world.bob.account_id,
        world.bob.site_id,
        phase="http_custom",
        data=WafRuleInput(name="bob", expression="(not tls.client_auth.cert_verified)", action="deny"),
    )
    await alice.get(world.alice.rules_url)
    for base in (world.bob.rules_url, world.alice.rules_url):
        url = f"{base}/{theirs.id}"
        assert (await alice.get(url + "/edit")).status_code == 404
        assert (await alice.post(url + "/status", {"status": "off"})).status_code == 404
        assert (await alice.post(url + "/delete")).status_code == 404
    assert (await alice.get(world.bob.rules_url)).status_code == 404
    kept, _ = rules.list_waf_rules(world.ctx, world.bob.account_id, world.bob.site_id, phase="http_custom")
    assert [r.status for r in kept] == [RuleStatus.ON]
