"""The edge's own responses: block page (403), unknown host (404), misdirected (421), and the
error pages of the proxy (400, 408, 431, 500, 502, 503, 504).

Pure functions: (status, request id, what the client accepts) → (headers, body). HTML by
default; JSON when the client's ``Accept`` prefers ``application/json`` over ``text/html``.
The only client-sent text a page shows is the hostname of a 404 (HTML-escaped); rule ids,
configuration problems and origin addresses never appear (they go to the access log).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["PAGES", "Page", "prefers_json", "render"]

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    message: str
    error: str
    """Stable machine-readable code in the JSON body."""


PAGES: Final[dict[int, Page]] = {
    400: Page("Bad Request", "The request could not be understood.", "bad_request"),
    403: Page(
        "Access denied",
        "This request was blocked by the website's security rules.",
        "blocked",
    ),
    404: Page("Not Found", "This hostname is not served here.", "unknown_host"),
    405: Page("Method Not Allowed", "This method is not allowed here.", "method_not_allowed"),
    408: Page("Request Timeout", "The request took too long to arrive.", "request_timeout"),
    421: Page(
        "Misdirected Request",
        "The TLS server name and the Host header of this request name different hostnames.",
        "misdirected_request",
    ),
    431: Page(
        "Request Header Fields Too Large",
        "The request's header block is larger than the edge accepts.",
        "headers_too_large",
    ),
    500: Page("Internal Server Error", "The edge failed to handle this request.", "internal_error"),
    501: Page("Not Implemented", "The request uses a feature the edge does not support.", "not_implemented"),
    502: Page("Bad Gateway", "The origin server could not be reached or answered badly.", "bad_gateway"),
    503: Page(
        "Service Unavailable",
        "The edge cannot serve this website right now; its configuration is incomplete.",
        "unavailable",
    ),
    504: Page("Gateway Timeout", "The origin server did not answer in time.", "gateway_timeout"),
}

_HTML_HEADERS: Final = (
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)
_JSON_HEADERS: Final = (
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)

_HTML: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status} {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.6rem}}code{{background:#f3f3f3;padding:.1rem .3rem}}</style></head>
<body><h1>{status} {title}</h1><p>{message}</p>{host}
<p>Request ID: <code>{request_id}</code></p></body></html>
"""


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def prefers_json(accept: bytes | None) -> bool:
    """True when ``Accept`` ranks ``application/json`` above ``text/html`` (RFC 9110 §12.5.1).

    The most specific matching range decides each type's quality; at equal quality the more
    precisely named type wins, and a full tie (``*/*``, or no ``Accept``) means HTML.
    """
    if not accept:
        return False
    best: dict[str, tuple[int, float]] = {}  # type → (specificity, quality)
    text = accept.decode("latin-1")
    for item in text.split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        if not media:
            continue
        q = _quality(params)
        for target in ("application/json", "text/html"):
            major = target.split("/", 1)[0]
            if media == target:
                specificity = 3
            elif media == major + "/*":
                specificity = 2
            elif media == "*/*":
                specificity = 1
            else:
                continue
            if specificity > best.get(target, (0, 0.0))[0]:
                best[target] = (specificity, q)
    json_specificity, json_q = best.get("application/json", (0, 0.0))
    html_specificity, html_q = best.get("text/html", (0, 0.0))
    if json_q <= 0.0:
        return False
    # Equal quality: the type the client named more precisely wins (``application/json, */*``
    # asks for JSON); a plain ``*/*`` is a tie of equals, and then HTML.
    return (json_q, json_specificity) > (html_q, html_specificity)


def render(
    status: int, *, request_id: str, accept: bytes | None = None, host: str = ""
) -> tuple[Headers, bytes]:
    """The headers (lowercase names) and body of the edge's own response for ``status``."""
    page = PAGES.get(status) or Page(f"Error {status}", "The edge could not handle this request.", "error")
    request_id_header = (b"x-request-id", request_id.encode("ascii", "replace"))
    if prefers_json(accept):
        body = json.dumps(
            {
                "status": status,
                "error": page.error,
                "message": page.message,
                "request_id": request_id,
            },
            separators=(",", ":"),
        ).encode()
        return (*_JSON_HEADERS, request_id_header), body
    host_line = f"<p>Hostname: <code>{html.escape(host)}</code></p>" if host else ""
    body = _HTML.format(
        status=status,
        title=html.escape(page.title),
        message=html.escape(page.message),
        host=host_line,
        request_id=html.escape(request_id),
    ).encode()
    return (*_HTML_HEADERS, request_id_header), body
