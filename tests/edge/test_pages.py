"""certgate.edge.pages: content negotiation and what the edge's own pages show (and do not show)."""

from __future__ import annotations

import json

import pytest

from certgate.edge.pages import PAGES, prefers_json, render


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        (b"", False),
        (b"*/*", False),
        (b"application/json", True),
        (b"Application/JSON; charset=utf-8", True),
        (b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),  # a browser
        (b"application/json, text/plain, */*", True),  # axios
        (b"text/html;q=0.5, application/json", True),
        (b"application/json;q=0.4, text/html;q=0.5", False),
        (b"application/json;q=0, */*", False),
        (b"application/*", True),  # HTML is not acceptable at all
        (b"application/*, text/html;q=0.1", True),
        (b"text/*;q=0.2, application/json;q=0.3", True),
        (b"application/json;q=abc", False),
        (b"application/json;q=2", False),
    ],
)
def test_prefers_json(accept: bytes | None, expected: bool) -> None:
    assert prefers_json(accept) is expected


def test_html_page_shows_status_and_request_id() -> None:
    headers, body = render(403, request_id="abc123")
    h = dict(headers)
    assert h[b"content-type"] == b"text/html; charset=utf-8"
    assert h[b"cache-control"] == b"no-store" and h[b"x-request-id"] == b"abc123"
    assert b"403 Access denied" in body and b"<code>abc123</code>" in body


def test_json_page() -> None:
    headers, body = render(421, request_id="r1", accept=b"application/json")
    assert dict(headers)[b"content-type"] == b"application/json"
    assert json.loads(body) == {
        "status": 421,
        "error": "misdirected_request",
        "message": PAGES[421].message,
        "request_id": "r1",
    }


def test_hostname_is_escaped() -> None:
    _, body = render(404, request_id="r", host='<script>alert("x")</script>')
    assert b"<script>" not in body and b"&lt;script&gt;" in body


@pytest.mark.parametrize("status", sorted(PAGES))
def test_every_page_renders_both_ways(status: int) -> None:
    for accept in (None, b"application/json"):
        headers, body = render(status, request_id="r", accept=accept)
        assert str(status).encode() in body and b"r" in body
        assert all(name == name.lower() for name, _ in headers)


def test_unknown_status_still_renders() -> None:
    _, body = render(418, request_id="r", accept=b"application/json")
    assert json.loads(body)["status"] == 418
