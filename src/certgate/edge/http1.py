"""Sans-IO HTTP/1.1 for the edge: client bytes in, validated request events out; origin bytes in,
response events out; and the few byte strings the edge writes itself.

Built on httptools (llhttp, strict mode: no leniency flag is ever turned on). This module owns the
*framing* decisions and must never touch a socket, the event loop or the clock; `proxy` and
`upstream` feed it bytes and act on the events.

Why it is strict: the edge re-frames every message it forwards (its own Content-Length or chunked
coding, its own Host line), and a request whose framing is ambiguous (Content-Length with
Transfer-Encoding, duplicate or malformed lengths, a transfer coding other than ``chunked``,
Transfer-Encoding on HTTP/1.0, ...) never yields a `RequestHead`, so it can never be forwarded
(request smuggling, RFC 9112 §6.3 and §11.2). Errors are events, in order with the requests before
them, so pipelined requests ahead of a bad one are still answered.
"""

from __future__ import annotations

import http
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import httptools

__all__ = [
    "CONTINUE_100",
    "LAST_CHUNK",
    "MESSAGE_END",
    "BodyChunk",
    "Framing",
    "HTTP1Limits",
    "MessageEnd",
    "RequestError",
    "RequestEvent",
    "RequestHead",
    "RequestReader",
    "ResponseError",
    "ResponseEvent",
    "ResponseHead",
    "ResponseReader",
    "encode_chunk",
    "simple_response",
    "status_line",
]

CRLF: Final = b"\r\n"
HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
"""Hop-by-hop fields (RFC 9110 §7.6.1): never forwarded, in either direction."""
LAST_CHUNK: Final = b"0\r\n\r\n"
"""Ends a chunked body (trailers are never forwarded)."""
CONTINUE_100: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True)
class HTTP1Limits:
    """Size limits of one message head; named settings so operators can see and change them."""

    max_head_bytes: int = 64 * 1024
    """Request line (or status line) plus header block, in bytes. Over it: 431 (502 from an origin)."""

    max_header_count: int = 100
    """Header field lines in one head. Over it: 431 (502 from an origin)."""

    def __post_init__(self) -> None:
        if self.max_head_bytes < 256 or self.max_header_count < 1:
            raise ValueError("HTTP1Limits: max_head_bytes must be >= 256 and max_header_count >= 1")


# --------------------------------------------------------------------------------------------
# Events


@dataclass(slots=True, eq=False)
class RequestHead:
    """A complete, validated request head. Created only when the framing is unambiguous."""

    method: bytes
    """As received (llhttp accepts only registered methods, upper case)."""
    target: bytes
    """Origin-form (``/path?query``) or ``*``; an absolute-form target is rewritten to origin-form."""
    version: str
    """``"1.1"`` or ``"1.0"``."""
    headers: tuple[tuple[bytes, bytes], ...]
    """Every field line in order: lowercased name, value without surrounding whitespace.
    (Immutable: a connection's heads with the same field block share one tuple.)"""
    keep_alive: bool
    """The client lets the connection carry another request (version and ``Connection``)."""
    authority: bytes
    """The Host header value as sent (or the absolute-form authority); ``b""`` for HTTP/1.0 without Host."""
    host: str
    """`authority` without the port, lowercased ASCII; ``""`` when there is none."""
    port: int | None
    content_length: int | None
    chunked: bool
    expect_continue: bool
    """The client sent ``Expect: 100-continue`` and waits for a 100 before sending its body."""
    connection_tokens: frozenset[bytes]
    """Lowercased tokens of ``Connection`` other than close/keep-alive: more hop-by-hop names."""

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def header(self, name: bytes) -> bytes | None:
        """The first value of a (lowercase) header name, or None."""
        for n, v in self.headers:
            if n == name:
                return v
        return None


@dataclass(slots=True, eq=False)
class BodyChunk:
    """Body bytes, already de-chunked; never empty."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MessageEnd:
    """The message (request or response) is complete; use the `MESSAGE_END` singleton."""


MESSAGE_END: Final = MessageEnd()


@dataclass(frozen=True, slots=True)
class RequestError:
    """The client's byte stream is unusable from here on: answer `status` and close."""

    status: int
    reason: str
    """Stable dotted name for logs and metrics, e.g. ``http.framing.cl_and_te``."""
    detail: str = ""


Framing = Literal["none", "length", "chunked", "close"]
"""How a response body is delimited: no body, Content-Length, chunked, or by closing."""


@dataclass(slots=True, eq=False)
class ResponseHead:
    """A final (non-1xx) response head from an origin. 1xx interim responses are dropped."""

    status: int
    reason: bytes
    version: str
    fields: bytes
    """The header field lines exactly as received, each ending in CRLF (no final blank line)."""
    end_to_end: bytes
    """`fields` minus the hop-by-hop and Content-Length lines: what a proxy copies to its client
    (cut out in the same pass that reads the framing, without splitting the block into fields;
    names listed in `connection_tokens` are still in it)."""
    framing: Framing
    content_length: int | None
    connection_tokens: frozenset[bytes]

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The fields as (lowercased name, value) pairs (computed on each access)."""
        return [(n.lower(), v) for n, v in _FIELD_LINE.findall(self.fields)]


@dataclass(frozen=True, slots=True)
class ResponseError:
    """The origin's response is malformed or truncated; the origin connection is unusable."""

    reason: str
    detail: str = ""


RequestEvent = RequestHead | BodyChunk | MessageEnd | RequestError
ResponseEvent = ResponseHead | BodyChunk | MessageEnd | ResponseError


# --------------------------------------------------------------------------------------------
# Shared helpers


class _Stop(Exception):
    """Raised inside an httptools callback to abort the parse (the reason is stored beforehand)."""


_HEAD_END: Final = b"\r\n\r\n"
_FRAMING_NAMES: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"host", b"expect"}
)
_CONN_CONTROL: Final = frozenset({b"close", b"keep-alive"})
_NO_TOKENS: Final[frozenset[bytes]] = frozenset()
_DIGITS: Final = re.compile(rb"[0-9]{1,18}")
# reg-name restricted to what a hostname can be, or an IPv6 literal; optional non-empty port.
_AUTHORITY: Final = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")


def _tokens(value: bytes) -> list[bytes]:
    return [t for t in (p.strip(b" \t").lower() for p in value.split(b",")) if t]


def _hop_tokens(tokens: list[bytes] | None) -> frozenset[bytes]:
    """Connection tokens naming other hop-by-hop fields (close/keep-alive are not field names)."""
    if not tokens:
        return _NO_TOKENS
    return frozenset(t for t in tokens if t not in _CONN_CONTROL)


def _parse_authority(authority: bytes) -> tuple[str, int | None] | None:
    m = _AUTHORITY.fullmatch(authority)
    if m is None:
        return None
    port_b = m.group(2)
    port = int(port_b) if port_b is not None else None
    if port is not None and not 0 < port < 65536:
        return None
    return m.group(1).decode("ascii").lower(), port


def _llhttp_reason(exc: Exception) -> str:
    msg = str(exc)
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        return "http.invalid_method"
    if isinstance(exc, httptools.HttpParserInvalidURLError):
        return "http.invalid_target"
    if "PRI" in msg:
        return "http.http2_preface"
    if "Content-Length" in msg:
        return "http.framing.content_length"
    if "Transfer-Encoding" in msg:
        return "http.framing.transfer_encoding"
    if "chunk" in msg.lower():
        return "http.framing.chunk"
    if "version" in msg.lower() or "HTTP/" in msg:
        return "http.invalid_version"
    if "header" in msg.lower():
        return "http.invalid_header"
    return "http.malformed"


# --------------------------------------------------------------------------------------------
# Requests


_RequestScan = tuple[
    bytes,
    tuple[tuple[bytes, bytes], ...],
    bytes | None,
    int,
    bytes | None,
    int,
    bytes | None,
    int,
    bytes | None,
    frozenset[bytes] | None,
    tuple[bytes, ...],
]
"""(field block, headers, Host, Host count, Content-Length, its count, Transfer-Encoding, its
count, Expect, Connection tokens naming more hop-by-hop fields or None without Connection, the
block's field lines)."""


_REQUEST_VERSIONS: Final = {b"1.1": "1.1", b"1.0": "1.0"}
_SCAN_CACHE: Final[dict[bytes, _RequestScan]] = {}
"""Field block → its scan, shared by every reader of the process (bounded; small blocks only)."""
_SCAN_CACHE_SIZE: Final = 512
_SCAN_CACHE_MAX_BLOCK: Final = 2048
_AUTHORITIES: Final[dict[bytes, tuple[str, int | None]]] = {}
"""Host value → (host, port) for well-formed ones (bounded like `_SCAN_CACHE`; short values only:
a DNS name has at most 253 bytes, and a Host value may otherwise be up to `max_head_bytes`)."""
_AUTHORITY_CACHE_MAX: Final = 300


_FIELD_CACHE: Final[dict[bytes, tuple[bytes, bytes]]] = {}
"""Field line → (lowercased name, value): most lines of a new field block were seen before
(User-Agent, Accept-*, Host, ...) while one or two differ (Cookie, Referer)."""
_FIELD_CACHE_SIZE: Final = 4096
_FIELD_CACHE_MAX_LINE: Final = 512


def _split_field(line: bytes) -> tuple[bytes, bytes]:
    """One field line (without its CRLF) → (lowercased name, value); remembered in `_FIELD_CACHE`."""
    name, colon, value = line.partition(b":")
    if not name or not colon:  # cannot happen with strict llhttp; refuse rather than guess
        raise _Stop("http.invalid_header")
    field = (name.lower(), value.strip(b" \t"))  # llhttp skipped leading whitespace already
    if len(line) <= _FIELD_CACHE_MAX_LINE:
        if len(_FIELD_CACHE) >= _FIELD_CACHE_SIZE:
            _FIELD_CACHE.clear()
        _FIELD_CACHE[line] = field
    return field


def _scan_request_fields(
    block: bytes, lines: tuple[bytes, ...], prev: _RequestScan | None = None
) -> tuple[_RequestScan, bool]:
    """Split a request head's field block (strict llhttp accepted it: each line is ``name:``,
    optional whitespace, the value, CRLF) and pick out the fields that decide framing.

    `lines` is ``block.split(CRLF)`` without the empty last item, as a tuple. `prev` is the scan of the
    connection's previous block: when it has as many lines, each line equal to the line at the
    same position there takes that field (one bytes compare, no hashing), and the framing fields
    are taken over too unless a line that changed is or was one of them. This is the browser
    case: the same fields again with one or two values changed (Cookie, Referer).

    Also says whether every line was seen before (here, in `prev` or in `_FIELD_CACHE`)."""
    known = _FIELD_CACHE.get
    seen = True
    if prev is not None and len(prev[10]) == len(lines):
        prev_lines = prev[10]
        prev_fields = prev[1]
        fields = list(prev_fields)
        framing_changed = False
        for i in range(len(lines)):
            line = lines[i]
            if line != prev_lines[i]:
                field = known(line)
                if field is None:
                    field = _split_field(line)
                    seen = False
                fields[i] = field
                if field[0] in _FRAMING_NAMES or prev_fields[i][0] in _FRAMING_NAMES:
                    framing_changed = True
        headers = tuple(fields)
        if not framing_changed:
            return (
                block,
                headers,
                prev[2],
                prev[3],
                prev[4],
                prev[5],
                prev[6],
                prev[7],
                prev[8],
                prev[9],
                lines,
            ), seen
    else:
        found: list[tuple[bytes, bytes]] = []
        append = found.append
        for line in lines:
            field = known(line)
            if field is None:
                field = _split_field(line)
                seen = False
            append(field)
        headers = tuple(found)
    host: bytes | None = None
    host_count = 0
    cl: bytes | None = None
    cl_count = 0
    te: bytes | None = None
    te_count = 0
    expect: bytes | None = None
    tokens: list[bytes] | None = None
    for lname, value in headers:
        if lname not in _FRAMING_NAMES:
            continue
        if lname == b"host":
            host = value
            host_count += 1
        elif lname == b"content-length":
            cl = value
            cl_count += 1
        elif lname == b"transfer-encoding":
            te = value
            te_count += 1
        elif lname == b"connection":
            if tokens is None:
                tokens = []
            lower = value.lower()
            if lower != b"keep-alive" and lower != b"close":
                tokens.extend(_tokens(lower))
        else:
            expect = value
    return (
        block,
        headers,
        host,
        host_count,
        cl,
        cl_count,
        te,
        te_count,
        expect,
        None if tokens is None else _hop_tokens(tokens),
        lines,
    ), seen


class RequestReader:
    """Turns a client's byte stream into `RequestEvent`s.

    ``feed(data)`` returns the events completed by `data`, in order; a `RequestError` is always
    the last event ever returned (later feeds return nothing). Pipelined requests come out one
    after another; pacing them is the caller's job.

    Hot path: llhttp validates and frames the stream in C without calling back per header field;
    when it reports a head complete, the reader finds the head in the bytes it was fed and splits
    its field block once (strict llhttp accepted the head, so its lines end in CRLF, names are
    tokens followed directly by ``:``, and there is no obs-fold: the block holds exactly the
    fields llhttp saw; a line without ``name:`` is refused anyway). An equal block, from this
    connection or another one, reuses that split (`_scan_request_fields`, bounded caches keyed
    by the exact bytes; a block is shared with other connections once all its lines were seen
    before); the limits are still checked against each head. A new block with as many lines as
    the connection's previous one takes the field of every unchanged line from it by position
    (a browser's next request: the same fields, a different Cookie or Referer).

    Where a head starts and ends in the stream: llhttp does not say, so the reader feeds each
    chunk in *pieces* that end right after every CRLFCRLF it contains (also one straddling two
    chunks). A head ends with CRLFCRLF, and so does a chunked body (last chunk, trailers, blank
    line), so each of them ends exactly at the end of the piece in which llhttp reports it; a
    Content-Length body ends a known number of bytes after its head; a bodiless request ends with
    its head. The next head starts where the previous message ended (llhttp skips CRLFs before a
    request line, and so does the slicing). A typical request is one piece: one ``feed_data``.
    Inside a Content-Length body nothing ends at a CRLFCRLF, so no piece is cut there (a body
    of blank lines would otherwise cost one ``feed_data`` and one event per two bytes); nor
    inside a chunked body before its trailer section, which `_ChunkScan` finds by following the
    chunk sizes.

    Limits: an incomplete head is kept (from its first byte) across chunks and refused with 431
    as soon as it exceeds ``max_head_bytes``; a complete one is measured exactly. Trailers are
    never buffered (llhttp streams over them), but pieces of a chunked body that carry no body
    data at all, in a row (its trailers, or endless chunk framing), may total at most
    ``max_head_bytes`` (431); trailers arriving in the same read as body data are bounded by
    that read's size.
    """

    __slots__ = (
        "_authority_cache",
        "_body_end",
        "_carry",
        "_chunk_scan",
        "_chunked_body",
        "_data",
        "_dead",
        "_ended_in_piece",
        "_events",
        "_head_start",
        "_in_head",
        "_last_scan",
        "_max_count",
        "_max_head",
        "_msg_end",
        "_no_body_bytes",
        "_parser",
        "_piece_body",
        "_piece_end",
        "_piece_in_body",
        "_piece_len",
        "_pos",
        "_reject",
        "_tail",
        "_url",
    )

    def __init__(self, limits: HTTP1Limits | None = None) -> None:
        limits = limits or HTTP1Limits()
        self._max_head = limits.max_head_bytes
        self._max_count = limits.max_header_count
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[RequestEvent] = []
        self._dead = False
        self._reject: RequestError | None = None
        self._in_head = False
        self._url = b""
        # Stream offsets (bytes since the connection's first byte).
        self._pos = 0  # of the first byte of the chunk being fed
        self._piece_end = 0  # of the end of the piece llhttp is parsing
        self._msg_end = 0  # where the last complete message ended (the next one starts there)
        self._head_start = 0  # where the current head starts
        self._body_end = -1  # where the current Content-Length body ends (-1: no such body)
        self._data = b""  # the chunk being fed
        self._carry = b""  # the current head's bytes from earlier chunks
        self._tail = b""  # the last bytes fed (up to 3): a CRLFCRLF may straddle two chunks
        self._chunked_body = False
        self._chunk_scan: _ChunkScan | None = None  # follows the chunk sizes of a chunked body
        self._ended_in_piece = False  # a message taken to end at the piece's end ended in it
        self._piece_in_body = False
        self._piece_len = 0
        self._piece_body = 0
        self._no_body_bytes = 0
        # Last Host value seen and its parse (a connection keeps sending the same one); NUL
        # never matches since llhttp refuses it in header values.
        self._authority_cache: tuple[bytes, str, int | None] = (b"\x00", "", None)
        self._last_scan: _RequestScan | None = None

    @property
    def in_head(self) -> bool:
        """Bytes of a request head have arrived but the head is not complete (slow-header clock)."""
        return self._in_head

    @property
    def failed(self) -> bool:
        return self._dead

    def close(self) -> None:
        """The connection is gone: drop the parser, which holds this reader as its callback
        object (a reference cycle that only the cyclic garbage collector would free)."""
        self._dead = True
        self._parser = _CLOSED_PARSER
        self._events = []
        self._data = self._carry = b""

    def feed(self, data: bytes) -> list[RequestEvent]:
        events: list[RequestEvent] = []
        if self._dead or not data:
            return events
        self._events = events
        self._data = data
        try:
            self._feed(data)
        finally:
            self._data = b""  # (only the callbacks of this feed read it; do not keep the chunk)
        return events

    def _feed(self, data: bytes) -> None:
        parser = self._parser
        pos = self._pos
        size = len(data)
        # Piece ends: right after every CRLFCRLF (overlapping ones too) where a message may end,
        # and the chunk's end.
        straddle: list[int] = []
        tail = self._tail
        if tail and (data[0] == 13 or data[0] == 10):  # (only then can one straddle the chunks)
            probe = tail + data[:3]
            i = probe.find(_HEAD_END)
            while i >= 0:  # only ones straddling the two chunks fit in the probe
                straddle.append(i + 4 - len(tail))
                i = probe.find(_HEAD_END, i + 1)
        skip = self._may_end(data, pos, 0)  # inside a body: where to start looking
        i = data.find(_HEAD_END, skip) if skip > 0 else data.find(_HEAD_END)
        self._tail = data[-3:] if size >= 3 else (tail + data)[-3:]
        try:
            if not straddle and (i < 0 or i + 4 == size):
                self._feed_piece(parser, data, pos, size)
            else:
                try:
                    start = 0
                    for end in straddle:
                        if end > start and end < size and self._may_end(data, pos, end) < 0:
                            self._feed_piece(self._parser, data[start:end], pos + start, end - start)
                            start = end
                            if self._dead:
                                return
                    while i >= 0:
                        end = i + 4
                        if end >= size:
                            break
                        resume = self._may_end(data, pos, end)
                        if resume >= 0:  # no message ends here: skip to where one may
                            i = data.find(_HEAD_END, max(i + 1, resume))
                            continue
                        if end > start:
                            self._feed_piece(self._parser, data[start:end], pos + start, end - start)
                            start = end
                            if self._dead:
                                return
                        i = data.find(_HEAD_END, i + 1)
                    self._feed_piece(self._parser, data[start:] if start else data, pos + start, size - start)
                finally:
                    if len(self._events) > 2:
                        _join_bodies(self._events)
        except httptools.HttpParserError as exc:
            self._fail(self._reject or RequestError(400, _llhttp_reason(exc), str(exc)))
            return
        if self._chunk_scan is not None:
            self._chunk_scan.cuts_from(data, pos)  # follow the sizes to the end of this read
        self._pos = pos + size
        if self._in_head and not self._dead:
            # Keep the incomplete head (bounded: llhttp no longer buffers anything of it).
            start = self._head_start
            self._carry = data[start - pos :] if start >= pos else self._carry + data
            if len(self._carry) > self._max_head:
                self._fail(RequestError(431, "http.head_too_large"))

    def _may_end(self, data: bytes, pos: int, end: int) -> int:
        """-1 if a message may end at ``data[:end]`` (``data`` is the read at stream offset
        ``pos``); else the index in ``data`` from which to look for the next CRLFCRLF. Nothing
        ends inside a Content-Length body, nor inside a chunked body before its trailer section
        (`_ChunkScan`)."""
        if pos + end < self._body_end:
            return self._body_end - pos - 4
        scan = self._chunk_scan
        if scan is not None:
            allowed = scan.cuts_from(data, pos)
            if pos + end < allowed:
                return allowed - pos - 4
        return -1

    def _feed_piece(self, parser: httptools.HttpRequestParser, piece: bytes, at: int, n: int) -> None:
        self._piece_end = at + n
        self._piece_len = n
        self._piece_body = 0
        in_body = self._piece_in_body = self._chunked_body
        while True:
            self._ended_in_piece = False
            try:
                parser.feed_data(piece)
                break
            except httptools.HttpParserUpgrade as up:
                # llhttp pauses after a request carrying ``Connection: upgrade`` (CONNECT and
                # upgrades with a body were refused in on_headers_complete). The edge never
                # switches protocols: the request went out as a plain one, so what follows is
                # simply the next request, for a fresh parser.
                parser = self._parser = httptools.HttpRequestParser(self)
                piece = piece[up.args[0] :]
                if not piece:
                    break
        if in_body and self._chunked_body:
            if self._piece_body:
                self._no_body_bytes = 0
            else:
                # A piece of a chunked body without body data: trailers (or endless chunk framing).
                self._no_body_bytes += n
                if self._no_body_bytes > self._max_head:
                    self._fail(RequestError(431, "http.trailers_too_large"))

    def _fail(self, error: RequestError) -> None:
        self._dead = True
        self._events.append(error)

    def _stop(self, status: int, reason: str, detail: str = "") -> _Stop:
        self._reject = RequestError(status, reason, detail)
        return _Stop(reason)

    # --- httptools callbacks (deliberately no on_header: see the class docstring) -------------

    def on_message_begin(self) -> None:
        if self._ended_in_piece:
            # The last message was taken to end where the piece ends, yet this one begins in the
            # same piece: the pieces were cut wrong. Never guess where this head starts.
            raise self._stop(400, "http.framing.chunk")
        self._in_head = True
        # Only CRLFs (skipped by llhttp) can lie between the last message and this one.
        self._head_start = self._msg_end if self._msg_end >= self._pos else self._pos

    def on_url(self, url: bytes) -> None:
        self._url = self._url + url if self._url else url

    def on_headers_complete(self) -> None:
        # The head ends exactly at the end of the current piece (see the class docstring).
        pos = self._pos
        start = self._head_start
        if start >= pos:  # the whole head is in the chunk being fed: index it in place
            raw = self._data
            start -= pos
            end = self._piece_end - pos
        else:
            raw = self._carry + self._data[: self._piece_end - pos]
            start = 0
            end = len(raw)
        self._carry = b""
        while start < end and (raw[start] == 13 or raw[start] == 10):  # CRLFs llhttp skipped
            start += 1
        if end - start > self._max_head:
            raise self._stop(431, "http.head_too_large")
        line_end = raw.find(CRLF, start, end)
        if line_end < 0 or not raw.endswith(_HEAD_END, start, end):  # cannot happen with strict llhttp
            raise self._stop(400, "http.malformed", "request head not where expected")
        block = raw[line_end + 2 : end - 2]
        # (llhttp checked that the request line ends in "HTTP/d.d")
        version = _REQUEST_VERSIONS.get(raw[line_end - 3 : line_end]) or self._parser.get_http_version()
        scan = self._last_scan
        if scan is None or scan[0] != block:
            # The scan is a pure function of the block's bytes, so an equal block reuses it,
            # shared tuples and all: a keep-alive client tends to repeat its block, and clients
            # of one kind (API clients, devices) send the same one on every connection.
            shared = _SCAN_CACHE.get(block)
            if shared is None:
                lines = block.split(CRLF)
                lines.pop()  # (the block ends with CRLF)
                if len(lines) > self._max_count:
                    raise self._stop(431, "http.too_many_headers")
                try:
                    # (a tuple: the cyclic collector stops tracking it, and connections keep it)
                    scan, seen = _scan_request_fields(block, tuple(lines), scan)
                except _Stop as stop:
                    raise self._stop(400, str(stop)) from None
                # Shared once every line of it was seen before: a block with a line never seen
                # (a new Cookie value) is likely never sent again, and its connection's next
                # requests reuse its scan anyway.
                if seen and len(block) <= _SCAN_CACHE_MAX_BLOCK:
                    if len(_SCAN_CACHE) >= _SCAN_CACHE_SIZE:
                        _SCAN_CACHE.clear()
                    _SCAN_CACHE[block] = scan
            elif len(shared[1]) > self._max_count:  # (cached by a reader with other limits)
                raise self._stop(431, "http.too_many_headers")
            else:
                scan = shared
            self._last_scan = scan
        _, headers, host, host_count, cl, cl_count, te, te_count, expect, tokens, _ = scan
        parser = self._parser
        method = parser.get_method()
        target = self._url
        self._url = b""
        authority = host
        if (
            # Fast path, most requests: one Host, origin-form, no framing or Expect field, and no
            # Connection field or one naming only close/keep-alive (browsers send keep-alive).
            host_count == 1
            and te is None
            and cl is None
            and not tokens
            and expect is None
            and version == "1.1"
            and target[:1] == b"/"
            and method != b"CONNECT"
            and (authority == self._authority_cache[0] or self._known_authority(authority))
        ):
            cached = self._authority_cache
            self._events.append(
                RequestHead(
                    method,
                    target,
                    version,
                    headers,
                    parser.should_keep_alive(),
                    cached[0],
                    cached[1],
                    cached[2],
                    None,
                    False,
                    False,
                    _NO_TOKENS,
                )
            )
            self._in_head = False
            self._body_end = -1
            return
        if version != "1.1" and version != "1.0":
            raise self._stop(400, "http.invalid_version", version)
        if method == b"CONNECT":
            raise self._stop(405, "http.connect_refused")

        # Framing (llhttp already refuses most of these; checked again because forwarding an
        # ambiguous request is the one mistake a proxy must never make).
        content_length: int | None = None
        chunked = False
        if te is not None:
            if cl is not None:
                raise self._stop(400, "http.framing.cl_and_te")
            if version == "1.0":
                raise self._stop(400, "http.framing.te_in_http10")
            if te_count != 1:
                raise self._stop(400, "http.framing.transfer_encoding")
            if te.lower() != b"chunked":
                codings = _tokens(te)
                if not codings or codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                    # RFC 9112 §6.3: chunked not (only) last means the length is unknowable.
                    raise self._stop(400, "http.framing.transfer_encoding", te.decode("latin-1"))
                raise self._stop(501, "http.framing.unsupported_coding", te.decode("latin-1"))
            chunked = True
        elif cl is not None:
            if cl_count != 1 or _DIGITS.fullmatch(cl) is None:
                raise self._stop(400, "http.framing.content_length")
            content_length = int(cl)
        if tokens is not None and (chunked or content_length) and parser.should_upgrade():
            # llhttp would hand the body over as "upgraded" bytes instead of parsing it.
            raise self._stop(400, "http.upgrade_with_body")

        # Target and authority.
        if host_count != 1 and (host_count > 1 or version == "1.1"):
            raise self._stop(400, "http.host", "exactly one Host header is required")
        if target[:1] != b"/":
            if target == b"*" and method == b"OPTIONS":
                pass
            elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
                target, authority = self._absolute_form(target)
            else:
                raise self._stop(400, "http.invalid_target")
        if authority is None:  # HTTP/1.0 without Host
            hostname, port, authority = "", None, b""
        else:
            cached = self._authority_cache
            if cached[0] == authority:
                hostname, port = cached[1], cached[2]
            else:
                parsed = _AUTHORITIES.get(authority) or _parse_authority(authority)
                if parsed is None:
                    raise self._stop(400, "http.host", "malformed Host")
                hostname, port = parsed
                self._authority_cache = (authority, hostname, port)
                if len(authority) <= _AUTHORITY_CACHE_MAX:
                    if len(_AUTHORITIES) >= _SCAN_CACHE_SIZE:
                        _AUTHORITIES.clear()
                    _AUTHORITIES[authority] = parsed

        head = RequestHead(
            method,
            target,
            version,
            headers,
            parser.should_keep_alive(),
            authority,
            hostname,
            port,
            content_length,
            chunked,
            expect is not None and expect.lower() == b"100-continue",
            tokens or _NO_TOKENS,
        )
        self._in_head = False
        self._body_end = self._piece_end + content_length if content_length is not None else -1
        if chunked:
            self._chunked_body = True
            self._chunk_scan = _ChunkScan(self._piece_end)
            self._no_body_bytes = 0
        self._events.append(head)

    def _known_authority(self, authority: bytes | None) -> bool:
        """A Host value already parsed by some reader of this process becomes this reader's too."""
        if authority is None:
            return False
        parsed = _AUTHORITIES.get(authority)
        if parsed is None:
            return False
        self._authority_cache = (authority, parsed[0], parsed[1])
        return True

    def _absolute_form(self, target: bytes) -> tuple[bytes, bytes]:
        try:
            # httptools' stub types every part as present; an absent one is None (a compiled
            # build checks the declared types, so the parts are read through Any).
            url: Any = httptools.parse_url(target)
        except httptools.HttpParserInvalidURLError:
            raise self._stop(400, "http.invalid_target") from None
        host: bytes | None = url.host
        port: int | None = url.port
        path: bytes | None = url.path
        query: bytes | None = url.query
        if url.userinfo or not host:
            raise self._stop(400, "http.invalid_target")
        # RFC 9112 §3.2.2: the absolute-form authority replaces the Host header.
        host_b = b"[" + host + b"]" if host.find(b":") >= 0 else host
        authority = host_b if port is None else b"%s:%d" % (host_b, port)
        return (path or b"/") + (b"?" + query if query is not None else b""), authority

    def on_body(self, body: bytes) -> None:
        self._piece_body += len(body)
        self._events.append(BodyChunk(body))

    def on_message_complete(self) -> None:
        if self._body_end >= 0:
            self._msg_end = self._body_end
        else:
            # Bodiless, or chunked: either way it ends where this piece ends.
            self._msg_end = self._piece_end
            self._ended_in_piece = True
            if self._chunked_body:
                self._chunked_body = False
                self._chunk_scan = None
                if self._piece_in_body and not self._piece_body:
                    if self._no_body_bytes + self._piece_len > self._max_head:
                        raise self._stop(431, "http.trailers_too_large")
        self._events.append(MESSAGE_END)


_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}(?![0-9A-Fa-f])")
_NO_CUTS: Final = 1 << 62


class _ChunkScan:
    """Follows a chunked body's chunk sizes, skipping chunk data arithmetically, to find where
    its trailer section starts: a chunked body can end only there, so the reader need not cut a
    piece at every CRLFCRLF inside chunk data (1 MiB of CRLFs would be 500,000 pieces).

    It reads only the size at the start of each chunk-size line and that line's LF (extensions
    are skipped); strict llhttp validates all of the framing. On a line it does not understand it
    gives up and allows every cut again, as without it; and should a message still end inside a
    piece, the reader fails the request (``on_message_begin``) rather than guess where the next
    head starts.
    """

    __slots__ = ("_at", "_from", "_in_line", "_left", "_line")

    def __init__(self, start: int) -> None:
        self._at = start  # stream offset of the next byte to read
        self._in_line = True  # at (or inside) a chunk-size line; else inside data + its CRLF
        self._left = 0  # bytes left of the chunk data and its CRLF
        self._line = b""  # the start of a chunk-size line split across reads (at most 32 bytes)
        self._from = _NO_CUTS  # cuts at or after this stream offset may end the body

    def cuts_from(self, data: bytes, pos: int) -> int:
        """Read ``data`` (the read at stream offset ``pos``) to its end; the stream offset from
        which a cut (the end of a CRLFCRLF) may end the body."""
        if self._from != _NO_CUTS:
            return self._from
        end = pos + len(data)
        at = self._at
        if at < pos:  # (bytes this scan never saw: it cannot follow the sizes any more)
            self._from = -1
            return -1
        find, match = data.find, _CHUNK_SIZE.match
        while at < end:
            if not self._in_line:
                step = min(self._left, end - at)
                at += step
                self._left -= step
                if self._left:
                    break
                self._in_line = True
                continue
            i = at - pos
            j = find(b"\n", i)
            if j < 0:  # the line goes on in the next read
                self._line = (self._line + data[i : i + 32])[:32]
                at = end
                break
            if self._line:
                line = (self._line + data[i : min(j, i + 32)])[:32]
                self._line = b""
                m = match(line)
            else:
                m = match(data, i, j)
            at = pos + j + 1
            if m is None:  # not a size llhttp accepts: let every cut through
                self._from = -1
                break
            size = int(m.group(), 16)
            if size == 0:  # the last chunk: "0" CRLF, then trailers and a blank line
                self._from = at - 2
                break
            if at + size + 2 <= end:  # the whole chunk is in this read: on to the next line
                at += size + 2
            else:
                self._in_line, self._left = False, size + 2
        self._at = at
        return self._from


def _join_bodies(events: list[RequestEvent]) -> None:
    """Adjacent body events of one read become one, in place (the pieces of a chunked body cut
    at its blank lines: a chunk of CRLFs would otherwise be one event, and one chunk to the
    origin, per two bytes)."""
    out: list[RequestEvent] = []
    run: list[bytes] = []
    for ev in events:
        if isinstance(ev, BodyChunk):
            run.append(ev.data)
            continue
        if run:
            out.append(BodyChunk(b"".join(run)))
            run = []
        out.append(ev)
    if run:
        out.append(BodyChunk(b"".join(run)))
    if len(out) != len(events):
        events[:] = out


class _NoCallbacks:
    pass


_CLOSED_PARSER: Final = httptools.HttpRequestParser(_NoCallbacks())
"""Stands in for a closed reader's parser (never fed: a closed reader is dead)."""


# --------------------------------------------------------------------------------------------
# Responses


class ResponseReader:
    """Turns an origin's byte stream into `ResponseEvent`s, one response per `start()`.

    Fast path: llhttp validates and frames the response in C without calling back per header;
    the reader slices the head block out of the bytes it was fed and reads the three framing
    fields with one regular expression. (llhttp runs in strict mode, so a head it accepts has
    CRLF line ends and ``name:`` with no space before the colon: the slice and the regex see
    exactly the fields llhttp saw.)

    A HEAD request's response has no body whatever its Content-Length says, and httptools cannot
    be told so: the reader stops llhttp right after such a head and checks that nothing followed.
    """

    __slots__ = (
        "_buf",
        "_done",
        "_events",
        "_failed",
        "_head",
        "_head_request",
        "_keep_alive",
        "_last_scan",
        "_max_count",
        "_max_head",
        "_parser",
        "_pos",
        "_stop_reason",
        "_stopped_at_head",
        "_unsolicited",
    )

    def __init__(self, limits: HTTP1Limits | None = None) -> None:
        limits = limits or HTTP1Limits()
        self._max_head = limits.max_head_bytes
        self._max_count = limits.max_header_count
        self._parser = httptools.HttpResponseParser(self)
        self._events: list[ResponseEvent] = []
        self._failed = False
        self._last_scan: _ResponseScan | None = None
        self.start(head_request=False)

    def start(self, *, head_request: bool) -> None:
        """Expect the response to a new request (HEAD responses carry no body)."""
        if self._failed:
            raise RuntimeError("ResponseReader.start() after a failed response")
        self._head_request = head_request
        self._head: ResponseHead | None = None
        self._done = False
        self._keep_alive = False
        self._stopped_at_head = False
        self._unsolicited = False
        self._stop_reason: str | None = None
        self._buf = b""
        self._pos = 0

    @property
    def head(self) -> ResponseHead | None:
        return self._head

    @property
    def done(self) -> bool:
        return self._done

    @property
    def reusable(self) -> bool:
        """The response ended cleanly and the origin left the connection open for another request."""
        return self._done and self._keep_alive and not self._failed and not self._unsolicited

    def feed(self, data: bytes) -> list[ResponseEvent]:
        if self._failed or self._done:
            # Bytes after a complete response (we never pipeline to origins): never reuse.
            if data:
                self._unsolicited = True
            return []
        events: list[ResponseEvent] = []
        self._events = events
        in_head = self._head is None
        if in_head:
            # The head block is sliced out of these bytes once llhttp says it is complete.
            self._buf = self._buf + data if self._buf else data
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("http.origin.unexpected_upgrade")
        except httptools.HttpParserError as exc:
            if self._stopped_at_head:
                # Stopped on purpose after a HEAD response's head: clean iff nothing followed it.
                self._parser = httptools.HttpResponseParser(self)
                self._finish(keep_alive=self._keep_alive and self._pos == len(self._buf))
            elif self._done:
                self._unsolicited = True
            elif self._stop_reason is not None:
                self._fail(self._stop_reason)
            else:
                self._fail(_llhttp_reason(exc).replace("http.", "http.origin."), str(exc))
            return events
        if in_head:
            if self._head is None:
                if len(self._buf) - self._pos > self._max_head:
                    self._fail("http.origin.head_too_large")
            elif not self._head_request:
                self._buf = b""  # the body is not kept
        return events

    def feed_eof(self) -> list[ResponseEvent]:
        """The origin closed its side: ends a close-delimited body, or reports a truncated response."""
        if self._done or self._failed:
            return []
        self._events = []
        if self._head is not None and self._head.framing == "close":
            self._finish(keep_alive=False)
        else:
            self._fail("http.origin.truncated" if self._head is not None else "http.origin.closed")
        return self._events

    def _fail(self, reason: str, detail: str = "") -> None:
        self._failed = True
        self._events.append(ResponseError(reason, detail))

    def _finish(self, *, keep_alive: bool) -> None:
        self._done = True
        self._keep_alive = keep_alive
        self._events.append(MESSAGE_END)

    def _stop(self, reason: str) -> _Stop:
        self._stop_reason = reason
        return _Stop(reason)

    # --- httptools callbacks (deliberately no on_header / on_status: see the class docstring) ---

    def on_message_begin(self) -> None:
        if self._done:
            raise _Stop("unsolicited")

    def on_headers_complete(self) -> None:
        buf = self._buf
        start = self._pos
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:  # cannot happen with strict llhttp; refuse rather than guess
            raise self._stop("http.origin.malformed")
        self._pos = end + 4
        if end + 4 - start > self._max_head:
            raise self._stop("http.origin.head_too_large")
        line_end = buf.find(b"\r\n", start)
        status_line = buf[start:line_end]
        fields = buf[line_end + 2 : end + 2]
        if len(fields) > 4 * self._max_count and fields.count(b"\r\n") > self._max_count:
            raise self._stop("http.origin.too_many_headers")  # (a field line is >= 4 bytes)
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            if status == 101:
                raise self._stop("http.origin.unexpected_upgrade")
            return  # 1xx interim response (100, 102, 103): not forwarded; the final one follows
        version = _VERSIONS.get(status_line[5:8])
        if version is None:
            raise self._stop("http.origin.invalid_version")
        scan = self._last_scan
        if scan is None or scan[0] != fields:
            # (An origin connection tends to send the same field block again and again, the
            # Date line aside: the scan below is a pure function of these bytes, so an equal
            # block reuses it.)
            try:
                scan = self._last_scan = _scan_response_fields(fields)
            except _Stop as stop:
                raise self._stop(str(stop)) from None
        _, end_to_end, content_length, te, connection_tokens = scan
        framing: Framing
        if self._head_request or status == 204 or status == 304:
            framing = "none"
        elif te is not None:
            if te.lower() != b"chunked":
                raise self._stop("http.origin.unsupported_coding")
            framing = "chunked"
        elif content_length is not None:
            framing = "length"
        else:
            framing = "close"
        self._head = ResponseHead(
            status,
            status_line[13:],  # llhttp checked "HTTP/x.y NNN"; the reason (maybe empty) follows
            version,
            fields,
            end_to_end,
            framing,
            content_length,
            connection_tokens,
        )
        self._events.append(self._head)
        if self._head_request:
            self._keep_alive = parser.should_keep_alive()
            self._stopped_at_head = True
            raise _Stop("head")

    def on_body(self, body: bytes) -> None:
        self._events.append(BodyChunk(body))

    def on_message_complete(self) -> None:
        if self._head is None:
            return  # the end of a 1xx interim response
        self._finish(keep_alive=self._parser.should_keep_alive())


_VERSIONS: Final = {b"1.1": "1.1", b"1.0": "1.0"}

_ResponseScan = tuple[bytes, bytes, int | None, bytes | None, frozenset[bytes]]
"""(fields, end-to-end fields, Content-Length, Transfer-Encoding, Connection tokens)."""


def _scan_response_fields(fields: bytes) -> _ResponseScan:
    content_length: int | None = None
    te: bytes | None = None
    tokens: list[bytes] | None = None
    cl_count = 0
    kept: list[bytes] = []
    pos = 0
    # One pass over the lowercased block finds every hop-by-hop or Content-Length line: the
    # framing comes from their values, the end-to-end block from what lies between them.
    # (Index i in "\n" + lower is the line's first byte in `fields`; the match stops at CR.)
    for m in _HOP_LINE.finditer(b"\n" + fields.lower()):
        name, value = m.group(1, 2)
        if name == b"content-length":
            cl_count += 1
            value = value.rstrip(b" \t")
            if cl_count > 1 or not value.isdigit() or len(value) > 18:  # bytes.isdigit: ASCII only
                raise _Stop("http.origin.content_length")
            content_length = int(value)
        elif name == b"transfer-encoding":
            value = value.rstrip(b" \t")
            te = value if te is None else te + b"," + value
        elif name == b"connection":
            value = value.rstrip(b" \t")
            if value != b"keep-alive" and value != b"close":
                tokens = (tokens or []) + _tokens(value)
        start, end = m.span()
        kept.append(fields[pos:start])
        pos = end + 1
    if kept:
        kept.append(fields[pos:])
        end_to_end = b"".join(kept)
    else:
        end_to_end = fields
    return fields, end_to_end, content_length, te, _NO_TOKENS if tokens is None else _hop_tokens(tokens)


# Strict llhttp guarantees ``name:`` at the start of a CRLF-terminated line; matched on
# b"\n" + the lowercased block, so the literal "\n" prefix keeps the scan fast.
_HOP_LINE: Final = re.compile(
    rb"\n(" + b"|".join(sorted(HOP_BY_HOP | {b"content-length"})) + rb"):[ \t]*([^\r\n]*)"
)
_FIELD_LINE: Final = re.compile(rb"^([^:\r\n]+):[ \t]*([^\r\n]*?)[ \t]*\r$", re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Writing


_PHRASES: Final[dict[int, bytes]] = {s.value: s.phrase.encode("ascii") for s in http.HTTPStatus}
_STATUS_LINES: Final[dict[int, bytes]] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in _PHRASES.items()
}


def status_line(status: int, reason: bytes = b"") -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``; the standard phrase when `reason` is empty."""
    if not reason or reason == _PHRASES.get(status):
        line = _STATUS_LINES.get(status)
        if line is not None:
            return line  # prebuilt: no formatting for the usual "200 OK"
        return b"HTTP/1.1 %d %s\r\n" % (status, reason)
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (`data` must not be empty: an empty chunk ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def simple_response(
    status: int,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    *,
    close: bool,
    keep_alive_header: bool = False,
    send_body: bool = True,
) -> bytes:
    """A complete response generated by the edge itself (never for 1xx, 204 or 304 with a body)."""
    parts = [status_line(status)]
    for name, value in headers:
        parts += (name, b": ", value, CRLF)
    if status != 204 and status != 304:
        parts.append(b"content-length: %d\r\n" % len(body))
    if close:
        parts.append(b"connection: close\r\n")
    elif keep_alive_header:
        parts.append(b"connection: keep-alive\r\n")
    parts.append(CRLF)
    if send_body and body and status != 204 and status != 304:
        parts.append(body)
    return b"".join(parts)
