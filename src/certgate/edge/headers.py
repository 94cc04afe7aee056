"""Header policy of the edge proxy: what crosses the edge in each direction, and the heads it writes.

Pure functions over `http1` heads, no I/O. Rules (each one is a security property, keep them):

* Hop-by-hop fields (RFC 9110 §7.6.1: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
  Transfer-Encoding, Upgrade, and every name listed in Connection) are removed in both directions;
  the edge writes its own framing (Content-Length or ``Transfer-Encoding: chunked``) and Host.
* Client-sent copies of the fields the edge asserts are removed *before* the edge adds its own:
  the RFC 9440 ``Client-Cert``, ``Client-Cert-Chain`` and ``Client-Cert-Status``, and every
  forwarding claim (``X-Forwarded-For/-Proto/-Host/-Port``, ``Forwarded``, ``X-Real-IP``). The
  edge is the first trusted hop, so ``X-Forwarded-For`` is *replaced* by the peer address, never
  appended to: an origin can trust it as it is. Any name the caller adds (``extra``) is removed
  from the client's headers too, so it can never appear twice.
* ``Expect`` is answered by the edge (it sends ``100 Continue`` itself) and not forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from certgate.edge.http1 import CRLF, RequestHead, ResponseHead, status_line

__all__ = [
    "DEFAULT_STRIPPED_REQUEST_HEADERS",
    "HOP_BY_HOP",
    "RFC9440_HEADERS",
    "client_response_head",
    "origin_request_head",
    "request_drop_set",
    "response_drop_set",
]

HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
RFC9440_HEADERS: Final = frozenset({b"client-cert", b"client-cert-chain", b"client-cert-status"})
DEFAULT_STRIPPED_REQUEST_HEADERS: Final = RFC9440_HEADERS | frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-real-ip",
        b"forwarded",
    }
)
"""Client-sent request fields always removed (the edge asserts its own or none)."""

# Written by the edge itself on every forwarded request / response.
_EDGE_WRITTEN_REQUEST: Final = frozenset({b"host", b"content-length", b"expect"})
_EDGE_WRITTEN_RESPONSE: Final = frozenset({b"content-length"})

_BODY_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})


def request_drop_set(stripped: Iterable[bytes] = DEFAULT_STRIPPED_REQUEST_HEADERS) -> frozenset[bytes]:
    """Every lowercase request field name never copied from client to origin (computed once)."""
    names = frozenset(n.lower() for n in stripped)
    if not RFC9440_HEADERS <= names:
        raise ValueError("the RFC 9440 client-certificate headers must always be stripped")
    return HOP_BY_HOP | _EDGE_WRITTEN_REQUEST | names


def response_drop_set() -> frozenset[bytes]:
    return HOP_BY_HOP | _EDGE_WRITTEN_RESPONSE


_RESPONSE_DROP: Final = response_drop_set()


def _check_field(name: bytes, value: bytes) -> None:
    # Values come from the edge's own modules, but a CR/LF here would be header injection.
    if not name or b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
        raise ValueError(f"invalid header field {name!r}")


def origin_request_head(
    head: RequestHead,
    *,
    host_header: bytes,
    forwarded_for: bytes,
    forwarded_proto: bytes,
    extra: Sequence[tuple[bytes, bytes]],
    drop: frozenset[bytes],
) -> bytes:
    """The request head sent to the origin: HTTP/1.1, the edge's Host and framing, filtered fields.

    `drop` comes from `request_drop_set`; `extra` (the caller's headers, e.g. RFC 9440) is added
    after the client's fields and its names are removed from them.
    """
    if extra:
        for name, value in extra:
            _check_field(name, value)
        extra_names = [n.lower() for n, _ in extra]
        if not drop.issuperset(extra_names):
            drop = drop.union(extra_names)
    tokens = head.connection_tokens
    if tokens:
        drop = drop | tokens
    parts = [head.method, b" ", head.target, b" HTTP/1.1\r\nhost: ", host_header, CRLF]
    append = parts.append
    for name, value in head.headers:
        if name not in drop:
            append(name)
            append(b": ")
            append(value)
            append(CRLF)
    parts += (b"x-forwarded-for: ", forwarded_for, b"\r\nx-forwarded-proto: ", forwarded_proto, CRLF)
    for name, value in extra:
        parts += (name, b": ", value, CRLF)
    if head.chunked:
        append(b"transfer-encoding: chunked\r\n\r\n")
    elif head.content_length is not None:
        append(b"content-length: %d\r\n\r\n" % head.content_length)
    elif head.method in _BODY_METHODS:
        # Some origins answer 411 to a body method without any length.
        append(b"content-length: 0\r\n\r\n")
    else:
        append(CRLF)
    return b"".join(parts)


def client_response_head(resp: ResponseHead, *, framing: bytes, connection: bytes) -> bytes:
    """The response head sent to the client: origin fields minus hop-by-hop, plus the edge's framing.

    `framing` is a complete field line (``content-length: N\\r\\n``, ``transfer-encoding:
    chunked\\r\\n``) or ``b""``; `connection` likewise (``connection: close\\r\\n`` or ``b""``).
    """
    drop = _RESPONSE_DROP | resp.connection_tokens if resp.connection_tokens else _RESPONSE_DROP
    parts = [status_line(resp.status, resp.reason)]
    append = parts.append
    for name, value in resp.headers:
        if name not in drop:
            append(name)
            append(b": ")
            append(value)
            append(CRLF)
    append(framing)
    append(connection)
    append(CRLF)
    return b"".join(parts)
