"""Origin connections: a keep-alive pool per (scheme, host, port, SNI, verify), timeouts, errors.

Owns the sockets to origins and nothing else: what to send and what the response means for the
client is `proxy`'s job. A connection goes back to the pool only when its response ended cleanly
with keep-alive, after a complete request, with no error and no stray bytes; anything else closes it.
Every failure becomes an `OriginError` with a small `kind` the proxy maps to a status:
``refused``/``reset``/``protocol``/``tls`` → 502, ``timeout`` → 504.

Timers: one re-armable `Watchdog` per connection. Activity only records a time; the timer checks
it when it fires, so the hot path never reschedules a timer.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, cast

from certgate.edge.http1 import HTTP1Limits, ResponseEvent, ResponseReader
from certgate.errors import CertGateError

__all__ = [
    "OriginConnection",
    "OriginError",
    "OriginErrorKind",
    "OriginListener",
    "OriginPool",
    "OriginTarget",
    "PoolSettings",
    "Watchdog",
]

OriginErrorKind = Literal["refused", "reset", "timeout", "tls", "protocol"]


class OriginError(CertGateError):
    """The origin could not be reached or did not answer properly."""

    default_reason = "origin"

    def __init__(self, kind: OriginErrorKind, message: str = "") -> None:
        super().__init__(message or kind, reason=f"origin.{kind}")
        self.kind: OriginErrorKind = kind


def error_kind(exc: BaseException | None) -> OriginErrorKind:
    """Map a transport exception (None = clean EOF) to an `OriginErrorKind`."""
    if exc is None or isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in (errno.ETIMEDOUT,):
        return "timeout"
    if isinstance(exc, OSError):
        return "refused"  # unreachable, DNS failure, ...: nothing to talk to
    return "protocol"


@dataclass(frozen=True, slots=True)
class OriginTarget:
    """Where to send one request. Build these once per configuration, not per request."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    sni: str | None = None
    """TLS server name for https origins (default: `host`); ``""`` sends none."""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    """Longest wait for the origin's next byte (first byte included) while it owes us one."""
    host_header: bytes | None = None
    """Host header sent to the origin; None forwards the client's authority."""
    verify_tls: bool = True
    """Verify an https origin's certificate and name (off only for origins on a private network)."""
    key: tuple[str, str, int, str | None, bool] = field(init=False, repr=False, compare=False)
    """Pool key: connections are shared between targets that differ only in timeouts or Host."""

    def __post_init__(self) -> None:
        if self.scheme not in ("http", "https"):
            raise ValueError(f"OriginTarget.scheme must be http or https, not {self.scheme!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"OriginTarget.port out of range: {self.port}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("OriginTarget timeouts must be positive")
        object.__setattr__(self, "key", (self.scheme, self.host, self.port, self.sni, self.verify_tls))


@dataclass(frozen=True, slots=True)
class PoolSettings:
    max_idle_per_key: int = 128
    """Idle keep-alive connections kept per origin key; extra ones are closed when released."""
    idle_timeout: float = 30.0
    """An idle pooled connection is closed after this many seconds (keep it below the origin's)."""
    limits: HTTP1Limits = field(default_factory=HTTP1Limits)
    """Limits applied to origin response heads."""
    write_buffer_high: int = 256 * 1024
    write_buffer_low: int = 64 * 1024


class Watchdog:
    """One timer whose deadline can move later for free: `arm()` reschedules only if earlier.

    The owner's callback decides, from its own timestamps, whether the deadline really passed;
    if not it simply arms again for the real deadline.
    """

    __slots__ = ("_at", "_callback", "_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    def arm(self, at: float) -> None:
        if self._handle is not None:
            if self._at <= at:
                return
            self._handle.cancel()
        self._at = at
        self._handle = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._callback()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        """Cancel for good and drop the callback: the callback is a bound method of the owner,
        so keeping it would make owner → watchdog → owner a cycle that only the cyclic garbage
        collector frees (with the connection's TLS objects and buffers)."""
        self.cancel()
        self._callback = _no_callback


def _no_callback() -> None:
    pass


class OriginListener(Protocol):
    """What an active origin connection reports to (implemented by the proxy's client side)."""

    def origin_events(self, conn: OriginConnection, events: list[ResponseEvent]) -> None: ...

    def origin_failed(self, conn: OriginConnection, error: OriginError) -> None: ...

    def origin_write_paused(self, conn: OriginConnection, paused: bool) -> None: ...


_IDLE: Final = 0
_ACTIVE: Final = 1
_CLOSED: Final = 2


class OriginConnection(asyncio.Protocol):
    """One connection to an origin, carrying one exchange at a time (no pipelining)."""

    __slots__ = (
        "_last_rx",
        "_listener",
        "_loop",
        "_pool",
        "_read_paused",
        "_read_timeout",
        "_request_sent",
        "_state",
        "_transport",
        "_wait_since",
        "_watchdog",
        "_write_paused",
        "exchanges",
        "idle_since",
        "key",
        "reader",
    )

    def __init__(self, pool: OriginPool, key: tuple[str, str, int, str | None, bool]) -> None:
        self._pool = pool
        self.key = key
        self.reader = ResponseReader(pool.settings.limits)
        self._transport: asyncio.Transport | None = None
        self._listener: OriginListener | None = None
        self._state = _IDLE
        self._read_paused = False
        self._write_paused = False
        self._request_sent = False
        self._read_timeout = 30.0
        self._wait_since = 0.0
        self._last_rx = 0.0
        self.idle_since = 0.0
        self.exchanges = 0
        """Requests this connection has carried (more than one means it was reused)."""

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self._watchdog = Watchdog(self._loop, self._on_timer)
        s = self._pool.settings
        transport.set_write_buffer_limits(high=s.write_buffer_high, low=s.write_buffer_low)
        self.idle_since = self._loop.time()

    def data_received(self, data: bytes) -> None:
        listener = self._listener
        if listener is None:
            # An idle origin talking out of turn (or an unsolicited 408): never reuse it.
            self.close()
            return
        self._last_rx = self._loop.time()
        events = self.reader.feed(data)
        if events:
            listener.origin_events(self, events)

    def eof_received(self) -> bool | None:
        return None  # close; connection_lost() reports what the EOF means

    def connection_lost(self, exc: Exception | None) -> None:
        was = self._state
        self._state = _CLOSED
        self._watchdog.close()
        if was == _IDLE:
            self._pool._forget_idle(self)
        listener = self._listener
        self._listener = None
        if listener is None or was != _ACTIVE:
            return
        if exc is None:
            if self.reader.head is None and not self.reader.done:
                # Closed before a response head: a reset, whether by FIN or RST (a pooled
                # connection the origin dropped looks exactly like this).
                listener.origin_failed(self, OriginError("reset", "origin closed the connection"))
                return
            events = self.reader.feed_eof()
            if events:
                listener.origin_events(self, events)
        else:
            listener.origin_failed(self, OriginError(error_kind(exc), str(exc)))

    def pause_writing(self) -> None:
        self._write_paused = True
        self._wait_since = self._loop.time()
        if self._listener is not None:
            self._listener.origin_write_paused(self, True)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._listener is not None:
            self._listener.origin_write_paused(self, False)

    # --- used by the proxy -------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._state != _CLOSED and self._transport is not None and not self._transport.is_closing()

    @property
    def reusable(self) -> bool:
        """The exchange ended cleanly: the whole request went out and the response ended with
        keep-alive, nothing stray followed, and the socket is still open."""
        transport = self._transport
        return (
            self._state == _ACTIVE
            and self._request_sent
            and self.reader.reusable
            and transport is not None
            and not transport.is_closing()
        )

    def begin(
        self,
        listener: OriginListener,
        *,
        head_request: bool,
        read_timeout: float,
        now: float | None = None,
        request: bytes = b"",
        complete: bool = False,
    ) -> None:
        """Start an exchange: `listener` receives this connection's response events from now on.

        `now` is the event loop's time if the caller has it at hand (saves a clock read);
        `request` is written at once, and `complete` says it is the whole request (one call for
        the common bodiless request instead of begin + send + request_sent)."""
        if self._state != _IDLE:
            raise RuntimeError("OriginConnection.begin() on a busy or closed connection")
        self._state = _ACTIVE
        self._listener = listener
        self._read_timeout = read_timeout
        self.exchanges += 1
        self.reader.start(head_request=head_request)
        if self._read_paused:
            self.resume_reading()
        if now is None:
            now = self._loop.time()
        self._wait_since = now
        self._last_rx = now
        self._watchdog.arm(now + read_timeout)
        if request:
            assert self._transport is not None
            self._transport.write(request)
        self._request_sent = complete

    def send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def request_sent(self, now: float | None = None) -> None:
        """The whole request is written: the origin owes us a response from now on."""
        self._request_sent = True
        self._wait_since = self._loop.time() if now is None else now

    def pause_reading(self) -> None:
        """The client is slow: stop reading the response (its time does not count as the origin's)."""
        if not self._read_paused and self._transport is not None and not self._transport.is_closing():
            self._read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            self._wait_since = self._loop.time()
            if self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()

    def close(self) -> None:
        self._listener = None
        if self._state == _IDLE and self._transport is not None:
            self._pool._forget_idle(self)
        self._state = _CLOSED
        if self._transport is not None:
            self._watchdog.cancel()
            self._transport.close()

    # --- timeouts ----------------------------------------------------------------------------

    def _on_timer(self) -> None:
        now = self._loop.time()
        if self._state == _IDLE:
            due = self.idle_since + self._pool.settings.idle_timeout
            if now >= due:
                self.close()
            else:
                self._watchdog.arm(due)
            return
        if self._state != _ACTIVE:
            return
        # The origin owes us progress only once the request is out, or while it stops reading it;
        # time spent waiting on a slow client (reading paused) never counts against it.
        owes = (self._request_sent or self._write_paused) and not self._read_paused
        due = max(self._wait_since, self._last_rx) + self._read_timeout
        if owes and now >= due:
            listener = self._listener
            self.close()
            if listener is not None:
                listener.origin_failed(self, OriginError("timeout", "origin read timeout"))
            return
        self._watchdog.arm(due if owes else now + self._read_timeout)

    def _go_idle(self) -> None:
        self._listener = None
        self._state = _IDLE
        # Released from inside data_received (the response just ended): _last_rx is "now".
        self.idle_since = self._last_rx
        self._watchdog.arm(self._last_rx + self._pool.settings.idle_timeout)


class OriginPool:
    """Keep-alive connections to origins, shared by every client connection of one event loop."""

    def __init__(
        self,
        settings: PoolSettings | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        insecure_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings or PoolSettings()
        self._idle: dict[tuple[str, str, int, str | None, bool], deque[OriginConnection]] = {}
        self._ssl_verify = ssl_context
        self._ssl_insecure = insecure_ssl_context
        self._closed = False
        self.opened = 0
        """Connections opened since start (for tests and metrics)."""
        self.reused = 0
        """Requests sent on an already used connection."""

    def checkout(self, target: OriginTarget) -> OriginConnection | None:
        """An idle open connection for `target`, or None (then `connect`). Most recent first."""
        idle = self._idle.get(target.key)
        while idle:
            conn = idle.pop()
            if conn._state == _IDLE and conn._transport is not None and not conn._transport.is_closing():
                self.reused += 1
                return conn
        return None

    async def connect(self, target: OriginTarget) -> OriginConnection:
        """A new connection to `target`; raises `OriginError` (refused, timeout, tls, reset)."""
        if self._closed:
            raise OriginError("refused", "origin pool is closed")
        loop = asyncio.get_running_loop()
        ctx: ssl.SSLContext | None = None
        server_hostname: str | None = None
        if target.scheme == "https":
            ctx = self._context(target.verify_tls)
            server_hostname = target.host if target.sni is None else target.sni
        key = target.key
        try:
            async with asyncio.timeout(target.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: OriginConnection(self, key),
                    target.host,
                    target.port,
                    ssl=ctx,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=target.connect_timeout if ctx is not None else None,
                )
        except TimeoutError:
            raise OriginError("timeout", f"connect to {target.host}:{target.port} timed out") from None
        except OSError as exc:
            raise OriginError(error_kind(exc), f"connect to {target.host}:{target.port}: {exc}") from exc
        self.opened += 1
        return conn

    def release(self, conn: OriginConnection) -> None:
        """Take back `conn` after its exchange: kept idle if reusable, closed otherwise."""
        if conn.reusable and not self._closed:
            idle = self._idle.get(conn.key)
            if idle is None:
                idle = self._idle[conn.key] = deque()
            if len(idle) < self.settings.max_idle_per_key:
                conn._go_idle()
                idle.append(conn)
                return
        conn.close()

    def idle_count(self, target: OriginTarget | None = None) -> int:
        if target is not None:
            return len(self._idle.get(target.key, ()))
        return sum(len(d) for d in self._idle.values())

    def close(self) -> None:
        """Close every idle connection and refuse new ones (active ones close when released)."""
        self._closed = True
        for idle in list(self._idle.values()):
            while idle:
                idle.pop().close()
        self._idle.clear()

    def _forget_idle(self, conn: OriginConnection) -> None:
        idle = self._idle.get(conn.key)
        if idle:
            try:
                idle.remove(conn)
            except ValueError:
                pass

    def _context(self, verify: bool) -> ssl.SSLContext:
        if verify:
            if self._ssl_verify is None:
                ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
                ctx.set_alpn_protocols(["http/1.1"])
                self._ssl_verify = ctx
            return self._ssl_verify
        if self._ssl_insecure is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl_insecure = ctx
        return self._ssl_insecure
