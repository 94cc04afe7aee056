"""The CLI's signer and HTTP client, checked against ESA-API.md's captured canonical request and
against the official SDK itself (its signing utility, and its real requests on the wire)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import socket
from types import SimpleNamespace
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

import httpx
import pytest
from alibabacloud_tea_openapi.utils import Utils as SDKUtils
from hypothesis import given, settings
from hypothesis import strategies as st

from certgate.cli.client import (
    EMPTY_BODY_SHA256,
    ApiError,
    Client,
    Credentials,
    Endpoint,
    TransportError,
    authorization,
    canonical_request,
    encode_value,
    prepare_request,
)

if TYPE_CHECKING:
    from conftest import CaptureServer  # tests/cli/conftest.py (the capture fixture's type)

SECRET = "capture-secret-Ω"  # non-ASCII on purpose: both signers must encode it as UTF-8
KEY_ID = "LTAIcapturekey"
CREDS = Credentials(KEY_ID, SECRET)
FIXED_DATE = dt.datetime(2026, 11, 28, 12, 53, 50, tzinfo=dt.UTC)
FIXED_NONCE = "1701332dcbf46c85d9c1cad341f52d70"

# ESA-API.md §1.3, "Captured canonical request (CreateRecord, POST, query-only)", verbatim.
DOC_CANONICAL_REQUEST = """POST
/
BizName=web&Data=%7B%22Value%22%3A%221.2.3.4%22%7D&Proxied=True&RecordName=www.example.com&SiteId=123&Ttl=1&Type=A%2FAAAA
accept:application/json
host:127.0.0.1:45499
user-agent:AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-action:CreateRecord
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-credentials-provider:static_ak
x-acs-date:2026-11-28T12:53:50Z
x-acs-signature-nonce:1701332dcbf46c85d9c1cad341f52d70
x-acs-version:2024-09-10

accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"""

DOC_HEADERS = {
    "host": "127.0.0.1:45499",
    "x-acs-version": "2024-09-10",
    "x-acs-action": "CreateRecord",
    "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
    "x-acs-date": "2026-11-28T12:53:50Z",
    "x-acs-signature-nonce": "1701332dcbf46c85d9c1cad341f52d70",
    "accept": "application/json",
    "x-acs-content-sha256": EMPTY_BODY_SHA256,
    "x-acs-credentials-provider": "static_ak",
}
DOC_QUERY = {
    "BizName": "web",
    "Data": encode_value({"Value": "1.2.3.4"}),
    "Proxied": encode_value(True),
    "RecordName": "www.example.com",
    "SiteId": encode_value(123),
    "Ttl": encode_value(1),
    "Type": "A/AAAA",
}


def sdk_authorization(method: str, query: dict[str, str], headers: dict[str, str], payload: str) -> str:
    """The official SDK's own V3 signing function, fed the same request."""
    request = SimpleNamespace(method=method, pathname="/", query=query, headers=headers)
    result: str = SDKUtils.get_authorization(request, "ACS3-HMAC-SHA256", payload, KEY_ID, SECRET)
    return result


def reference_verify(method: str, target: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    """ESA-API.md §1.3's reference verifier, transcribed (the one the [RUN] evidence used)."""
    path, _, raw_query = target.partition("?")
    query_pairs = parse_qsl(raw_query, keep_blank_values=True)
    algo, _, rest = headers["authorization"].partition(" ")
    parts = dict(p.split("=", 1) for p in rest.split(","))
    signed = parts["SignedHeaders"].split(";")
    payload = hashlib.sha256(body).hexdigest()
    if payload != headers["x-acs-content-sha256"]:
        return False
    cq = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query_pairs))
    ch = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed)
    cr = "\n".join([method, path or "/", cq, ch, ";".join(signed), payload])
    sts = algo + "\n" + hashlib.sha256(cr.encode()).hexdigest()
    expected = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["Signature"])


# -- the pure signer ---------------------------------------------------------------------------


def test_canonical_request_is_byte_identical_to_the_documented_capture() -> None:
    assert canonical_request("POST", "/", DOC_QUERY, DOC_HEADERS, EMPTY_BODY_SHA256) == DOC_CANONICAL_REQUEST


def test_authorization_for_a_fixed_date_and_nonce_equals_the_sdk_utility() -> None:
    ours = authorization("POST", "/", DOC_QUERY, DOC_HEADERS, EMPTY_BODY_SHA256, CREDS)
    assert ours == sdk_authorization("POST", DOC_QUERY, DOC_HEADERS, EMPTY_BODY_SHA256)
    assert ours.startswith(f"ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders=accept;host;user-agent;")


_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=100, deadline=None)
@given(
    query=st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,12}", fullmatch=True), _text, max_size=6),
    extra=st.dictionaries(
        st.from_regex(r"x-acs-[a-z]{1,8}", fullmatch=True),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
        max_size=3,
    ),
    method=st.sampled_from(["GET", "POST"]),
    body=st.binary(max_size=64),
)
def test_authorization_equals_the_sdk_utility_for_any_parameters(
    query: dict[str, str], extra: dict[str, str], method: str, body: bytes
) -> None:
    payload = hashlib.sha256(body).hexdigest()
    headers = {**DOC_HEADERS, **extra, "x-acs-content-sha256": payload}
    ours = authorization(method, "/", query, headers, payload, CREDS)
    assert ours == sdk_authorization(method, query, headers, payload)


def test_prepared_request_without_body_has_no_content_type_and_hashes_empty() -> None:
    req = prepare_request(
        Endpoint.parse("http://127.0.0.1:45499"),
        CREDS,
        "GetClientCertificate",
        method="GET",
        query={"SiteId": 7, "Id": "ab cd*~"},
        date=FIXED_DATE,
        nonce=FIXED_NONCE,
    )
    assert req.method == "GET"
    assert req.url == "http://127.0.0.1:45499/?Id=ab+cd%2A~&SiteId=7"  # urlencode, like the SDK's URL
    assert req.body == b""
    assert "content-type" not in req.headers
    assert req.headers["x-acs-content-sha256"] == EMPTY_BODY_SHA256
    assert req.headers["x-acs-date"] == "2026-11-28T12:53:50Z"
    assert req.headers["x-acs-signature-nonce"] == FIXED_NONCE
    assert req.headers["x-acs-version"] == "2024-09-10"
    assert req.headers["x-acs-action"] == "GetClientCertificate"
    assert req.headers["host"] == "127.0.0.1:45499"
    signed = {k: v for k, v in req.headers.items() if k != "Authorization"}
    assert req.headers["Authorization"] == sdk_authorization(
        "GET", {"SiteId": "7", "Id": "ab cd*~"}, signed, EMPTY_BODY_SHA256
    )


def test_prepared_request_with_body_is_a_sorted_form_and_signs_its_hash() -> None:
    req = prepare_request(
        Endpoint.parse("127.0.0.1:9"),
        CREDS,
        "SetClientCaCertificateHostnames",
        method="POST",
        query={"SiteId": 1},
        body={"Id": None, "Hostnames": ["a.example.com", "ü.example.com"], "Alpha": True},
        date=FIXED_DATE,
        nonce=FIXED_NONCE,
    )
    assert req.url == "https://127.0.0.1:9/?SiteId=1"  # bare endpoint = HTTPS, the SDK's default
    assert req.body == b"Alpha=True&Hostnames=%5B%22a.example.com%22%2C%22%C3%BC.example.com%22%5D"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert req.headers["x-acs-content-sha256"] == hashlib.sha256(req.body).hexdigest()


def test_encode_value_follows_the_python_sdk() -> None:
    assert encode_value(True) == "True"
    assert encode_value(False) == "False"
    assert encode_value(365) == "365"
    assert encode_value(["a", "ü"]) == '["a","ü"]'
    assert encode_value({"Value": "1.2.3.4"}) == '{"Value":"1.2.3.4"}'
    assert encode_value([]) == "[]"


@pytest.mark.parametrize(
    ("text", "scheme", "netloc"),
    [
        ("http://127.0.0.1:8080", "http", "127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http", "127.0.0.1:8080"),
        ("https://api.example.com", "https", "api.example.com"),
        ("esa.example.com:8443", "https", "esa.example.com:8443"),
        ("http://[::1]:8080", "http", "[::1]:8080"),
    ],
)
def test_endpoint_parse_accepts(text: str, scheme: str, netloc: str) -> None:
    assert Endpoint.parse(text) == Endpoint(scheme, netloc)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ftp://x",
        "http://",
        "http://h/api",
        "http://h/?a=1",
        "http://u:p@h",
        "http://h:99999",
        "http://h:x",
    ],
)
def test_endpoint_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(text)


def test_credentials_repr_hides_the_secret() -> None:
    assert SECRET not in repr(CREDS)


# -- the client on the wire, next to the SDK -----------------------------------------------------


def _sdk(capture: CaptureServer):  # type: ignore[no-untyped-def]
    from alibabacloud_esa20240910.client import Client as SDKClient
    from alibabacloud_tea_openapi.models import Config

    return SDKClient(
        Config(
            access_key_id=KEY_ID,
            access_key_secret=SECRET,
            endpoint=f"127.0.0.1:{capture.port}",
            protocol="http",
        )
    )


def _signed_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    lower = {k.lower(): v for k, v in headers}
    names = lower["authorization"].split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    return {n: lower[n] for n in names}


@pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")  # inside the SDK
def test_client_sends_what_the_sdk_sends_and_both_verify(capture: CaptureServer) -> None:
    from alibabacloud_esa20240910 import models as esa

    sdk = _sdk(capture)
    ours = Client(Endpoint.parse(capture.endpoint), CREDS)
    with ours:
        cases = [
            (
                lambda: sdk.create_record(
                    esa.CreateRecordRequest(
                        site_id=123,
                        record_name="www.example.com",
                        type="A/AAAA",
                        ttl=1,
                        data=esa.CreateRecordRequestData(value="1.2.3.4"),
                        proxied=True,
                        biz_name="web",
                        comment="a b*c~d/é",
                    )
                ),
                lambda: ours.call(
                    "CreateRecord",
                    method="POST",
                    query={
                        "SiteId": 123,
                        "RecordName": "www.example.com",
                        "Type": "A/AAAA",
                        "Ttl": 1,
                        "Data": {"Value": "1.2.3.4"},
                        "Proxied": True,
                        "BizName": "web",
                        "Comment": "a b*c~d/é",
                    },
                ),
            ),
            (
                lambda: sdk.create_client_certificate(
                    esa.CreateClientCertificateRequest(site_id=5, pkey_type="RSA", validity_days=365)
                ),
                lambda: ours.call(
                    "CreateClientCertificate",
                    method="POST",
                    query={"SiteId": 5},
                    body={"PkeyType": "RSA", "ValidityDays": 365},
                ),
            ),
            (
                lambda: sdk.set_client_ca_certificate_hostnames(
                    esa.SetClientCaCertificateHostnamesRequest(
                        site_id=5, hostnames=["a.example.com", "b b"], id="cafe"
                    )
                ),
                lambda: ours.call(
                    "SetClientCaCertificateHostnames",
                    method="POST",
                    query={"SiteId": 5},
                    body={"Hostnames": ["a.example.com", "b b"], "Id": "cafe"},
                ),
            ),
            (
                lambda: sdk.get_client_certificate(esa.GetClientCertificateRequest(site_id=5, id="abc")),
                lambda: ours.call("GetClientCertificate", method="GET", query={"SiteId": 5, "Id": "abc"}),
            ),
        ]
        for run_sdk, run_ours in cases:
            run_sdk()
            theirs_req = capture.last()
            assert run_ours() == {"RequestId": "CAPTURE-0001"}
            our_req = capture.last()

            assert our_req.method == theirs_req.method
            assert our_req.raw_query == theirs_req.raw_query
            assert our_req.body == theirs_req.body
            assert our_req.header("content-type") == theirs_req.header("content-type")
            assert our_req.header("x-acs-action") == theirs_req.header("x-acs-action")

            for req in (theirs_req, our_req):
                lower = {k.lower(): v for k, v in req.headers}
                assert reference_verify(req.method, req.target, lower, req.body, SECRET)

            # Our signature is exactly what the SDK's signer computes for our request.
            signed = _signed_headers(our_req.headers)
            query = dict(parse_qsl(our_req.raw_query, keep_blank_values=True))
            ours_auth = our_req.header("authorization")
            payload = signed["x-acs-content-sha256"]
            assert ours_auth == sdk_authorization(our_req.method, query, signed, payload)


# -- failures --------------------------------------------------------------------------------


def test_esa_error_body_becomes_api_error(capture: CaptureServer) -> None:
    capture.status = 400
    capture.reply = {
        "RequestId": "R-1",
        "Code": "Certificate.StatusError",
        "Message": "The status is invalid.",
    }
    with Client(Endpoint.parse(capture.endpoint), CREDS) as client, pytest.raises(ApiError) as info:
        client.call("RevokeClientCertificate", method="GET", query={"SiteId": 1, "Id": "x"})
    assert (info.value.code, info.value.message, info.value.status, info.value.request_id) == (
        "Certificate.StatusError",
        "The status is invalid.",
        400,
        "R-1",
    )


def test_non_json_error_body_still_becomes_one_api_error(capture: CaptureServer) -> None:
    capture.status = 502
    capture.raw_reply = b"<html>\n<body>Bad   gateway</body></html>"
    with Client(Endpoint.parse(capture.endpoint), CREDS) as client, pytest.raises(ApiError) as info:
        client.call("ListSites", method="GET")
    assert info.value.code == "HTTP502"
    assert "\n" not in info.value.message


def test_success_without_json_is_a_transport_error(capture: CaptureServer) -> None:
    capture.raw_reply = b"not json"
    with Client(Endpoint.parse(capture.endpoint), CREDS) as client, pytest.raises(TransportError) as info:
        client.call("ListSites", method="GET")
    assert "no JSON" in str(info.value)


def test_connection_refused_is_a_transport_error_naming_the_endpoint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call: nothing listens there
    with (
        Client(Endpoint.parse(f"http://127.0.0.1:{port}"), CREDS) as client,
        pytest.raises(TransportError) as info,
    ):
        client.call("ListSites", method="GET")
    assert f"cannot reach http://127.0.0.1:{port}" in str(info.value)
    assert SECRET not in str(info.value)


def test_timeout_is_a_transport_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with (
        Client(
            Endpoint.parse("http://127.0.0.1:1"), CREDS, transport=httpx.MockTransport(slow), timeout=3
        ) as client,
        pytest.raises(TransportError) as info,
    ):
        client.call("ListSites", method="GET")
    assert str(info.value) == "no answer from http://127.0.0.1:1 within 3 s"


def test_client_uses_injected_clock_and_nonce() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"RequestId": "r"})

    with Client(
        Endpoint.parse("http://h:1"),
        CREDS,
        transport=httpx.MockTransport(handler),
        clock=lambda: FIXED_DATE,
        nonce=lambda: FIXED_NONCE,
    ) as client:
        client.call("ListSites", method="GET", query={"PageNumber": 1})
    headers = seen[0].headers
    assert headers["x-acs-date"] == "2026-11-28T12:53:50Z"
    assert headers["x-acs-signature-nonce"] == FIXED_NONCE
    assert seen[0].content == b""
