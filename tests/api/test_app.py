"""The RPC endpoint's plumbing on a live server: action and version dispatch, parameter sources,
body limits, JSON-only answers (also for unknown paths and internal failures)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from alibabacloud_esa20240910 import models as esa

from certgate.services import sites

ERROR_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


def error(response: Any) -> tuple[str, int]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["RequestId"] == response.headers.get("x-acs-request-id", body["RequestId"])
    return body["Code"], response.status_code


def test_success_carries_request_id_header(api: Any) -> None:
    response = api.raw("ListSites", method="GET")
    assert response.status_code == 200
    assert response.json()["RequestId"] == response.headers["x-acs-request-id"]
    assert response.headers["content-type"] == "application/json;charset=utf-8"


def test_unknown_action(api: Any) -> None:
    assert error(api.raw("DescribeEverything")) == ("InvalidApi.NotFound", 404)


def test_unsupported_version(api: Any) -> None:
    assert error(api.raw("ListSites", method="GET", version="2022-01-01")) == ("InvalidVersion", 400)


def test_parameters_from_query_or_form(api: Any) -> None:
    site = str(api.alice.site_id)
    from_form = api.raw("GetSite", form=[("SiteId", site)])
    assert from_form.status_code == 200 and from_form.json()["SiteModel"]["SiteId"] == api.alice.site_id
    twice = api.raw("GetSite", query=[("SiteId", site)], form=[("SiteId", site)])
    assert error(twice) == ("InvalidParameter.SiteId", 400)


@pytest.mark.parametrize(
    "value, code",
    [
        ("", "MissingSiteId"),
        ("12a", "InvalidParameter.SiteId"),
        ("1.5", "InvalidParameter.SiteId"),
        ("99999999999999999999", "InvalidParameter.SiteId"),
    ],
)
def test_integer_parameters(api: Any, value: str, code: str) -> None:
    assert error(api.raw("GetSite", method="GET", query=[("SiteId", value)])) == (code, 400)


def test_body_limit(api: Any) -> None:
    big = b"CSR=" + b"A" * (1024 * 1024 + 1)
    response = api.http.post(
        api.server.url + "/", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert error(response) == ("RequestEntityTooLarge", 413)


def test_body_must_be_form_encoded(api: Any) -> None:
    response = api.http.post(
        api.server.url + "/", content=b'{"SiteId": 1}', headers={"content-type": "application/json"}
    )
    assert error(response) == ("InvalidParameter.ContentType", 400)


@pytest.mark.parametrize(
    "method, path, code, status",
    [
        ("GET", "/nothing-here", "InvalidApi.NotFound", 404),
        ("PUT", "/", "MethodNotAllowed", 405),
        ("DELETE", "/edge/v1/snapshot", "MethodNotAllowed", 405),
    ],
)
def test_other_paths_answer_json(api: Any, method: str, path: str, code: str, status: int) -> None:
    response = api.http.request(method, api.server.url + path)
    assert error(response) == (code, status)


def test_unsigned_request_is_refused_before_parameters(api: Any) -> None:
    response = api.http.get(
        api.server.url + "/", headers={"x-acs-action": "GetSite", "x-acs-version": "2024-09-10"}
    )
    assert error(response) == ("MissingAuthorization", 400)


def test_internal_failure_is_a_json_500_without_details(
    api: Any, expect_error: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(sites, "get_site", broken)
    with caplog.at_level(logging.ERROR, logger="certgate.api"):
        exc = expect_error(
            lambda: api.alice.client.get_site(esa.GetSiteRequest(site_id=api.alice.site_id)),
            "InternalError",
            500,
        )
    assert "hunter2" not in str(exc.data) and "Traceback" not in str(exc.data)
    assert exc.request_id in caplog.text and "hunter2" in caplog.text  # the operator sees it in the log
