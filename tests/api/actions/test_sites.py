"""Site and record actions through the official SDK."""

from __future__ import annotations

import re
from typing import Any

import pytest
from alibabacloud_esa20240910 import models as esa

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def create_site(tenant: Any, name: str, **kw: Any) -> Any:
    request = esa.CreateSiteRequest(
        site_name=name,
        access_type=kw.pop("access_type", "CNAME"),
        coverage=kw.pop("coverage", "overseas"),
        instance_id=kw.pop("instance_id", tenant.instance_id),
        **kw,
    )
    return tenant.client.create_site(request)


def create_record(tenant: Any, site_id: int, name: str, **kw: Any) -> Any:
    request = esa.CreateRecordRequest(
        site_id=site_id,
        record_name=name,
        type=kw.pop("type", "A/AAAA"),
        ttl=kw.pop("ttl", 1),
        data=kw.pop("data", esa.CreateRecordRequestData(value="192.0.2.10")),
        **kw,
    )
    return tenant.client.create_record(request)


def test_site_lifecycle(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("site-owner", "first.example")
    response = create_site(tenant, "Second.Example", resource_group_id="rg-1")
    body = api.raw_json(response)
    assert isinstance(response.body.site_id, int)
    assert body["VerifyCode"].startswith("verify_") and body["NameServerList"] == ""
    site_id = body["SiteId"]

    model = api.raw_json(tenant.client.get_site(esa.GetSiteRequest(site_id=site_id)))["SiteModel"]
    assert model["SiteId"] == site_id and model["SiteName"] == "second.example"
    assert (model["AccessType"], model["Coverage"], model["Status"]) == ("CNAME", "overseas", "active")
    assert model["InstanceId"] == tenant.instance_id and model["VersionManagement"] is False
    assert ISO_Z.match(model["CreateTime"]) and ISO_Z.match(model["UpdateTime"])
    assert model["Tags"] == {} and model["VanityNSList"] == {}

    deleted = api.raw_json(tenant.client.delete_site(esa.DeleteSiteRequest(site_id=site_id)))
    assert set(deleted) == {"RequestId"}
    expect_error(lambda: tenant.client.get_site(esa.GetSiteRequest(site_id=site_id)), "SiteNotFound", 404)
    expect_error(
        lambda: tenant.client.delete_site(esa.DeleteSiteRequest(site_id=site_id)), "SiteNotFound", 404
    )


def test_delete_site_takes_everything_under_it(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("cascade", "cascade.example", ("a.cascade.example",))
    cert = tenant.client.create_client_certificate(
        esa.CreateClientCertificateRequest(site_id=tenant.site_id, pkey_type="ECDSA", validity_days=2)
    ).body.id
    tenant.client.delete_site(esa.DeleteSiteRequest(site_id=tenant.site_id))
    expect_error(
        lambda: tenant.client.get_client_certificate(
            esa.GetClientCertificateRequest(site_id=tenant.site_id, id=cert)
        ),
        "SiteNotFound",
        404,
    )


@pytest.mark.parametrize(
    "name, kwargs, code, status",
    [
        ("example.com", {}, "Site.AlreadyExists", 400),  # alice's: names are unique installation-wide
        ("fresh.example", {"instance_id": "esa-site-000000000000"}, "Instance.NotFound", 404),
        ("fresh.example", {"access_type": "A"}, "InvalidParameter.AccessType", 400),
        ("fresh.example", {"coverage": "moon"}, "InvalidParameter.Coverage", 400),
        ("not a domain", {}, "InvalidParameter.Hostname", 400),
    ],
)
def test_create_site_errors(
    api: Any, expect_error: Any, name: str, kwargs: dict[str, Any], code: str, status: int
) -> None:
    expect_error(lambda: create_site(api.bob, name, **kwargs), code, status)


def test_create_site_missing_parameters(api: Any, expect_error: Any) -> None:
    for missing in ("site_name", "access_type", "coverage", "instance_id"):
        values: dict[str, Any] = {
            "site_name": "m.example",
            "access_type": "NS",
            "coverage": "global",
            "instance_id": api.bob.instance_id,
        }
        values.pop(missing)
        wire = "".join(part.capitalize() for part in missing.split("_"))
        expect_error(
            lambda v=values: api.bob.client.create_site(esa.CreateSiteRequest(**v)), f"Missing{wire}", 400
        )


def test_list_sites_filters_and_pages(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("lister-sites", "zz-one.example")
    for name, access in (("zz-two.example", "NS"), ("zz-three.test", "CNAME")):
        create_site(tenant, name, access_type=access)

    def names(**kw: Any) -> list[str]:
        response = tenant.client.list_sites(esa.ListSitesRequest(**kw))
        body = api.raw_json(response)
        assert isinstance(response.body.total_count, int)
        return [s["SiteName"] for s in body["Sites"]]

    assert names() == ["zz-one.example", "zz-three.test", "zz-two.example"]
    assert names(site_name="zz-two.example") == ["zz-two.example"]
    assert names(site_name=".example", site_search_type="suffix") == ["zz-one.example", "zz-two.example"]
    assert names(site_name="THREE", site_search_type="fuzzy") == ["zz-three.test"]
    assert names(access_type="CNAME") == ["zz-three.test"]
    assert names(coverage="global") == ["zz-one.example"]
    assert names(only_enterprise=True, page_size=1, page_number=2) == ["zz-three.test"]
    assert names(tag_filter=[esa.ListSitesRequestTagFilter(key="env", value="prod")]) == []
    body = api.raw_json(tenant.client.list_sites(esa.ListSitesRequest(page_size=2)))
    assert (body["TotalCount"], body["PageSize"], len(body["Sites"])) == (3, 2, 2)
    site = body["Sites"][0]
    assert ISO_Z.match(site["VisitTime"]) and site["PlanName"] == "enterprise"
    expect_error(
        lambda: tenant.client.list_sites(esa.ListSitesRequest(site_search_type="regex")),
        "InvalidParameter.SiteSearchType",
        400,
    )
    expect_error(
        lambda: tenant.client.list_sites(esa.ListSitesRequest(page_size=501)),
        "InvalidParameter.PageSize",
        400,
    )
    expect_error(
        lambda: tenant.client.list_sites(esa.ListSitesRequest(order_by="gmtCreate")),
        "InvalidParameter.OrderBy",
        400,
    )


def test_booleans_in_any_case(api: Any) -> None:
    for raw in ("true", "True", "TRUE"):
        response = api.raw("ListSites", method="GET", query=[("OnlyEnterprise", raw)])
        assert response.status_code == 200, response.text
    response = api.raw("ListSites", method="GET", query=[("OnlyEnterprise", "yes")])
    assert response.status_code == 400 and response.json()["Code"] == "InvalidParameter.OnlyEnterprise"


# -- records -------------------------------------------------------------------------------------


def test_record_lifecycle(api: Any, expect_error: Any) -> None:
    tenant = api.tenant("records", "records.example")
    response = create_record(
        tenant,
        tenant.site_id,
        "App.Records.Example",
        proxied=True,
        biz_name="api",
        comment="front door",
        source_type="OP",
    )
    body = api.raw_json(response)
    assert isinstance(response.body.record_id, int)
    record_id = body["RecordId"]
    create_record(
        tenant,
        tenant.site_id,
        "txt.records.example",
        type="TXT",
        ttl=300,
        data=esa.CreateRecordRequestData(value="hello"),
    )
    listed = tenant.client.list_records(esa.ListRecordsRequest(site_id=tenant.site_id))
    as_json = api.raw_json(listed)
    assert isinstance(listed.body.total_count, int) and as_json["TotalCount"] == 2
    assert (as_json["PageNumber"], as_json["PageSize"]) == (1, 500)
    app = as_json["Records"][0]
    assert app == {
        "RecordId": record_id,
        "RecordName": "app.records.example",
        "RecordType": "A/AAAA",
        "SiteId": tenant.site_id,
        "SiteName": "records.example",
        "Proxied": True,
        "Ttl": 1,
        "BizName": "api",
        "Comment": "front door",
        "Data": {"Value": "192.0.2.10"},
        "CreateTime": app["CreateTime"],
        "UpdateTime": app["UpdateTime"],
    }
    assert ISO_Z.match(app["CreateTime"])

    def names(**kw: Any) -> list[str]:
        body = api.raw_json(tenant.client.list_records(esa.ListRecordsRequest(site_id=tenant.site_id, **kw)))
        return [r["RecordName"] for r in body["Records"]]

    assert names(type="TXT") == ["txt.records.example"]
    assert names(proxied=True) == ["app.records.example"]
    assert names(proxied=False) == ["txt.records.example"]
    assert names(biz_name="api") == ["app.records.example"]
    assert names(record_name="app", record_match_type="prefix") == ["app.records.example"]
    assert names(page_size=1, page_number=2) == ["txt.records.example"]

    assert set(api.raw_json(tenant.client.delete_record(esa.DeleteRecordRequest(record_id=record_id)))) == {
        "RequestId"
    }
    assert names() == ["txt.records.example"]
    expect_error(
        lambda: tenant.client.delete_record(esa.DeleteRecordRequest(record_id=record_id)),
        "Record.NotFound",
        404,
    )


@pytest.mark.parametrize(
    "name, kwargs, code",
    [
        ("api.example.com", {}, "Record.AlreadyExists"),
        ("api.other.org", {}, "Hostname.NotInSite"),
        ("x.example.com", {"type": "SPF"}, "InvalidParameter.Type"),
        ("x.example.com", {"ttl": 0}, "InvalidParameter.Ttl"),
        ("x.example.com", {"data": esa.CreateRecordRequestData(value="not-an-ip")}, "InvalidParameter.Data"),
        (
            "x.example.com",
            {"data": esa.CreateRecordRequestData(value="1.2.3.4", priority=10)},
            "InvalidParameter.Data",
        ),
        (
            "x.example.com",
            {"type": "TXT", "proxied": True, "data": esa.CreateRecordRequestData(value="v")},
            "InvalidParameter.Proxied",
        ),
        ("x.example.com", {"biz_name": "games"}, "InvalidParameter.BizName"),
        ("x.example.com", {"source_type": "OSS"}, "InvalidParameter.SourceType"),
        ("x.example.com", {"host_policy": "follow_origin_domain"}, "InvalidParameter.HostPolicy"),
        (
            "x.example.com",
            {"auth_conf": esa.CreateRecordRequestAuthConf(auth_type="private")},
            "InvalidParameter.AuthConf",
        ),
        ("x.example.com", {"comment": "c" * 101}, "InvalidParameter.Comment"),
    ],
)
def test_create_record_errors(
    api: Any, expect_error: Any, name: str, kwargs: dict[str, Any], code: str
) -> None:
    before = api.ctx.store.current_version()
    expect_error(lambda: create_record(api.alice, api.alice.site_id, name, **kwargs), code, 400)
    assert api.ctx.store.current_version() == before


def test_record_parameter_errors(api: Any, expect_error: Any) -> None:
    expect_error(
        lambda: api.alice.client.create_record(
            esa.CreateRecordRequest(
                site_id=api.alice.site_id,
                record_name="y.example.com",
                type="A/AAAA",
                data=esa.CreateRecordRequestData(value="1.2.3.4"),
            )
        ),
        "MissingTtl",
        400,
    )
    response = api.raw(
        "CreateRecord",
        query=[
            ("SiteId", str(api.alice.site_id)),
            ("RecordName", "y.example.com"),
            ("Type", "A/AAAA"),
            ("Ttl", "one"),
            ("Data", '{"Value":"1.2.3.4"}'),
        ],
    )
    assert response.status_code == 400 and response.json()["Code"] == "InvalidParameter.Ttl"
    response = api.raw(
        "CreateRecord",
        query=[
            ("SiteId", str(api.alice.site_id)),
            ("RecordName", "y.example.com"),
            ("Type", "A/AAAA"),
            ("Ttl", "1"),
            ("Data", "{Value: 1.2.3.4}"),
        ],
    )
    assert response.status_code == 400 and response.json()["Code"] == "InvalidParameter.Data"
    expect_error(lambda: api.alice.client.delete_record(esa.DeleteRecordRequest()), "MissingRecordId", 400)
    expect_error(
        lambda: api.alice.client.list_records(
            esa.ListRecordsRequest(site_id=api.alice.site_id, custom_port="8080")
        ),
        "InvalidParameter.CustomPort",
        400,
    )
    expect_error(
        lambda: api.alice.client.list_records(
            esa.ListRecordsRequest(site_id=api.alice.site_id, record_match_type="glob")
        ),
        "InvalidParameter.RecordMatchType",
        400,
    )
