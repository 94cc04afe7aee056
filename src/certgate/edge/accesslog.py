"""The edge's access log: one JSON object per line and per request, every client-cert field included.

`entry()` turns what the decision and the proxy learned into a plain dict (pure, testable);
`AccessLog` serialises it and gets it to stdout or a file without blocking the event loop on the
write: lines are batched on the loop (up to ``batch_lines`` or ``flush_interval`` seconds) and a
writer thread does the blocking ``write(2)``. If the destination stalls (a full pipe, a slow
disk) and more than ``max_pending_bytes`` wait, new lines are dropped and counted in
``dropped`` (exported as a metric) rather than growing memory without bound or stalling traffic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any, Final

from certgate.edge.clientauth import ClientAuth
from certgate.edge.decision import RequestRecord
from certgate.edge.http1 import RequestError, RequestHead
from certgate.edge.proxy import ConnectionInfo, ExchangeResult

__all__ = ["CERT_FIELDS", "AccessLog", "entry", "rejected_entry", "utc_iso"]

log = logging.getLogger("certgate.edge.accesslog")

CERT_FIELDS: Final = (
    "cert_presented",
    "cert_verified",
    "cert_revoked",
    "cert_status",
    "cert_fingerprint_sha256",
    "cert_serial",
    "cert_subject_dn",
    "cert_issuer_dn",
    "cert_ski",
    "cert_issuer_ski",
    "cert_not_before",
    "cert_not_after",
)
"""Every ``tls.client_auth.*`` field of PRODUCT §4, logged under its short name."""

_last_second: tuple[int, str] = (-1, "")
_last_ms: tuple[int, int, str] = (-1, -1, "")


def utc_iso(t: float) -> str:
    """``2026-05-01T12:00:00.123Z`` (the date part is formatted once per second, the whole once
    per millisecond: a busy worker logs many requests in the same one)."""
    global _last_second, _last_ms
    second = int(t)
    ms = int((t - second) * 1000)
    last = _last_ms  # (one tuple, read once: safe with several event loops in one process)
    if last[1] == ms and last[0] == second:
        return last[2]
    day = _last_second
    if day[0] != second:
        day = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    iso = f"{day[1]}.{ms:03d}Z"
    _last_ms = (second, ms, iso)
    return iso


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _cert(auth: ClientAuth, out: dict[str, Any]) -> None:
    for name in CERT_FIELDS:
        out[name] = getattr(auth, name)


def entry(
    conn: ConnectionInfo,
    head: RequestHead,
    record: RequestRecord,
    result: ExchangeResult,
    *,
    worker: int,
    received_at: float,
) -> dict[str, Any]:
    """The access-log object of one request that reached the decision."""
    origin = record.origin
    out: dict[str, Any] = {
        "time": utc_iso(received_at),
        "request_id": record.request_id,
        "worker": worker,
        "connection": conn.id,
        "client_ip": conn.peer_ip,
        "client_port": conn.peer_port,
        "tls": conn.tls,
        "tls_version": conn.state.get("tls_version"),
        "sni": conn.sni,
        "host": record.host,
        "method": head.method.decode("ascii"),
        "uri": head.target.decode("latin-1"),
        "http_version": head.version,
        "user_agent": (head.header(b"user-agent") or b"").decode("latin-1"),
        "status": result.status,
        "outcome": record.outcome,
        "bytes_in": result.bytes_in,
        "bytes_out": result.bytes_out,
        "duration_ms": _ms(result.duration),
        "upstream": f"{origin.scheme}://{origin.host}:{origin.port}" if origin is not None else None,
        "upstream_connect_ms": _ms(result.upstream_connect),
        "upstream_response_ms": _ms(result.upstream_response),
        "upstream_reused": result.upstream_reused,
        "error": result.error or record.error or None,
        "rule_id": record.rule_id,
        "rule_action": record.rule_action or None,
        "monitor_rules": list(record.monitored),
        "snapshot_version": record.snapshot_version,
    }
    _cert(record.auth, out)
    return out


_ENCODE: Final[Callable[[Any], str]] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=str
).encode


def _connection_fragment(conn: ConnectionInfo, worker: int) -> str:
    # The same for every request of the connection: encoded once, kept on the connection.
    cached: str | None = conn.state.get("_log_connection")
    if cached is None:
        tls_version = conn.state.get("tls_version")
        sni = conn.sni
        cached = (
            f'"worker":{worker!r},"connection":{conn.id!r},"client_ip":{_STR(conn.peer_ip)},'
            f'"client_port":{conn.peer_port!r},"tls":{_TRUE if conn.tls else _FALSE},'
            f'"tls_version":{_NULL if tls_version is None else _STR(str(tls_version))},'
            f'"sni":{_NULL if sni is None else _STR(sni)}'
        )
        conn.state["_log_connection"] = cached
    return cached


_CERT_FRAGMENTS: Final[dict[int, tuple[ClientAuth, str]]] = {}


def _cert_fragment(auth: ClientAuth) -> str:
    # Verdicts are shared immutable objects (one per certificate and status), so the same object
    # comes back request after request and connection after connection: encode it once.
    cached = _CERT_FRAGMENTS.get(id(auth))
    if cached is not None and cached[0] is auth:
        return cached[1]
    fragment = _ENCODE({name: getattr(auth, name) for name in CERT_FIELDS})[1:-1]
    if len(_CERT_FRAGMENTS) >= 1024:
        _CERT_FRAGMENTS.clear()
    _CERT_FRAGMENTS[id(auth)] = (auth, fragment)  # the entry keeps `auth` alive: its id stays its own
    return fragment


def encode_entry(
    conn: ConnectionInfo,
    head: RequestHead,
    record: RequestRecord,
    result: ExchangeResult,
    *,
    worker: int,
    received_at: float,
) -> str:
    """`entry()` as one JSON line, fast: what stays the same from one request of a connection to
    the next is encoded once.

    The line is the per-request part (time, id, target, status, sizes, timings, error) as one
    f-string, then a fragment with everything a keep-alive connection usually repeats (host,
    method, version, user agent, outcome, upstream, rules, snapshot version, the connection's
    facts and the certificate verdict), kept on the connection and rebuilt whenever any of its
    inputs differs. The same JSON values as `entry()`'s (strings through the encoder's own
    escaping function, integers as ``repr``); the key order differs, and the milliseconds are
    written with exactly three decimals (``1.500``: the value ``round(x, 3)`` has, formatted
    directly, which costs less than ``repr(round(...))``).
    """
    error = result.error or record.error or None
    connect = result.upstream_connect
    response = result.upstream_response
    cached: _StableMemo | None = conn.state.get("_log_request")
    headers = head.headers
    # The User-Agent of the same headers tuple (shared by a connection's heads with the same
    # field block) is the same; another block (a new Cookie) is searched again.
    ua = cached[1] if cached is not None and cached[0] is headers else head.header(b"user-agent")
    key = (
        ua,
        head.method,
        head.version,
        record.host,
        record.outcome,
        record.origin,
        record.rule_id,
        record.rule_action,
        record.monitored,
        record.snapshot_version,
        record.auth,
    )
    if cached is not None and cached[2] == key:
        stable = cached[3]
        if cached[0] is not headers:
            conn.state["_log_request"] = (headers, ua, key, stable)
    else:
        stable = _stable_fragment(conn, head, record, worker, ua)
        conn.state["_log_request"] = (headers, ua, key, stable)
    return (
        f'{{"time":"{utc_iso(received_at)}","request_id":{_STR(record.request_id)},'
        f'"uri":{_STR(head.target.decode("latin-1"))},"status":{result.status!r},'
        f'"bytes_in":{result.bytes_in!r},"bytes_out":{result.bytes_out!r},'
        f'"duration_ms":{(result.finished - result.started) * 1000:.3f},'
        f'"upstream_connect_ms":{_NULL if connect is None else f"{connect * 1000:.3f}"},'
        f'"upstream_response_ms":{_NULL if response is None else f"{response * 1000:.3f}"},'
        f'"upstream_reused":{_TRUE if result.upstream_reused else _FALSE},'
        f'"error":{_NULL if error is None else _STR(error)},{stable}}}'
    )


_StableMemo = tuple[tuple[tuple[bytes, bytes], ...], bytes | None, tuple[object, ...], str]
"""Kept on the connection: (headers tuple, its User-Agent, the inputs of the fragment, the fragment)."""


def _stable_fragment(
    conn: ConnectionInfo, head: RequestHead, record: RequestRecord, worker: int, ua: bytes | None
) -> str:
    origin = record.origin
    rule_id = record.rule_id
    monitored = record.monitored
    upstream = _STR(f"{origin.scheme}://{origin.host}:{origin.port}") if origin is not None else _NULL
    return (
        f'"host":{_STR(record.host)},"method":{_STR(head.method.decode("ascii"))},'
        f'"http_version":{_STR(head.version)},'
        f'"user_agent":{_STR(ua.decode("latin-1")) if ua else _EMPTY},'
        f'"outcome":{_STR(record.outcome)},"upstream":{upstream},'
        f'"rule_id":{_NULL if rule_id is None else repr(rule_id)},'
        f'"rule_action":{_STR(record.rule_action) if record.rule_action else _NULL},'
        f'"monitor_rules":[{",".join(map(repr, monitored)) if monitored else ""}],'
        f'"snapshot_version":{record.snapshot_version!r},'
        f"{_connection_fragment(conn, worker)},{_cert_fragment(record.auth)}"
    )


_STR: Final[Callable[[str], str]] = encode_basestring
"""The string encoder `json` itself uses with ``ensure_ascii=False`` (quotes included)."""
_NULL: Final = "null"
_TRUE: Final = "true"
_FALSE: Final = "false"
_EMPTY: Final = '""'


def rejected_entry(
    conn: ConnectionInfo,
    error: RequestError,
    *,
    request_id: str,
    worker: int,
    received_at: float,
    snapshot_version: int,
) -> dict[str, Any]:
    """The access-log object of a request refused before the decision (400, 408, 431, ...)."""
    out: dict[str, Any] = {
        "time": utc_iso(received_at),
        "request_id": request_id,
        "worker": worker,
        "connection": conn.id,
        "client_ip": conn.peer_ip,
        "client_port": conn.peer_port,
        "tls": conn.tls,
        "tls_version": conn.state.get("tls_version"),
        "sni": conn.sni,
        "host": None,
        "status": error.status,
        "outcome": "rejected",
        "error": error.reason,
        "snapshot_version": snapshot_version,
    }
    return out


class AccessLog:
    """Batches JSON lines on the event loop; a daemon thread writes them. Loop-thread only API.

    ``destination``: ``"-"`` (stdout), a path (appended, created 0640), an open file descriptor
    (not closed here), or None (disabled).
    """

    def __init__(
        self,
        destination: str | int | None,
        *,
        batch_lines: int = 256,
        flush_interval: float = 0.05,
        max_pending_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.destination = destination
        self._batch_lines = batch_lines
        self._flush_interval = flush_interval
        self._max_pending = max_pending_bytes
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._pending = 0  # bytes handed to the thread and not yet written
        self._pending_lock = threading.Lock()
        self._writer_thread: threading.Thread | None = None
        self._fd = -1
        self._owns_fd = False
        self._encode = _ENCODE
        self.written = 0
        self.dropped = 0
        self.write_errors = 0
        if destination is None:
            return
        if destination == "-":
            self._fd = 1
        elif isinstance(destination, int):  # an open descriptor the caller keeps owning
            self._fd = destination
        else:
            self._fd = os.open(destination, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._owns_fd = True
        self._writer_thread = threading.Thread(target=self._writer, name="certgate-access-log", daemon=True)
        self._writer_thread.start()

    @property
    def enabled(self) -> bool:
        return self._writer_thread is not None

    def write(self, obj: dict[str, Any]) -> None:
        if self._writer_thread is not None:
            self.write_line(self._encode(obj))

    def write_line(self, line: str) -> None:
        """Queue one already encoded JSON object (no newline)."""
        if self._writer_thread is None:
            return
        self._lines.append(line)
        if len(self._lines) >= self._batch_lines:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines = self._lines
        self._lines = []
        count = len(lines)
        lines.append("")  # the last line's newline, without copying the joined batch once more
        data = "\n".join(lines).encode("utf-8", "surrogateescape")
        with self._pending_lock:
            if self._pending + len(data) > self._max_pending:
                self.dropped += count
                return
            self._pending += len(data)
        self.written += count
        self._queue.put(data)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered, stop the thread, close the file."""
        if self._writer_thread is None:
            return
        self.flush()
        self._queue.put(None)
        self._writer_thread.join(timeout)
        self._writer_thread = None
        if self._owns_fd:
            os.close(self._fd)
            self._fd = -1

    def _writer(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            except OSError as exc:
                self.write_errors += 1
                log.warning("access log write failed: %s", exc)
            finally:
                with self._pending_lock:
                    self._pending -= len(data)
