"""Request signatures against a live server: the SDK's ACS3 and V2 modes, and every way a raw
request can be wrong (our own signer builds it, then the test breaks one thing)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

import httpx
import pytest
from alibabacloud_esa20240910 import models as esa

from certgate.api import auth as auth_module
from certgate.api.auth import Authenticator, SignedRequest, sign_acs3, sign_v2
from certgate.errors import Unauthenticated
from certgate.services import accounts

LIST = "ListClientCertificates"


def list_query(api: Any) -> list[tuple[str, str]]:
    return [("SiteId", str(api.alice.site_id))]


def code_of(response: httpx.Response) -> tuple[str, int]:
    body = response.json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    return body["Code"], response.status_code


def test_raw_signer_baseline(api: Any) -> None:
    response = api.raw(LIST, method="GET", query=list_query(api))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")


def test_wrong_secret(api: Any, expect_error: Any) -> None:
    client = api.sdk(api.alice.key_id, "not-the-secret")
    exc = expect_error(
        lambda: client.list_client_certificates(esa.ListClientCertificatesRequest(site_id=api.alice.site_id)),
        "SignatureDoesNotMatch",
        400,
    )
    assert "not-the-secret" not in str(exc.data)


def test_unknown_access_key(api: Any, expect_error: Any) -> None:
    client = api.sdk("LTAInobodyhasthiskey0000", "secret")
    expect_error(lambda: client.list_sites(esa.ListSitesRequest()), "InvalidAccessKeyId.NotFound", 404)


def test_other_tenants_secret_does_not_sign_for_alice(api: Any) -> None:
    response = api.raw(LIST, method="GET", query=list_query(api), secret=api.bob.secret)
    assert code_of(response) == ("SignatureDoesNotMatch", 400)


def test_tampered_body(api: Any) -> None:
    form = [("PkeyType", "ECDSA"), ("ValidityDays", "30")]
    signed_for = b"PkeyType=ECDSA&ValidityDays=1"
    response = api.raw("CreateClientCertificate", query=list_query(api), form=form, sign_body=signed_for)
    assert code_of(response) == ("SignatureDoesNotMatch", 400)
    assert "x-acs-content-sha256" in response.json()["Message"]


def test_tampered_body_with_recomputed_digest(api: Any) -> None:
    form = [("PkeyType", "ECDSA"), ("ValidityDays", "30")]
    body = b"PkeyType=ECDSA&ValidityDays=30"
    response = api.raw(
        "CreateClientCertificate",
        query=list_query(api),
        form=form,
        sign_body=b"PkeyType=ECDSA&ValidityDays=1",
        override={"x-acs-content-sha256": hashlib.sha256(body).hexdigest()},
    )
    assert code_of(response) == ("SignatureDoesNotMatch", 400)


def test_tampered_query(api: Any) -> None:
    response = api.raw(
        LIST,
        method="GET",
        query=list_query(api),
        send_query=[("SiteId", str(api.bob.site_id))],
        tenant=api.alice,
    )
    assert code_of(response) == ("SignatureDoesNotMatch", 400)
    response = api.raw(
        LIST, method="GET", query=list_query(api), send_query=[*list_query(api), ("PageSize", "1")]
    )
    assert code_of(response) == ("SignatureDoesNotMatch", 400)


def test_tampered_action_header(api: Any) -> None:
    response = api.raw(
        LIST, method="GET", query=list_query(api), override={"x-acs-action": "ListClientCaCertificates"}
    )
    assert code_of(response) == ("SignatureDoesNotMatch", 400)


@pytest.mark.parametrize(
    "header, code",
    [
        ("authorization", "MissingAuthorization"),
        ("x-acs-date", "MissingTimestamp"),
        ("x-acs-signature-nonce", "MissingSignatureNonce"),
        ("x-acs-content-sha256", "MissingContentSha256"),
        ("x-acs-action", "MissingAction"),
        ("x-acs-version", "MissingVersion"),
    ],
)
def test_missing_header(api: Any, header: str, code: str) -> None:
    response = api.raw(LIST, method="GET", query=list_query(api), drop=(header,))
    assert code_of(response) == (code, 400)


def _without_signed(authorization: str, header: str) -> str:
    head, _, rest = authorization.partition("SignedHeaders=")
    names, _, tail = rest.partition(",")
    return head + "SignedHeaders=" + ";".join(n for n in names.split(";") if n != header) + "," + tail


@pytest.mark.parametrize(
    "header", ["x-acs-date", "x-acs-signature-nonce", "x-acs-action", "host", "content-type"]
)
def test_required_header_left_unsigned(api: Any, header: str) -> None:
    query, form = list_query(api), [("PkeyType", "ECDSA"), ("ValidityDays", "30")]
    signed = api.raw("CreateClientCertificate", query=query, form=form, nonce="probe-" + secrets.token_hex(8))
    assert signed.status_code == 200  # the same request, fully signed, is fine
    body = str(httpx.QueryParams(form)).encode()
    headers = sign_acs3(
        method="POST",
        host=api.server.endpoint,
        action="CreateClientCertificate",
        query=query,
        body=body,
        access_key_id=api.alice.key_id,
        secret=api.alice.secret,
        date=api.clock.now(),
        nonce=secrets.token_hex(8),
        content_type="application/x-www-form-urlencoded",
    )
    headers["authorization"] = _without_signed(headers["authorization"], header)
    response = api.http.post(
        api.server.url + "/?" + str(httpx.QueryParams(query)), headers=headers, content=body
    )
    assert code_of(response) == ("IncompleteSignature", 400)


@pytest.mark.parametrize(
    "authorization",
    [
        "ACS3-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=00",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=Host;X-Acs-Date,Signature=00",
        "ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=host,Signature=00",
    ],
)
def test_malformed_authorization(api: Any, authorization: str) -> None:
    response = api.raw(LIST, method="GET", query=list_query(api), override={"authorization": authorization})
    assert code_of(response) == ("IncompleteSignature", 400)


def test_replayed_nonce(api: Any) -> None:
    nonce = secrets.token_hex(16)
    assert api.raw(LIST, method="GET", query=list_query(api), nonce=nonce).status_code == 200
    replay = api.raw(LIST, method="GET", query=list_query(api), nonce=nonce)
    assert code_of(replay) == ("SignatureNonceUsed", 400)
    # A nonce belongs to its access key: bob may use the same random string.
    bob = api.raw(LIST, method="GET", query=[("SiteId", str(api.bob.site_id))], tenant=api.bob, nonce=nonce)
    assert bob.status_code == 200


def test_exact_replay_of_captured_request(api: Any) -> None:
    query = list_query(api)
    headers = sign_acs3(
        method="GET",
        host=api.server.endpoint,
        action=LIST,
        query=query,
        body=b"",
        access_key_id=api.alice.key_id,
        secret=api.alice.secret,
        date=api.clock.now(),
        nonce=secrets.token_hex(8),
    )
    url = api.server.url + "/?" + str(httpx.QueryParams(query))
    assert api.http.get(url, headers=headers).status_code == 200
    assert code_of(api.http.get(url, headers=headers)) == ("SignatureNonceUsed", 400)


def test_refused_requests_do_not_burn_their_nonce(api: Any) -> None:
    nonce = secrets.token_hex(16)
    wrong = api.raw(LIST, method="GET", query=list_query(api), nonce=nonce, secret="wrong")
    assert code_of(wrong) == ("SignatureDoesNotMatch", 400)
    assert api.raw(LIST, method="GET", query=list_query(api), nonce=nonce).status_code == 200


@pytest.mark.parametrize("minutes, ok", [(-16, False), (16, False), (-14, True), (14, True), (-15, True)])
def test_signature_window(api: Any, minutes: int, ok: bool) -> None:
    date = api.clock.now() + dt.timedelta(minutes=minutes)
    response = api.raw(LIST, method="GET", query=list_query(api), date=date)
    if ok:
        assert response.status_code == 200, response.text
    else:
        assert code_of(response) == ("InvalidTimeStamp.Expired", 400)


def test_window_follows_the_server_clock(api: Any) -> None:
    signed_at = api.clock.now()
    api.clock.advance(minutes=16)
    try:
        response = api.raw(LIST, method="GET", query=list_query(api), date=signed_at)
        assert code_of(response) == ("InvalidTimeStamp.Expired", 400)
    finally:
        api.clock.advance(minutes=-16)


@pytest.mark.parametrize(
    "value", ["2026-11-28 12:00:00", "2026-11-28T12:00:00+00:00", "yesterday", "2026-13-45T99:00:00Z"]
)
def test_bad_date_format(api: Any, value: str) -> None:
    response = api.raw(LIST, method="GET", query=list_query(api), override={"x-acs-date": value})
    assert code_of(response) == ("InvalidTimeStamp.Format", 400)


def test_bad_nonce_shape(api: Any) -> None:
    response = api.raw(LIST, method="GET", query=list_query(api), nonce="n" * 129)
    assert code_of(response) == ("IncompleteSignature", 400)


# -- V2 (HMAC-SHA1, signature in the query) ------------------------------------------------------


def test_sdk_v2_mode(api: Any) -> None:
    client = api.sdk(api.alice.key_id, api.alice.secret, signature_algorithm="v2")
    created = client.create_client_certificate(
        esa.CreateClientCertificateRequest(site_id=api.alice.site_id, pkey_type="ECDSA", validity_days=7)
    )
    body = api.raw_json(created)
    assert body["ValidityDays"] == "7"
    listed = client.list_client_certificates(esa.ListClientCertificatesRequest(site_id=api.alice.site_id))
    assert isinstance(listed.body.total_count, int)
    bindings = client.set_client_ca_certificate_hostnames(
        esa.SetClientCaCertificateHostnamesRequest(site_id=api.alice.site_id, hostnames=["www.example.com"])
    )
    assert api.raw_json(bindings)["Hostnames"] == ["www.example.com"]


def test_sdk_v2_wrong_secret(api: Any, expect_error: Any) -> None:
    client = api.sdk(api.alice.key_id, "wrong", signature_algorithm="v2")
    expect_error(lambda: client.list_sites(esa.ListSitesRequest()), "SignatureDoesNotMatch", 400)


def _v2(
    api: Any,
    *,
    date: dt.datetime | None = None,
    nonce: str | None = None,
    secret: str | None = None,
    drop: str | None = None,
    tamper: dict[str, str] | None = None,
) -> httpx.Response:
    params = sign_v2(
        method="GET",
        params={"Action": LIST, "Version": "2024-09-10", "SiteId": str(api.alice.site_id)},
        access_key_id=api.alice.key_id,
        secret=secret or api.alice.secret,
        date=date or api.clock.now(),
        nonce=nonce or secrets.token_hex(8),
    )
    if drop:
        params.pop(drop)
    params.update(tamper or {})
    return api.http.get(api.server.url + "/", params=params)


def test_raw_v2(api: Any) -> None:
    assert _v2(api).status_code == 200
    nonce = secrets.token_hex(8)
    assert _v2(api, nonce=nonce).status_code == 200
    assert code_of(_v2(api, nonce=nonce)) == ("SignatureNonceUsed", 400)
    assert code_of(_v2(api, secret="x")) == ("SignatureDoesNotMatch", 400)
    assert code_of(_v2(api, tamper={"SiteId": str(api.bob.site_id)})) == ("SignatureDoesNotMatch", 400)
    assert code_of(_v2(api, date=api.clock.now() - dt.timedelta(minutes=16))) == (
        "InvalidTimeStamp.Expired",
        400,
    )
    assert code_of(_v2(api, drop="SignatureNonce")) == ("MissingSignatureNonce", 400)
    assert code_of(_v2(api, drop="Timestamp")) == ("MissingTimestamp", 400)
    assert code_of(_v2(api, tamper={"SignatureMethod": "HMAC-MD5"})) == ("IncompleteSignature", 400)


# -- access-key cache ----------------------------------------------------------------------------


def _signed(api: Any, nonce: str, key_id: str | None = None) -> SignedRequest:
    query = list_query(api)
    headers = sign_acs3(
        method="GET", host="h", action=LIST, query=query, body=b"", access_key_id=key_id or api.alice.key_id,
        secret=api.alice.secret, date=api.clock.now(), nonce=nonce,
    )  # fmt: skip
    return SignedRequest("GET", "/", query, {k: [v] for k, v in headers.items()}, b"", dict(query))


@pytest.mark.parametrize("ttl, lookups", [(5.0, 1), (0, 3)])
def test_access_keys_are_cached_briefly(
    api: Any, monkeypatch: pytest.MonkeyPatch, ttl: float, lookups: int
) -> None:
    calls: list[str] = []

    def counting(ctx: Any, key_id: str) -> Any:
        calls.append(key_id)
        return accounts.resolve_access_key(ctx, key_id)

    monkeypatch.setattr(auth_module, "resolve_access_key", counting)
    authenticator = Authenticator(api.ctx, window_seconds=900, key_cache_seconds=ttl)
    for _ in range(3):
        assert (
            authenticator.authenticate(_signed(api, secrets.token_hex(8))).account.id == api.alice.account_id
        )
    assert len(calls) == lookups


def test_unknown_keys_are_not_cached(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(ctx: Any, key_id: str) -> Any:
        calls.append(key_id)
        return accounts.resolve_access_key(ctx, key_id)

    monkeypatch.setattr(auth_module, "resolve_access_key", counting)
    authenticator = Authenticator(api.ctx, window_seconds=900)
    for _ in range(2):
        with pytest.raises(Unauthenticated) as info:
            authenticator.authenticate(_signed(api, secrets.token_hex(8), key_id="LTAIunknown"))
        assert info.value.reason == "auth.unknown_key"
    assert len(calls) == 2
