"""WAF custom rules and origin rules through the official SDK."""

from __future__ import annotations

import re
from typing import Any

import pytest
from alibabacloud_esa20240910 import models as esa

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
MTLS = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'


def config(**kw: Any) -> esa.WafRuleConfig:
    values = {"name": "mtls", "expression": MTLS, "action": "deny", "status": "on"}
    values.update(kw)
    return esa.WafRuleConfig(**{k: v for k, v in values.items() if v is not None})


def create_rule(
    tenant: Any, cfg: esa.WafRuleConfig | None = None, phase: str = "http_custom", **kw: Any
) -> Any:
    return tenant.client.create_waf_rule(
        esa.CreateWafRuleRequest(site_id=tenant.site_id, phase=phase, config=cfg or config(), **kw)
    )


def test_waf_rule_lifecycle(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("waf", "waf.example", ("api.waf.example",))
    created = create_rule(tenant, config(name="first", notes="why"))
    body = api.raw_json(created)
    assert isinstance(created.body.id, int) and isinstance(created.body.ruleset_id, int)
    rule_id, ruleset = body["Id"], body["RulesetId"]
    second = api.raw_json(create_rule(tenant, config(name="second", action="monitor"), ruleset_id=ruleset))
    assert second["RulesetId"] == ruleset

    got = api.raw_json(tenant.client.get_waf_rule(esa.GetWafRuleRequest(site_id=tenant.site_id, id=rule_id)))
    assert (got["Id"], got["Name"], got["Phase"], got["Position"], got["Status"]) == (
        rule_id,
        "first",
        "http_custom",
        1,
        "on",
    )
    assert got["RulesetId"] == ruleset and ISO_Z.match(got["UpdateTime"])
    assert got["Config"] == {
        "Id": rule_id,
        "Name": "first",
        "Expression": MTLS,
        "Action": "deny",
        "Status": "on",
        "Notes": "why",
    }

    listed = tenant.client.list_waf_rules(
        esa.ListWafRulesRequest(site_id=tenant.site_id, phase="http_custom")
    )
    as_json = api.raw_json(listed)
    assert isinstance(listed.body.total_count, int)
    assert (as_json["TotalCount"], as_json["SiteUsage"], as_json["InstanceUsage"]) == (2, 2, 2)
    assert [(r["Name"], r["Action"], r["Position"]) for r in as_json["Rules"]] == [
        ("first", "deny", 1),
        ("second", "monitor", 2),
    ]

    def names(**query: Any) -> list[str]:
        body = api.raw_json(
            tenant.client.list_waf_rules(
                esa.ListWafRulesRequest(site_id=tenant.site_id, phase="http_custom", **query)
            )
        )
        return [r["Name"] for r in body["Rules"]]

    assert names(query_args=esa.ListWafRulesRequestQueryArgs(name_like="SEC")) == ["second"]
    assert names(query_args=esa.ListWafRulesRequestQueryArgs(id_name_like=str(rule_id))) == ["first"]
    assert names(query_args=esa.ListWafRulesRequestQueryArgs(id=rule_id)) == ["first"]
    assert names(ruleset_id=ruleset, page_size=1, page_number=2) == ["second"]
    assert names(ruleset_id=ruleset + 1) == []

    updated = api.raw_json(
        tenant.client.update_waf_rule(
            esa.UpdateWafRuleRequest(site_id=tenant.site_id, id=rule_id, status="off", position=5)
        )
    )
    assert updated["Id"] == rule_id
    assert names(query_args=esa.ListWafRulesRequestQueryArgs(status="off")) == ["first"]
    tenant.client.update_waf_rule(
        esa.UpdateWafRuleRequest(
            site_id=tenant.site_id,
            id=rule_id,
            config=esa.WafRuleConfig(expression='(http.host eq "x.waf.example")'),
        )
    )
    got = api.raw_json(tenant.client.get_waf_rule(esa.GetWafRuleRequest(site_id=tenant.site_id, id=rule_id)))
    assert got["Config"]["Expression"] == '(http.host eq "x.waf.example")' and got["Position"] == 5
    assert got["Status"] == "off" and got["Config"]["Notes"] == "why"

    deleted = api.raw_json(
        tenant.client.delete_waf_rule(esa.DeleteWafRuleRequest(site_id=tenant.site_id, id=rule_id))
    )
    assert set(deleted) == {"RequestId"}
    for call in (
        lambda: tenant.client.get_waf_rule(esa.GetWafRuleRequest(site_id=tenant.site_id, id=rule_id)),
        lambda: tenant.client.delete_waf_rule(esa.DeleteWafRuleRequest(site_id=tenant.site_id, id=rule_id)),
        lambda: tenant.client.update_waf_rule(
            esa.UpdateWafRuleRequest(site_id=tenant.site_id, id=rule_id, status="on")
        ),
    ):
        expect_error(call, "WafRule.NotFound", 404)


def test_parse_error_names_line_and_column(api: Any, expect_error: Any) -> None:
    exc = expect_error(
        lambda: create_rule(api.alice, config(expression='(http.host eq "a"\n  and (http.host')),
        "InvalidParameter.Expression",
        400,
    )
    assert re.search(r"line \d+, column \d+", exc.message), exc.message


@pytest.mark.parametrize(
    "cfg, phase, code",
    [
        (config(), "http_bot", "InvalidParameter.Phase"),
        (config(), "http_nonsense", "InvalidParameter.Phase"),
        (config(action="js"), "http_custom", "InvalidParameter.Action"),
        (config(action="explode"), "http_custom", "InvalidParameter.Action"),
        (config(action=None), "http_custom", "InvalidParameter.Action"),
        (config(expression=None), "http_custom", "InvalidParameter.Expression"),
        (config(status="maybe"), "http_custom", "InvalidParameter.Status"),
        (config(name="n" * 129), "http_custom", "InvalidParameter.Name"),
        (
            config(
                rate_limit=esa.WafRuleConfigRateLimit(
                    threshold=esa.WafRuleConfigRateLimitThreshold(request=5)
                )
            ),
            "http_custom",
            "InvalidParameter.Config",
        ),
        (
            config(
                actions=esa.WafRuleConfigActions(response=esa.WafRuleConfigActionsResponse(code=429, id=0))
            ),
            "http_custom",
            "InvalidParameter.Config",
        ),
    ],
)
def test_create_waf_rule_errors(api: Any, expect_error: Any, cfg: Any, phase: str, code: str) -> None:
    before = api.ctx.store.current_version()
    expect_error(lambda: create_rule(api.alice, cfg, phase), code, 400)
    assert api.ctx.store.current_version() == before


def test_default_block_page_is_accepted(api: Any) -> None:
    cfg = config(actions=esa.WafRuleConfigActions(response=esa.WafRuleConfigActionsResponse(code=403, id=0)))
    api.raw_json(create_rule(api.alice, cfg))


def test_waf_parameter_errors(api: Any, expect_error: Any) -> None:
    client, site_id = api.alice.client, api.alice.site_id
    expect_error(
        lambda: client.create_waf_rule(esa.CreateWafRuleRequest(site_id=site_id, config=config())),
        "MissingPhase",
        400,
    )
    expect_error(lambda: create_rule(api.alice, site_version=3), "InvalidParameter.SiteVersion", 400)
    expect_error(lambda: client.get_waf_rule(esa.GetWafRuleRequest(site_id=site_id)), "MissingId", 400)
    expect_error(lambda: client.list_waf_rules(esa.ListWafRulesRequest(site_id=site_id)), "MissingPhase", 400)
    expect_error(
        lambda: client.list_waf_rules(
            esa.ListWafRulesRequest(
                site_id=site_id,
                phase="http_custom",
                query_args=esa.ListWafRulesRequestQueryArgs(order_by="position"),
            )
        ),
        "InvalidParameter.QueryArgs",
        400,
    )
    expect_error(
        lambda: client.update_waf_rule(esa.UpdateWafRuleRequest(site_id=site_id, id=1, position=0)),
        "InvalidParameter.Position",
        400,
    )
    response = api.raw("GetWafRule", query=[("SiteId", str(site_id)), ("Id", "abc")])
    assert response.status_code == 400 and response.json()["Code"] == "InvalidParameter.Id"
    response = api.raw(
        "CreateWafRule",
        query=[("SiteId", str(site_id))],
        form=[("Phase", "http_custom"), ("Config", '["not", "an", "object"]')],
    )
    assert response.status_code == 400 and response.json()["Code"] == "InvalidParameter.Config"


# -- origin rules --------------------------------------------------------------------------------


def test_origin_rule_lifecycle(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("origins", "origins.example", ("api.origins.example",))
    response = tenant.client.create_origin_rule(
        esa.CreateOriginRuleRequest(
            site_id=tenant.site_id,
            rule='(http.request.uri.path eq "/v2")',
            rule_name="v2 backend",
            rule_enable="on",
            origin_scheme="https",
            origin_https_port="8443",
            origin_host="v2.internal.example",
            origin_sni="v2.internal.example",
            origin_read_timeout="30",
            dns_record="192.0.2.44",
        )
    )
    body = api.raw_json(response)
    assert isinstance(response.body.config_id, int)
    first = body["ConfigId"]
    second = api.raw_json(
        tenant.client.create_origin_rule(
            esa.CreateOriginRuleRequest(
                site_id=tenant.site_id, rule="(ssl)", rule_name="plain", rule_enable="off"
            )
        )
    )["ConfigId"]

    listed = tenant.client.list_origin_rules(esa.ListOriginRulesRequest(site_id=tenant.site_id))
    as_json = api.raw_json(listed)
    assert isinstance(listed.body.total_count, int)
    assert (as_json["TotalCount"], as_json["TotalPage"], as_json["PageNumber"], as_json["PageSize"]) == (
        2,
        1,
        1,
        20,
    )
    assert as_json["Configs"][0] == {
        "ConfigId": first,
        "ConfigType": "rule",
        "Rule": '(http.request.uri.path eq "/v2")',
        "RuleName": "v2 backend",
        "RuleEnable": "on",
        "Sequence": 1,
        "SiteVersion": 0,
        "OriginScheme": "https",
        "OriginHttpsPort": "8443",
        "OriginHost": "v2.internal.example",
        "OriginSni": "v2.internal.example",
        "OriginReadTimeout": "30",
        "DnsRecord": "192.0.2.44",
    }
    assert as_json["Configs"][1]["RuleEnable"] == "off" and "OriginScheme" not in as_json["Configs"][1]

    def ids(**kw: Any) -> list[int]:
        body = api.raw_json(
            tenant.client.list_origin_rules(esa.ListOriginRulesRequest(site_id=tenant.site_id, **kw))
        )
        return [c["ConfigId"] for c in body["Configs"]]

    assert ids(config_id=second) == [second]
    assert ids(rule_name="v2 backend") == [first]
    assert ids(page_size=1, page_number=2) == [second]

    deleted = tenant.client.delete_origin_rule(
        esa.DeleteOriginRuleRequest(site_id=tenant.site_id, config_id=first)
    )
    assert set(api.raw_json(deleted)) == {"RequestId"}
    assert ids() == [second]
    expect_error(
        lambda: tenant.client.delete_origin_rule(
            esa.DeleteOriginRuleRequest(site_id=tenant.site_id, config_id=first)
        ),
        "OriginRule.NotFound",
        404,
    )


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"rule": "(http.host eq"}, "InvalidParameter.Expression"),
        ({"origin_scheme": "gopher"}, "InvalidParameter.OriginScheme"),
        ({"origin_http_port": "70000"}, "InvalidParameter.OriginPort"),
        ({"origin_http_port": "http"}, "InvalidParameter.OriginHttpPort"),
        ({"origin_read_timeout": "601"}, "InvalidParameter.OriginReadTimeout"),
        ({"rule_enable": "yes"}, "InvalidParameter.RuleEnable"),
        ({"follow_302enable": "on"}, "InvalidParameter.Follow302Enable"),
        ({"range": "on"}, "InvalidParameter.Range"),
        ({"rule": None}, "MissingRule"),
        ({"rule_name": None}, "MissingRuleName"),
    ],
)
def test_create_origin_rule_errors(api: Any, expect_error: Any, kwargs: dict[str, Any], code: str) -> None:
    values: dict[str, Any] = {"site_id": api.alice.site_id, "rule": "(ssl)", "rule_name": "r"}
    values.update(kwargs)
    expect_error(
        lambda: api.alice.client.create_origin_rule(esa.CreateOriginRuleRequest(**values)), code, 400
    )
