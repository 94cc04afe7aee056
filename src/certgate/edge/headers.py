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

import re
from collections.abc import Iterable, Sequence
from typing import Final

from certgate.edge.http1 import CRLF, HOP_BY_HOP, RequestHead, ResponseHead, status_line

__all__ = [
    "DEFAULT_STRIPPED_REQUEST_HEADERS",
    "HOP_BY_HOP",
    "RFC9440_HEADERS",
    "client_response_head",
    "origin_request_head",
    "request_drop_set",
]

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

_BODY_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})


def request_drop_set(stripped: Iterable[bytes] = DEFAULT_STRIPPED_REQUEST_HEADERS) -> frozenset[bytes]:
    """Every lowercase request field name never copied from client to origin (computed once)."""
    names = frozenset(n.lower() for n in stripped)
    if not RFC9440_HEADERS <= names:
        raise ValueError("the RFC 9440 client-certificate headers must always be stripped")
    return HOP_BY_HOP | _EDGE_WRITTEN_REQUEST | names


def _check_field(name: bytes, value: bytes) -> None:
    # Values come from the edge's own modules, but a CR/LF here would be header injection.
    # (Integer membership: ``b"x" in bytes`` costs ~10x more on CPython 3.13.)
    if not name or 13 in value or 10 in value or 13 in name or 10 in name or 58 in name:
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

    Both parts are remembered by identity of immutable tuples (the client's headers: shared by a
    connection's heads with the same field block; `extra`: shared per verdict by the decision),
    so a keep-alive connection repeating its request filters and encodes its fields once.
    """
    if extra:
        cached = _EXTRA_CACHE.get(id(extra))
        if cached is not None and cached[0] is extra:
            extra_block, extra_names = cached[1], cached[2]
        else:
            extra_block, extra_names = _encode_extra(extra)
        if not drop.issuperset(extra_names):
            drop = drop.union(extra_names)
    else:
        extra_block = b""
    tokens = head.connection_tokens
    if tokens:
        drop = drop | tokens
        fields = b"".join([b"%s: %s\r\n" % field for field in head.headers if field[0] not in drop])
    else:
        # The client's fields filtered and encoded, remembered by the identity of the (immutable)
        # headers tuple: a keep-alive connection sending the same field block shares one tuple.
        headers = head.headers
        key = (id(headers), drop)
        known = _FIELDS_CACHE.get(key)
        if known is not None and known[0] is headers:
            fields = known[1]
        else:
            fields = b"".join([b"%s: %s\r\n" % field for field in headers if field[0] not in drop])
            if len(_FIELDS_CACHE) >= 1024:
                _FIELDS_CACHE.clear()
            _FIELDS_CACHE[key] = (headers, fields)  # the entry keeps `headers` alive: its id stays its own
    parts = [fields, b"x-forwarded-for: %s\r\nx-forwarded-proto: %s\r\n" % (forwarded_for, forwarded_proto)]
    if extra_block:
        parts.append(extra_block)
    if head.chunked:
        parts.append(b"transfer-encoding: chunked\r\n\r\n")
    elif head.content_length is not None:
        parts.append(b"content-length: %d\r\n\r\n" % head.content_length)
    elif head.method in _BODY_METHODS:
        # Some origins answer 411 to a body method without any length.
        parts.append(b"content-length: 0\r\n\r\n")
    else:
        parts.append(CRLF)
    return b"%s %s HTTP/1.1\r\nhost: %s\r\n%s" % (head.method, head.target, host_header, b"".join(parts))


_FIELDS_CACHE: Final[dict[tuple[int, frozenset[bytes]], tuple[tuple[tuple[bytes, bytes], ...], bytes]]] = {}
_EXTRA_CACHE: Final[dict[int, tuple[Sequence[tuple[bytes, bytes]], bytes, frozenset[bytes]]]] = {}


def _encode_extra(extra: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, frozenset[bytes]]:
    """Check and encode the caller's fields; a tuple (immutable) is remembered by identity, so
    the decision's shared per-verdict tuple is checked and encoded once."""
    for name, value in extra:
        _check_field(name, value)
    block = b"".join([b"%s: %s\r\n" % field for field in extra])
    names = frozenset(n.lower() for n, _ in extra)
    if type(extra) is tuple:
        if len(_EXTRA_CACHE) >= 1024:
            _EXTRA_CACHE.clear()
        _EXTRA_CACHE[id(extra)] = (extra, block, names)  # the entry keeps `extra` alive: its id stays its own
    return block, names


def client_response_head(resp: ResponseHead, *, framing: bytes, connection: bytes) -> bytes:
    """The response head sent to the client: origin fields minus hop-by-hop, plus the edge's framing.

    `framing` is a complete field line (``content-length: N\\r\\n``, ``transfer-encoding:
    chunked\\r\\n``) or ``b""``; `connection` likewise (``connection: close\\r\\n`` or ``b""``).
    """
    if resp.connection_tokens:  # rare: Connection names more fields to drop
        tokens = resp.connection_tokens
        kept = b"".join([line for line in _LINES.findall(resp.end_to_end) if _name(line) not in tokens])
    else:
        kept = resp.end_to_end
    return b"%s%s%s%s\r\n" % (status_line(resp.status, resp.reason), kept, framing, connection)


def _name(line: bytes) -> bytes:
    return line[: line.find(b":")].lower()


_LINES: Final = re.compile(rb"[^\r\n]*\r\n")
