"""certgate.edge.headers: what crosses the edge in each direction."""

from __future__ import annotations

import pytest

from certgate.edge.headers import (
    DEFAULT_STRIPPED_REQUEST_HEADERS,
    HOP_BY_HOP,
    RFC9440_HEADERS,
    client_response_head,
    origin_request_head,
    request_drop_set,
)
from certgate.edge.http1 import RequestHead, RequestReader, ResponseHead, ResponseReader

DROP = request_drop_set()


def parse(data: bytes) -> RequestHead:
    head = RequestReader().feed(data)[0]
    assert isinstance(head, RequestHead), head
    return head


def forward(
    head: RequestHead, extra: list[tuple[bytes, bytes]] | None = None, host: bytes = b"a.test"
) -> bytes:
    return origin_request_head(
        head,
        host_header=host,
        forwarded_for=b"192.0.2.7",
        forwarded_proto=b"https",
        extra=extra or [],
        drop=DROP,
    )


def fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    lines = raw.split(b"\r\n")
    assert lines[-2:] == [b"", b""], raw
    out = []
    for line in lines[1:-2]:
        name, _, value = line.partition(b": ")
        out.append((name, value))
    return out


def names(raw: bytes) -> list[bytes]:
    return [n for n, _ in fields(raw)]


def test_plain_get_is_rewritten_canonically() -> None:
    raw = forward(parse(b"GET /p?q HTTP/1.1\r\nHost: A.test\r\nAccept: */*\r\n\r\n"), host=b"A.test")
    assert raw == (
        b"GET /p?q HTTP/1.1\r\nhost: A.test\r\naccept: */*\r\n"
        b"x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: https\r\n\r\n"
    )


def test_hop_by_hop_and_connection_named_fields_are_removed() -> None:
    head = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\n"
        b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\n"
        b"X-Private: secret\r\nX-Public: ok\r\n\r\n"
    )
    assert names(forward(head)) == [b"host", b"x-public", b"x-forwarded-for", b"x-forwarded-proto"]


def test_client_sent_certificate_and_forwarding_claims_never_pass() -> None:
    head = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nClient-Cert: :Zm9v:\r\nclient-cert-chain: :YmFy:\r\n"
        b"CLIENT-CERT-STATUS: valid\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\n"
        b"Forwarded: for=1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\n\r\n"
    )
    raw = forward(head, extra=[(b"client-cert-status", b"none")])
    assert fields(raw) == [
        (b"host", b"a.test"),
        (b"x-forwarded-for", b"192.0.2.7"),
        (b"x-forwarded-proto", b"https"),
        (b"client-cert-status", b"none"),
    ]


def test_extra_header_names_replace_client_copies() -> None:
    head = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: forged\r\n\r\n")
    raw = forward(head, extra=[(b"X-Request-Id", b"r1")])
    assert fields(raw)[1:] == [
        (b"x-forwarded-for", b"192.0.2.7"),
        (b"x-forwarded-proto", b"https"),
        (b"X-Request-Id", b"r1"),
    ]


@pytest.mark.parametrize(
    ("name", "value"), [(b"x-a", b"v\r\nx-b: injected"), (b"x-a", b"v\n"), (b"x:a", b"v"), (b"", b"v")]
)
def test_extra_headers_cannot_inject(name: bytes, value: bytes) -> None:
    with pytest.raises(ValueError):
        forward(parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), extra=[(name, value)])


def test_framing_is_the_edges_own() -> None:
    chunked = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert forward(chunked).endswith(b"x-forwarded-proto: https\r\ntransfer-encoding: chunked\r\n\r\n")
    sized = parse(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n")
    raw = forward(sized)
    assert raw.endswith(b"content-length: 12\r\n\r\n") and b"expect" not in raw.lower()
    assert forward(parse(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n")).endswith(b"content-length: 0\r\n\r\n")
    assert b"content-length" not in forward(parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"))


def test_http10_and_absolute_form_go_out_as_http11_origin_form() -> None:
    raw = forward(parse(b"GET http://b.test/x HTTP/1.0\r\n\r\n"), host=b"b.test")
    assert raw.startswith(b"GET /x HTTP/1.1\r\nhost: b.test\r\n")


def test_drop_set_must_keep_rfc9440() -> None:
    assert RFC9440_HEADERS <= DEFAULT_STRIPPED_REQUEST_HEADERS
    assert HOP_BY_HOP <= DROP and {b"host", b"content-length", b"expect"} <= DROP
    with pytest.raises(ValueError):
        request_drop_set({b"x-forwarded-for"})
    assert b"x-mine" in request_drop_set(RFC9440_HEADERS | {b"X-Mine"})


def response(data: bytes) -> ResponseHead:
    reader = ResponseReader()
    head = reader.feed(data)[0]
    assert isinstance(head, ResponseHead), head
    return head


def test_response_hop_by_hop_removed_and_framing_added() -> None:
    resp = response(
        b"HTTP/1.1 200 Fine\r\nConnection: close, X-Internal\r\nKeep-Alive: timeout=5\r\nX-Internal: 1\r\n"
        b"Transfer-Encoding: chunked\r\nTrailer: X-T\r\nUpgrade: h2c\r\nSet-Cookie: a=1\r\n\r\n"
    )
    raw = client_response_head(resp, framing=b"transfer-encoding: chunked\r\n", connection=b"")
    assert raw == b"HTTP/1.1 200 Fine\r\nSet-Cookie: a=1\r\ntransfer-encoding: chunked\r\n\r\n"


def test_response_field_names_keep_their_case_and_lookalikes_survive() -> None:
    resp = response(
        b"HTTP/1.1 200 OK\r\nX-Connection: kept\r\nTEST: kept\r\nContent-Lengthy: kept\r\n"
        b"CONNECTION: close\r\nX-Upgrade: kept\r\nContent-Length: 0\r\n\r\n"
    )
    raw = client_response_head(resp, framing=b"content-length: 0\r\n", connection=b"")
    assert raw == (
        b"HTTP/1.1 200 OK\r\nX-Connection: kept\r\nTEST: kept\r\nContent-Lengthy: kept\r\n"
        b"X-Upgrade: kept\r\ncontent-length: 0\r\n\r\n"
    )
    assert resp.headers[0] == (b"x-connection", b"kept")


def test_response_content_length_is_rewritten_once() -> None:
    resp = response(b"HTTP/1.1 404 \r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\n")
    raw = client_response_head(resp, framing=b"content-length: 3\r\n", connection=b"connection: close\r\n")
    assert raw == (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
        b"content-length: 3\r\nconnection: close\r\n\r\n"
    )
