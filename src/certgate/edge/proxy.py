"""The per-connection HTTP/1.1 proxy: client bytes → `http1` events → the owner's decision →
origin (via `upstream`) → client, with keep-alive, back-pressure and timeouts on both sides.

This module performs decisions; it never makes them. For every request head the owner's
``decide(conn, head)`` returns `Respond` (the edge answers: 403, 404, 421, ...) or `Forward`
(which origin, which extra headers). TLS, verification and rules live elsewhere; this protocol
works the same on a plain transport and on uvloop's TLS transport
(``loop.create_server(make_protocol_factory(...), ssl=ctx)``).

Behaviour worth knowing (each one is deliberate):

* Malformed request heads get 400/405/431/501 (from `http1`), a slow head 408, then the
  connection closes; they never reach ``decide`` nor an origin. A body that turns out malformed
  (bad chunk size) aborts the origin request before its end, so it is never complete there.
* Pipelined requests are answered strictly in order; reading pauses while one is waiting.
* ``Expect: 100-continue``: the edge sends ``100 Continue`` itself once the request is to be
  forwarded, and never forwards Expect. A `Respond` to such a request closes the connection
  instead (the client may or may not send its body).
* An edge response (`Respond`, 5xx) to a request whose body is still coming reads and drops up
  to ``discard_body_limit`` bytes to keep the connection; beyond that it closes. Closing after
  an error keeps reading for ``linger_timeout`` so the client gets the response, not a reset.
* Origin failure before the response head: 502 (504 for timeouts). A reused keep-alive
  connection found dead before any response byte is retried once on a new one, for bodiless
  GET/HEAD/OPTIONS/TRACE. Failure after the head: the client connection is closed, so the client
  sees a truncated response, never a wrong one.
* Response framing towards the client: Content-Length kept; chunked and close-delimited
  responses are re-chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0 ones.
* Timing for access logs: `ExchangeResult` (`time.monotonic` seconds) goes to the decision's
  ``on_done`` exactly once per request, whatever happened (499 if the client left first).
* ``X-Forwarded-For`` is replaced by the peer address, never appended to (see `headers`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Final, cast

from certgate.edge.headers import (
    DEFAULT_STRIPPED_REQUEST_HEADERS,
    client_response_head,
    origin_request_head,
    request_drop_set,
)
from certgate.edge.http1 import (
    CONTINUE_100,
    LAST_CHUNK,
    BodyChunk,
    HTTP1Limits,
    RequestError,
    RequestEvent,
    RequestHead,
    RequestReader,
    ResponseError,
    ResponseEvent,
    ResponseHead,
    encode_chunk,
    simple_response,
)
from certgate.edge.tls import SSLConnection
from certgate.edge.upstream import OriginConnection, OriginError, OriginPool, OriginTarget, Watchdog

__all__ = [
    "ConnectionInfo",
    "ConnectionRegistry",
    "Decide",
    "Decision",
    "ErrorPage",
    "ExchangeResult",
    "Forward",
    "Headers",
    "OnDone",
    "ProxyProtocol",
    "ProxySettings",
    "Respond",
    "make_protocol_factory",
]

log = logging.getLogger("certgate.edge.proxy")


# --------------------------------------------------------------------------------------------
# Public data types


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Client-side limits and timeouts (seconds); every one a named setting with a default."""

    limits: HTTP1Limits = field(default_factory=HTTP1Limits)
    header_timeout: float = 10.0
    """From the first byte of a request head (or the connection's start) to the complete head; then 408."""
    keepalive_timeout: float = 75.0
    """Idle time allowed between two requests on a keep-alive connection; then a silent close."""
    body_timeout: float = 60.0
    """Longest pause between two pieces of a request body; then 408 (or a close)."""
    send_timeout: float = 60.0
    """Longest time the client may leave our response unread (write buffer full); then a close."""
    linger_timeout: float = 2.0
    """After an error response, keep reading and dropping input this long before closing."""
    discard_body_limit: int = 1024 * 1024
    """Request body bytes read and dropped after an edge response to keep the connection alive."""
    write_buffer_high: int = 256 * 1024
    """Client write buffer size above which we stop reading from the origin."""
    write_buffer_low: int = 64 * 1024
    strip_request_headers: frozenset[bytes] = DEFAULT_STRIPPED_REQUEST_HEADERS
    """Client-sent request fields always removed (must include the RFC 9440 ones)."""

    def __post_init__(self) -> None:
        for name in ("header_timeout", "keepalive_timeout", "body_timeout", "send_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ProxySettings.{name} must be positive")
        if self.linger_timeout < 0 or self.discard_body_limit < 0:
            raise ValueError("ProxySettings.linger_timeout and discard_body_limit must not be negative")
        request_drop_set(self.strip_request_headers)  # validates


@dataclass(slots=True, eq=False)
class ConnectionInfo:
    """Facts about one client connection, shared by every request on it."""

    id: int
    """Process-unique connection number."""
    peer_ip: str
    peer_port: int
    tls: bool
    ssl_object: SSLConnection | None
    """The TLS session (None on plain TCP); the owner reads the client certificate from it."""
    sni: str | None
    """The TLS server name if known; None here, to be set by the owner's ``on_connection`` hook."""
    opened_at: float
    """Event-loop (monotonic) time of the connection."""
    requests: int = 0
    """Requests started on this connection so far (including the current one)."""
    state: dict[str, Any] = field(default_factory=dict)
    """Free for the owner (e.g. the client certificate verified once per connection)."""


@dataclass(slots=True, eq=False)
class ExchangeResult:
    """What happened to one request, for access logs and metrics.

    Times are `time.monotonic()` seconds (the event loop's clock is only millisecond-precise).
    """

    status: int = 0
    """Status sent to the client; 499 when the client left before any response."""
    bytes_in: int = 0
    """Request body bytes received from the client."""
    bytes_out: int = 0
    """Response body bytes sent to the client."""
    started: float = 0.0
    """When the request head was complete."""
    finished: float = 0.0
    upstream_connect: float | None = None
    """Seconds spent opening a new origin connection (None: reused, or no origin involved)."""
    upstream_reused: bool = False
    upstream_response: float | None = None
    """Seconds from the request head going to the origin to the response head coming back."""
    error: str | None = None
    """None, an origin error kind (refused, reset, timeout, tls, protocol), ``client_closed``,
    ``client_timeout``, a request error reason, or ``internal``."""

    @property
    def duration(self) -> float:
        return self.finished - self.started


OnDone = Callable[[ExchangeResult], None]


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer from the edge itself; the request never reaches an origin."""

    status: int
    headers: Sequence[tuple[bytes, bytes]] = ()
    """Lowercase names; Content-Length and Connection are added by the proxy."""
    body: bytes = b""
    close: bool = False
    """Close the connection after this response."""
    on_done: OnDone | None = None

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 999:
            raise ValueError(f"Respond.status must be a final status (200-999), not {self.status}")


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the request to `origin` with the client's fields (filtered) plus `extra_headers`."""

    origin: OriginTarget
    extra_headers: Sequence[tuple[bytes, bytes]] = ()
    """Added to the forwarded request; client-sent fields of the same names are removed first."""
    on_done: OnDone | None = None


Decision = Respond | Forward
Decide = Callable[[ConnectionInfo, RequestHead], Decision]
Headers = Sequence[tuple[bytes, bytes]]
ErrorPage = Callable[[int, RequestHead | None], tuple[Headers, bytes]]
"""Builds the edge's own error responses (400, 408, 431, 500, 502, 504, ...): (headers, body)."""


def _default_error_page(status: int, head: RequestHead | None) -> tuple[Headers, bytes]:
    return _TEXT_PLAIN, _ERROR_BODIES.get(status) or b"%d\n" % status


_TEXT_PLAIN: Final = ((b"content-type", b"text/plain; charset=utf-8"),)
_ERROR_BODIES: Final = {
    400: b"400 Bad Request\n",
    405: b"405 Method Not Allowed\n",
    408: b"408 Request Timeout\n",
    431: b"431 Request Header Fields Too Large\n",
    500: b"500 Internal Server Error\n",
    501: b"501 Not Implemented\n",
    502: b"502 Bad Gateway\n",
    504: b"504 Gateway Timeout\n",
}
_REPLAYABLE: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
_PAUSE_PIPELINE: Final = 1  # a later request is parsed and waits for the current one
_PAUSE_CONNECT: Final = 2  # the origin connection is being opened
_PAUSE_ORIGIN: Final = 4  # the origin's write buffer is full
_ids = itertools.count(1)


class ConnectionRegistry:
    """Live client connections of one listener, for graceful shutdown."""

    def __init__(self) -> None:
        self._live: set[ProxyProtocol] = set()
        self._empty: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[ProxyProtocol]:
        return iter(list(self._live))

    def add(self, proto: ProxyProtocol) -> None:
        self._live.add(proto)

    def discard(self, proto: ProxyProtocol) -> None:
        self._live.discard(proto)
        if not self._live and self._empty is not None:
            self._empty.set()

    def shutdown(self) -> None:
        """Stop taking requests: idle connections close now, busy ones after their current response."""
        for proto in list(self._live):
            proto.shutdown()

    def abort(self) -> None:
        for proto in list(self._live):
            proto.abort()

    async def wait_closed(self, grace: float) -> bool:
        """Wait until every connection is gone; False if `grace` seconds passed first."""
        if not self._live:
            return True
        self._empty = asyncio.Event()
        try:
            async with asyncio.timeout(grace):
                await self._empty.wait()
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True, slots=True, eq=False)
class _Engine:
    """Everything a connection needs, shared by all connections of a listener."""

    decide: Decide
    pool: OriginPool
    settings: ProxySettings
    registry: ConnectionRegistry
    drop: frozenset[bytes]
    error_page: ErrorPage
    on_connection: Callable[[ConnectionInfo], None] | None
    on_rejected: Callable[[ConnectionInfo, RequestError], None] | None


def make_protocol_factory(
    decide: Decide,
    settings: ProxySettings,
    pool: OriginPool,
    *,
    registry: ConnectionRegistry | None = None,
    error_page: ErrorPage | None = None,
    on_connection: Callable[[ConnectionInfo], None] | None = None,
    on_rejected: Callable[[ConnectionInfo, RequestError], None] | None = None,
) -> Callable[[], ProxyProtocol]:
    """The protocol factory for ``loop.create_server(factory, ..., ssl=ctx_or_None)``.

    `on_connection` runs once per connection before any request (set ``conn.sni``, cache the
    client certificate); `on_rejected` is told about requests refused before ``decide`` (400,
    408, 431, ...), for logs and metrics.
    """
    engine = _Engine(
        decide=decide,
        pool=pool,
        settings=settings,
        registry=registry if registry is not None else ConnectionRegistry(),
        drop=request_drop_set(settings.strip_request_headers),
        error_page=error_page or _default_error_page,
        on_connection=on_connection,
        on_rejected=on_rejected,
    )

    def factory() -> ProxyProtocol:
        return ProxyProtocol(engine)

    return factory


# --------------------------------------------------------------------------------------------
# The protocol


class _Exchange:
    """State of the request being served (one at a time per connection).

    No __slots__ on purpose: the class-level defaults below mean a new exchange sets only the
    four fields every request needs (this object is created per request on the hot path).
    """

    forward: Forward | None = None
    on_done: OnDone | None = None
    origin: OriginConnection | None = None
    connect_task: asyncio.Task[None] | None = None
    connect_started = 0.0
    sent_at = 0.0
    replay: bytes | None = None
    retried = False
    sent_marked = False
    response_started = False
    response_done = False
    chunked_out = False
    close_after = False
    discard = False

    def __init__(self, head: RequestHead) -> None:
        self.head = head
        self.result = ExchangeResult(0, 0, 0, monotonic())
        self.obuf: list[bytes] = []
        # A bodiless request is complete with its head (its MessageEnd event follows at once).
        self.request_done = not head.has_body


class ProxyProtocol(asyncio.Protocol):
    """One client connection. Create through `make_protocol_factory`."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self._settings = engine.settings
        self._ex: _Exchange | None = None
        self._pending: deque[RequestEvent] = deque()
        self._processing = False
        self._pause = 0
        self._closing = False
        self._closed = False
        self._draining = False
        self._client_write_paused = False
        self._write_paused_since = 0.0
        self._head_since = 0.0
        self._idle_since = 0.0
        self._last_rx = 0.0

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        self._loop = loop = asyncio.get_running_loop()
        now = loop.time()
        s = self._settings
        peer = transport.get_extra_info("peername")
        sslobj = transport.get_extra_info("ssl_object")
        ip, port = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else ("", 0)
        self.conn = ConnectionInfo(
            id=next(_ids),
            peer_ip=ip,
            peer_port=port,
            tls=sslobj is not None,
            ssl_object=sslobj,
            sni=None,
            opened_at=now,
        )
        self._xff = ip.encode("ascii") if ip else b"unknown"
        self._proto = b"https" if sslobj is not None else b"http"
        self._reader = RequestReader(s.limits)
        transport.set_write_buffer_limits(high=s.write_buffer_high, low=s.write_buffer_low)
        self._idle_since = self._last_rx = now
        self._watchdog = Watchdog(loop, self._on_timer)
        self._watchdog.arm(now + s.header_timeout)
        self._engine.registry.add(self)
        if self._engine.on_connection is not None:
            try:
                self._engine.on_connection(self.conn)
            except Exception:
                log.exception("on_connection() failed; dropping connection %d", self.conn.id)
                self.abort()

    def data_received(self, data: bytes) -> None:
        now = self._last_rx = self._loop.time()
        if self._closing:
            return  # lingering before close: read and drop
        events = self._reader.feed(data)
        if events:
            self._pending.extend(events)
            self._process()
        if self._ex is None and not self._closing and self._reader.in_head and not self._head_since:
            self._head_since = now
            self._watchdog.arm(now + self._settings.header_timeout)

    def eof_received(self) -> bool | None:
        # Like nginx, a client EOF means the client is gone: the current exchange is abandoned
        # (connection_lost reports it as 499) rather than kept alive for a half-closed socket.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = self._closing = True
        self._watchdog.close()
        self._reader.close()
        self._pending.clear()
        ex = self._ex
        if ex is not None:
            self._abort_origin(ex)
            if not ex.response_started:
                ex.result.status = 499
            if ex.result.error is None and not ex.response_done:
                ex.result.error = "client_closed"
            self._finish(ex)
        self._engine.registry.discard(self)

    def pause_writing(self) -> None:
        self._client_write_paused = True
        self._write_paused_since = now = self._loop.time()
        ex = self._ex
        if ex is not None and ex.origin is not None:
            ex.origin.pause_reading()
        self._watchdog.arm(now + self._settings.send_timeout)

    def resume_writing(self) -> None:
        self._client_write_paused = False
        ex = self._ex
        if ex is not None and ex.origin is not None:
            ex.origin.resume_reading()

    # --- control -----------------------------------------------------------------------------

    def buffered(self) -> tuple[int, int]:
        """Bytes waiting in user space: (to the client, to the origin) — for metrics and tests."""
        ex = self._ex
        to_origin = ex.origin.write_buffer_size() if ex is not None and ex.origin is not None else 0
        return self._transport.get_write_buffer_size(), to_origin

    def shutdown(self) -> None:
        """Graceful: no new request; the current one (if any) completes, then the connection closes."""
        self._draining = True
        if self._ex is None and not self._closing:
            self._close(linger=False)

    def abort(self) -> None:
        if not self._closed:
            self._closing = True
            self._transport.abort()

    # --- request side ------------------------------------------------------------------------

    def _process(self) -> None:
        if self._processing:
            return  # the running loop below picks up whatever was queued
        self._processing = True
        pending = self._pending
        try:
            # (isinstance, not typing.cast: cast is a Python-level call on this hot path)
            while pending and not self._closing:
                ev = pending[0]
                if isinstance(ev, RequestHead):
                    if self._ex is not None:
                        break  # pipelined: waits for the current exchange
                    pending.popleft()
                    if self._draining:
                        self._close(linger=False)
                        break
                    self._begin(ev)
                elif isinstance(ev, BodyChunk):
                    pending.popleft()
                    self._request_body(ev.data)
                elif isinstance(ev, RequestError):
                    ex = self._ex
                    if ex is not None and ex.request_done:
                        break  # a later request is bad: answer the current one first
                    pending.popleft()
                    self._request_error(ev)
                else:  # MESSAGE_END
                    pending.popleft()
                    self._request_end()
            ex = self._ex
            if ex is not None and ex.obuf and ex.origin is not None:
                self._flush_origin(ex)
        finally:
            self._processing = False
        if pending and not self._closing:
            self._pause_client(_PAUSE_PIPELINE)
        elif self._pause & _PAUSE_PIPELINE:
            self._resume_client(_PAUSE_PIPELINE)

    def _begin(self, head: RequestHead) -> None:
        ex = self._ex = _Exchange(head)
        self._head_since = 0.0
        conn = self.conn
        conn.requests += 1
        try:
            decision = self._engine.decide(conn, head)
        except Exception:
            log.exception("decide() failed for connection %d", conn.id)
            ex.result.error = "internal"
            self._error_response(ex, 500, close=True)
            return
        if type(decision) is Forward:
            self._forward(ex, decision)
        elif type(decision) is Respond:
            ex.on_done = decision.on_done
            close = decision.close or (head.expect_continue and head.has_body)
            self._send_final(ex, decision.status, decision.headers, decision.body, close=close)
        else:
            log.error("decide() returned %r, not Respond or Forward", decision)
            ex.result.error = "internal"
            self._error_response(ex, 500, close=True)
            return
        if not ex.request_done:
            self._watchdog.arm(self._loop.time() + self._settings.body_timeout)

    def _forward(self, ex: _Exchange, fwd: Forward) -> None:
        head = ex.head
        target = fwd.origin
        ex.forward = fwd
        ex.on_done = fwd.on_done
        try:
            req = origin_request_head(
                head,
                host_header=target.host_header or head.authority or target.host.encode("idna"),
                forwarded_for=self._xff,
                forwarded_proto=self._proto,
                extra=fwd.extra_headers,
                drop=self._engine.drop,
            )
        except ValueError:
            log.exception("bad extra header from decide() on connection %d", self.conn.id)
            ex.result.error = "internal"
            self._error_response(ex, 500, close=True)
            return
        if ex.request_done:  # no body
            if head.method in _REPLAYABLE:
                ex.replay = req
        elif head.expect_continue and head.version == "1.1":
            self._transport.write(CONTINUE_100)
        conn = self._engine.pool.checkout(target)
        if conn is None:
            ex.obuf.append(req)
            self._connect(ex)
            return
        ex.result.upstream_reused = True
        ex.origin = conn
        ex.sent_at = monotonic()
        if ex.request_done:
            # The common case in one call: a pooled connection and a complete bodiless request.
            ex.sent_marked = True
            conn.begin(
                self,
                head_request=head.method == b"HEAD",
                read_timeout=target.read_timeout,
                now=self._last_rx,
                request=req,
                complete=True,
            )
        else:
            ex.obuf.append(req)
            conn.begin(self, head_request=False, read_timeout=target.read_timeout, now=self._last_rx)
        if self._client_write_paused:
            conn.pause_reading()

    def _connect(self, ex: _Exchange) -> None:
        assert ex.forward is not None
        ex.connect_started = monotonic()
        self._pause_client(_PAUSE_CONNECT)
        ex.connect_task = self._loop.create_task(self._connect_origin(ex, ex.forward.origin))

    async def _connect_origin(self, ex: _Exchange, target: OriginTarget) -> None:
        try:
            conn = await self._engine.pool.connect(target)
        except OriginError as err:
            ex.connect_task = None
            if self._ex is ex and not self._closing:
                self._origin_error(ex, err)
            return
        except Exception as exc:  # a bug, not the origin's fault: still answer the client
            log.exception("origin connect failed unexpectedly")
            ex.connect_task = None
            if self._ex is ex and not self._closing:
                self._origin_error(ex, OriginError("protocol", str(exc)))
            return
        ex.connect_task = None
        if self._ex is not ex or self._closing:
            conn.close()
            return
        ex.sent_at = monotonic()
        ex.result.upstream_connect = ex.sent_at - ex.connect_started
        ex.origin = conn
        conn.begin(self, head_request=ex.head.method == b"HEAD", read_timeout=target.read_timeout)
        if self._client_write_paused:
            conn.pause_reading()
        self._flush_origin(ex)
        self._resume_client(_PAUSE_CONNECT)

    def _flush_origin(self, ex: _Exchange) -> None:
        conn = ex.origin
        assert conn is not None
        obuf = ex.obuf
        if obuf:
            conn.send(obuf[0] if len(obuf) == 1 else b"".join(obuf))
            obuf.clear()
        if ex.request_done and not ex.sent_marked:
            ex.sent_marked = True
            conn.request_sent(self._loop.time())

    def _request_body(self, data: bytes) -> None:
        ex = self._ex
        assert ex is not None
        ex.result.bytes_in += len(data)
        if ex.discard:
            if ex.result.bytes_in > self._settings.discard_body_limit:
                self._finish(ex)
                self._close(linger=True)
            return
        ex.obuf.append(encode_chunk(data) if ex.head.chunked else data)

    def _request_end(self) -> None:
        ex = self._ex
        if ex is None or ex.request_done:
            return  # a bodiless request, already complete (and maybe already answered)
        ex.request_done = True
        if not ex.discard:
            if ex.head.chunked:
                ex.obuf.append(LAST_CHUNK)
            if ex.origin is not None:
                self._flush_origin(ex)
        self._maybe_finish(ex)

    def _report_rejected(self, err: RequestError) -> None:
        if self._engine.on_rejected is not None:
            try:
                self._engine.on_rejected(self.conn, err)
            except Exception:
                log.exception("on_rejected() failed")

    def _request_error(self, err: RequestError) -> None:
        ex = self._ex
        self._report_rejected(err)
        if ex is None:
            self._write_error(err.status, None)
            self._close(linger=err.status != 408)
            return
        # The current request's body turned out malformed (bad chunk, trailers too large).
        ex.result.error = err.reason
        self._abort_origin(ex)
        if ex.response_started:
            self._finish(ex)
            self._close(linger=False)
        else:
            self._error_response(ex, err.status, close=True)

    # --- responses ---------------------------------------------------------------------------

    def _send_final(
        self,
        ex: _Exchange,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        *,
        close: bool,
    ) -> None:
        """A complete response from the edge; the request body (if any) is dropped."""
        head = ex.head
        keep = not close and head.keep_alive and not self._draining
        send_body = head.method != b"HEAD"
        self._transport.write(
            simple_response(
                status,
                headers,
                body,
                close=not keep,
                keep_alive_header=keep and head.version == "1.0",
                send_body=send_body,
            )
        )
        ex.response_started = ex.response_done = True
        ex.discard = True
        ex.close_after = not keep
        ex.result.status = status
        if send_body:
            ex.result.bytes_out += len(body)
        self._maybe_finish(ex)

    def _error_response(self, ex: _Exchange, status: int, *, close: bool) -> None:
        headers, body = self._error_page(status, ex.head)
        self._send_final(ex, status, headers, body, close=close or not ex.request_done)

    def _error_page(self, status: int, head: RequestHead | None) -> tuple[Headers, bytes]:
        try:
            return self._engine.error_page(status, head)
        except Exception:
            log.exception("error_page() failed")
            return _default_error_page(status, head)

    def _write_error(self, status: int, head: RequestHead | None) -> None:
        headers, body = self._error_page(status, head)
        self._transport.write(simple_response(status, headers, body, close=True))

    # --- origin side (OriginListener) --------------------------------------------------------

    def origin_events(self, conn: OriginConnection, events: list[ResponseEvent]) -> None:
        ex = self._ex
        if ex is None or ex.origin is not conn:
            conn.close()
            return
        out: list[bytes] = []
        for ev in events:
            if isinstance(ev, BodyChunk):
                data = ev.data
                ex.result.bytes_out += len(data)
                out.append(encode_chunk(data) if ex.chunked_out else data)
            elif isinstance(ev, ResponseHead):
                out.append(self._response_head(ex, ev))
            elif isinstance(ev, ResponseError):
                if out:
                    self._transport.write(b"".join(out))
                self._origin_error(ex, OriginError("protocol", ev.reason))
                return
            else:  # MESSAGE_END
                if ex.chunked_out:
                    out.append(LAST_CHUNK)
                ex.response_done = True
        if out:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
        if ex.response_done:
            ex.origin = None
            self._engine.pool.release(conn)
            if not ex.request_done:
                # The origin answered before the whole request arrived: drop the rest, then close.
                ex.discard = True
                ex.close_after = True
                self._resume_client(_PAUSE_ORIGIN)
            self._maybe_finish(ex)

    def _response_head(self, ex: _Exchange, resp: ResponseHead) -> bytes:
        head = ex.head
        ex.response_started = True
        ex.result.status = resp.status
        ex.result.upstream_response = monotonic() - ex.sent_at
        keep = head.keep_alive and ex.request_done and not self._draining
        framing = resp.framing
        if framing == "length" or framing == "none":
            cl = resp.content_length
            line = b"content-length: %d\r\n" % cl if cl is not None and resp.status != 204 else b""
        elif head.version == "1.1":
            ex.chunked_out = True
            line = b"transfer-encoding: chunked\r\n"
        else:
            line = b""
            keep = False  # HTTP/1.0 client: the end of the body is the end of the connection
        ex.close_after = not keep
        if keep:
            connection = b"connection: keep-alive\r\n" if head.version == "1.0" else b""
        else:
            connection = b"connection: close\r\n"
        return client_response_head(resp, framing=line, connection=connection)

    def origin_failed(self, conn: OriginConnection, error: OriginError) -> None:
        ex = self._ex
        if ex is None or ex.origin is not conn:
            return
        self._origin_error(ex, error)

    def origin_write_paused(self, conn: OriginConnection, paused: bool) -> None:
        ex = self._ex
        if ex is None or ex.origin is not conn:
            return
        if paused:
            self._pause_client(_PAUSE_ORIGIN)
        else:
            self._resume_client(_PAUSE_ORIGIN)

    def _origin_error(self, ex: _Exchange, err: OriginError) -> None:
        conn = ex.origin
        ex.origin = None
        if conn is not None:
            conn.close()
        self._resume_client(_PAUSE_CONNECT | _PAUSE_ORIGIN)
        ex.result.error = err.kind
        if ex.response_started:
            # Mid-response: close, so the client sees a truncated response (short body, no last chunk).
            self._finish(ex)
            self._close(linger=False)
            return
        if (
            err.kind == "reset"
            and ex.replay is not None
            and ex.result.upstream_reused
            and not ex.retried
            and ex.request_done
        ):
            # A pooled connection the origin had already closed: replay once on a fresh one.
            ex.retried = True
            ex.result.upstream_reused = False
            ex.result.error = None
            ex.obuf = [ex.replay]
            ex.sent_marked = False
            self._connect(ex)
            return
        log.info("origin %s for connection %d: %s", err.kind, self.conn.id, err.message)
        self._error_response(ex, 504 if err.kind == "timeout" else 502, close=False)

    def _abort_origin(self, ex: _Exchange) -> None:
        if ex.origin is not None:
            ex.origin.close()
            ex.origin = None
        if ex.connect_task is not None:
            ex.connect_task.cancel()
            ex.connect_task = None

    # --- completion and closing --------------------------------------------------------------

    def _maybe_finish(self, ex: _Exchange) -> None:
        if ex is not self._ex or not ex.response_done:
            return
        if not ex.request_done and not ex.close_after:
            return  # keep reading (and dropping) the rest of the body, then carry on
        self._finish(ex)
        if ex.close_after or self._draining:
            self._close(linger=not ex.request_done)
            return
        now = self._loop.time()
        self._idle_since = now
        if self._reader.in_head:
            self._head_since = now
            self._watchdog.arm(now + self._settings.header_timeout)
        else:
            self._watchdog.arm(now + self._settings.keepalive_timeout)
        if self._pause & (_PAUSE_CONNECT | _PAUSE_ORIGIN):
            self._resume_client(_PAUSE_CONNECT | _PAUSE_ORIGIN)
        if self._pending:
            self._process()

    def _finish(self, ex: _Exchange) -> None:
        """The exchange is over (whatever happened): report it exactly once."""
        if self._ex is ex:
            self._ex = None
        if ex.origin is not None or ex.connect_task is not None:
            self._abort_origin(ex)  # the exchange ends before its origin side did
        result = ex.result
        if result.finished:
            return
        result.finished = monotonic()
        if ex.on_done is not None:
            try:
                ex.on_done(result)
            except Exception:
                log.exception("on_done() failed")

    def _close(self, *, linger: bool) -> None:
        if self._closing:
            return
        self._closing = True
        self._pending.clear()
        ex = self._ex
        if ex is not None:
            self._abort_origin(ex)
            self._finish(ex)
        if linger and self._settings.linger_timeout > 0 and not self._transport.is_closing():
            # Keep reading (and dropping) briefly: closing with unread input makes the kernel send a
            # reset, which can destroy the response we just wrote before the client reads it. On
            # TCP, half-close first so the client sees the end at once (TLS cannot half-close).
            self._pause = 0
            self._transport.resume_reading()
            if self._transport.can_write_eof():
                self._transport.write_eof()
            self._watchdog.cancel()
            self._watchdog.arm(self._loop.time() + self._settings.linger_timeout)
        else:
            self._watchdog.cancel()
            self._transport.close()

    def _pause_client(self, reason: int) -> None:
        if not self._pause and not self._closing:
            self._transport.pause_reading()
        self._pause |= reason

    def _resume_client(self, reasons: int) -> None:
        if self._pause & reasons:
            self._pause &= ~reasons
            if not self._pause and not self._closing:
                self._transport.resume_reading()

    def _on_timer(self) -> None:
        if self._closed:
            return
        if self._closing:  # the linger period is over
            self._transport.close()
            return
        now = self._loop.time()
        s = self._settings
        ex = self._ex
        if ex is None:
            if self._head_since:
                due = self._head_since + s.header_timeout
                if now >= due:
                    self._report_rejected(RequestError(408, "http.header_timeout"))
                    self._write_error(408, None)
                    self._close(linger=False)
                    return
            else:
                due = self._idle_since + (s.keepalive_timeout if self.conn.requests else s.header_timeout)
                if now >= due:
                    self._close(linger=False)
                    return
        elif self._client_write_paused:
            due = self._write_paused_since + s.send_timeout
            if now >= due:
                ex.result.error = "client_timeout"
                self._finish(ex)
                self._closing = True
                self._transport.abort()  # close() would wait for the client to read what is queued
                return
        elif not ex.request_done and not self._pause:
            due = self._last_rx + s.body_timeout
            if now >= due:
                ex.result.error = "client_timeout"
                ex.request_done = True
                self._abort_origin(ex)
                if ex.response_started:
                    self._finish(ex)
                    self._close(linger=False)
                else:
                    self._error_response(ex, 408, close=True)
                return
        else:
            due = now + s.body_timeout  # waiting on the origin: its own watchdog keeps time
        self._watchdog.arm(due)
