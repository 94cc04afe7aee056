"""Two accounts never see each other's objects, for every action: bob naming alice's site or
objects gets exactly what he gets for ids that do not exist, and alice's objects stay as they
were."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_esa20240910 import models as esa
from alibabacloud_tea_openapi.exceptions import ClientException

from certgate.api.registry import REGISTRY
from certgate.pki.authority import create_certificate_authority
from certgate.pki.pem import certificate_to_pem
from certgate.services import ca_certificates, certificates, rules, sites


@dataclass
class Ids:
    site: int
    cert: str
    ca: str
    managed_ca: str
    waf: int
    origin: int
    record: int
    instance: str


Call = Callable[[Any, Ids, int], Any]  # (bob's client, ids, the site to name) -> response

MTLS = '(http.host eq "api.example.com")'
CALLS: dict[str, Call] = {
    "CreateClientCertificate": lambda c, i, s: c.create_client_certificate(
        esa.CreateClientCertificateRequest(site_id=s, pkey_type="ECDSA", validity_days=1)),
    "GetClientCertificate": lambda c, i, s: c.get_client_certificate(
        esa.GetClientCertificateRequest(site_id=s, id=i.cert)),
    "ListClientCertificates": lambda c, i, s: c.list_client_certificates(
        esa.ListClientCertificatesRequest(site_id=s)),
    "RevokeClientCertificate": lambda c, i, s: c.revoke_client_certificate(
        esa.RevokeClientCertificateRequest(site_id=s, id=i.cert)),
    "ActivateClientCertificate": lambda c, i, s: c.activate_client_certificate(
        esa.ActivateClientCertificateRequest(site_id=s, id=i.cert)),
    "DeleteClientCertificate": lambda c, i, s: c.delete_client_certificate(
        esa.DeleteClientCertificateRequest(site_id=s, id=i.cert)),
    "SetClientCertificateHostnames": lambda c, i, s: c.set_client_certificate_hostnames(
        esa.SetClientCertificateHostnamesRequest(site_id=s, id=i.ca, hostnames=[])),
    "GetClientCertificateHostnames": lambda c, i, s: c.get_client_certificate_hostnames(
        esa.GetClientCertificateHostnamesRequest(site_id=s, id=i.managed_ca)),
    "UploadClientCaCertificate": lambda c, i, s: c.upload_client_ca_certificate(
        esa.UploadClientCaCertificateRequest(site_id=s, certificate=CA_PEM)),
    "GetClientCaCertificate": lambda c, i, s: c.get_client_ca_certificate(
        esa.GetClientCaCertificateRequest(site_id=s, id=i.ca)),
    "ListClientCaCertificates": lambda c, i, s: c.list_client_ca_certificates(
        esa.ListClientCaCertificatesRequest(site_id=s)),
    "DeleteClientCaCertificate": lambda c, i, s: c.delete_client_ca_certificate(
        esa.DeleteClientCaCertificateRequest(site_id=s, id=i.ca)),
    "SetClientCaCertificateHostnames": lambda c, i, s: c.set_client_ca_certificate_hostnames(
        esa.SetClientCaCertificateHostnamesRequest(site_id=s, id=i.managed_ca, hostnames=[])),
    "GetClientCaCertificateHostnames": lambda c, i, s: c.get_client_ca_certificate_hostnames(
        esa.GetClientCaCertificateHostnamesRequest(site_id=s, id=i.ca)),
    "CreateSite": lambda c, i, s: c.create_site(
        esa.CreateSiteRequest(site_name=f"n{secrets.token_hex(4)}.example", access_type="NS",
                              coverage="global", instance_id=i.instance)),
    "GetSite": lambda c, i, s: c.get_site(esa.GetSiteRequest(site_id=s)),
    "ListSites": lambda c, i, s: c.list_sites(esa.ListSitesRequest(site_name="example.com")),
    "DeleteSite": lambda c, i, s: c.delete_site(esa.DeleteSiteRequest(site_id=s)),
    "CreateRecord": lambda c, i, s: c.create_record(
        esa.CreateRecordRequest(site_id=s, record_name="new.example.com", type="A/AAAA", ttl=1,
                                data=esa.CreateRecordRequestData(value="192.0.2.1"))),
    "ListRecords": lambda c, i, s: c.list_records(esa.ListRecordsRequest(site_id=s)),
    "DeleteRecord": lambda c, i, s: c.delete_record(esa.DeleteRecordRequest(record_id=i.record)),
    "CreateWafRule": lambda c, i, s: c.create_waf_rule(
        esa.CreateWafRuleRequest(site_id=s, phase="http_custom",
                                 config=esa.WafRuleConfig(name="x", expression=MTLS, action="deny"))),
    "GetWafRule": lambda c, i, s: c.get_waf_rule(esa.GetWafRuleRequest(site_id=s, id=i.waf)),
    "ListWafRules": lambda c, i, s: c.list_waf_rules(esa.ListWafRulesRequest(site_id=s, phase="http_custom")),
    "UpdateWafRule": lambda c, i, s: c.update_waf_rule(
        esa.UpdateWafRuleRequest(site_id=s, id=i.waf, status="off")),
    "DeleteWafRule": lambda c, i, s: c.delete_waf_rule(esa.DeleteWafRuleRequest(site_id=s, id=i.waf)),
    "CreateOriginRule": lambda c, i, s: c.create_origin_rule(
        esa.CreateOriginRuleRequest(site_id=s, rule=MTLS, rule_name="r")),
    "ListOriginRules": lambda c, i, s: c.list_origin_rules(esa.ListOriginRulesRequest(site_id=s)),
    "DeleteOriginRule": lambda c, i, s: c.delete_origin_rule(
        esa.DeleteOriginRuleRequest(site_id=s, config_id=i.origin)),
    "SetCertificate": lambda c, i, s: c.set_certificate(
        esa.SetCertificateRequest(site_id=s, type="upload", certificate=CA_PEM, private_key="k")),
}  # fmt: skip
# Actions naming an object inside a site: also tried with bob's own site and alice's object id.
OBJECT_IN_SITE = {
    "GetClientCertificate", "RevokeClientCertificate", "ActivateClientCertificate", "DeleteClientCertificate",
    "SetClientCertificateHostnames", "GetClientCertificateHostnames", "GetClientCaCertificate",
    "DeleteClientCaCertificate", "SetClientCaCertificateHostnames", "GetClientCaCertificateHostnames",
    "GetWafRule", "UpdateWafRule", "DeleteWafRule", "DeleteOriginRule",
}  # fmt: skip
CA_PEM = ""


@pytest.fixture(scope="module")
def ids(api: Any) -> tuple[Ids, Ids]:
    """(alice's real ids, ids of the same shapes that exist nowhere)."""
    global CA_PEM
    alice = api.alice
    CA_PEM = certificate_to_pem(create_certificate_authority("Isolation CA", now=api.clock.now()).certificate)
    cert = alice.client.create_client_certificate(
        esa.CreateClientCertificateRequest(site_id=alice.site_id, pkey_type="ECDSA", validity_days=5)
    ).body.id
    ca = alice.client.upload_client_ca_certificate(
        esa.UploadClientCaCertificateRequest(site_id=alice.site_id, certificate=CA_PEM)
    ).body.id
    managed = alice.client.get_client_ca_certificate_hostnames(
        esa.GetClientCaCertificateHostnamesRequest(site_id=alice.site_id)
    ).body.id
    alice.client.set_client_ca_certificate_hostnames(
        esa.SetClientCaCertificateHostnamesRequest(
            site_id=alice.site_id, id=ca, hostnames=["api.example.com"]
        )
    )
    waf = alice.client.create_waf_rule(
        esa.CreateWafRuleRequest(site_id=alice.site_id, phase="http_custom",
                                 config=esa.WafRuleConfig(name="a", expression=MTLS, action="deny"))
    ).body.id  # fmt: skip
    origin = alice.client.create_origin_rule(
        esa.CreateOriginRuleRequest(site_id=alice.site_id, rule=MTLS, rule_name="a")
    ).body.config_id
    record = (
        alice.client.list_records(esa.ListRecordsRequest(site_id=alice.site_id)).body.records[0].record_id
    )
    real = Ids(alice.site_id, cert, ca, managed, waf, origin, record, alice.instance_id)
    missing = Ids(
        999_999_999_999, secrets.token_hex(16), secrets.token_hex(16), secrets.token_hex(16),
        987_654_321, 987_654_322, 999_999_999_998, "esa-site-" + secrets.token_hex(6),
    )  # fmt: skip
    return real, missing


def test_table_covers_every_action() -> None:
    assert set(CALLS) == {a.name for a in REGISTRY}
    assert OBJECT_IN_SITE <= set(CALLS)


def outcome(call: Callable[[], Any]) -> tuple[str, int, str] | str:
    try:
        call()
    except ClientException as exc:
        return exc.code, exc.status_code, exc.data["Message"]
    return "ok"


def snapshot_of_alice(api: Any, real: Ids) -> dict[str, Any]:
    """Alice's objects, read straight through the services (fast, and independent of the API)."""
    ctx, account, site = api.ctx, api.alice.account_id, real.site
    return {
        "cert": certificates.get_client_certificate(ctx, account, site, real.cert)[1],
        "ca": ca_certificates.get_ca_certificate(ctx, account, site, real.ca)[1],
        "bound": ca_certificates.get_hostnames(ctx, account, site, real.ca)[1],
        "managed": ca_certificates.get_hostnames(ctx, account, site, None)[1],
        "waf": rules.get_waf_rule(ctx, account, site, real.waf),
        "origins": rules.list_origin_rules(ctx, account, site)[1],
        "records": sites.list_records(ctx, account, site)[1:],
        "site": sites.get_site(ctx, account, site),
    }


@pytest.mark.parametrize("action", sorted(CALLS))
def test_foreign_ids_look_missing(api: Any, ids: tuple[Ids, Ids], action: str) -> None:
    real, missing = ids
    before = snapshot_of_alice(api, real)
    bob = api.bob.client
    call = CALLS[action]
    variants = [(real.site, missing.site)]
    if action in OBJECT_IN_SITE:
        variants.append((api.bob.site_id, api.bob.site_id))
    for real_site, missing_site in variants:
        with_real = outcome(lambda site=real_site: call(bob, real, site))  # type: ignore[misc]
        with_missing = outcome(lambda site=missing_site: call(bob, missing, site))  # type: ignore[misc]
        if action == "ListSites":
            assert with_real == with_missing == "ok"
            continue
        if action == "CreateSite":
            # No id is involved except alice's plan instance, which bob cannot use.
            assert with_real[:2] == with_missing[:2] == ("Instance.NotFound", 404)  # type: ignore[index]
            continue
        assert isinstance(with_real, tuple) and isinstance(with_missing, tuple), (with_real, with_missing)
        assert with_real[:2] == with_missing[:2], (with_real, with_missing)
        assert with_real[1] in (404, 400)
        # Messages differ only by the id they quote.
        scrub = with_real[2]
        for value in (real.site, real.cert, real.ca, real.managed_ca, real.waf, real.origin, real.record):
            scrub = scrub.replace(str(value), "<id>")
        expected = with_missing[2]
        for value in (missing.site, missing.cert, missing.ca, missing.managed_ca, missing.waf, missing.origin,
                      missing.record):  # fmt: skip
            expected = expected.replace(str(value), "<id>")
        assert scrub == expected
    assert snapshot_of_alice(api, real) == before


def test_listings_show_only_own_objects(api: Any, ids: tuple[Ids, Ids]) -> None:
    sites = api.bob.client.list_sites(esa.ListSitesRequest()).body
    assert [s.site_name for s in sites.sites] == ["other.org"] and sites.total_count == 1
    everything = api.bob.client.list_sites(esa.ListSitesRequest(site_name="", site_search_type="fuzzy")).body
    assert "example.com" not in {s.site_name for s in everything.sites}
    rules = api.bob.client.list_waf_rules(
        esa.ListWafRulesRequest(site_id=api.bob.site_id, phase="http_custom")
    ).body
    assert rules.instance_usage == 0 and rules.total_count == 0
