"""The edge's asyncio shell: listeners, workers, signals; the one place the edge's parts meet.

One `EdgeWorker` per process (or per thread, for ``certgate up`` and tests) owns a uvloop event
loop with: the TLS listener (``create_server(..., ssl=router.listening_context)`` on a
SO_REUSEPORT socket), the proxy protocol, the origin pool, the `Decider`, the snapshot sync, the
access log and, optionally, a metrics listener. `run_edge` is ``certgate edge``: a self-check,
then N worker processes sharing the port (the kernel spreads connections over their sockets),
supervised and restarted if one dies, and stopped gracefully on SIGTERM/SIGINT.

Per connection (``on_connection``, after the handshake): the SNI the router recorded and the
client's certificates (`tls.peer_certificates`) are read **once** and kept on the connection.
Per request the client-auth verdict is recomputed from those bytes against the state in force
(a cache hit costs ~2 µs), so a revocation reaches keep-alive connections on their next request.

Graceful stop: stop accepting, let every connection finish its current response
(`ConnectionRegistry.shutdown`), wait up to ``shutdown_grace_seconds``, abort what is left, stop
the sync, flush the access log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import httpx
import uvloop

from certgate.clock import Clock
from certgate.edge import tls
from certgate.edge.accesslog import AccessLog
from certgate.edge.bundledtls import BundledTLSServer
from certgate.edge.clientauth import ClientAuthenticator
from certgate.edge.compiled import describe as describe_build
from certgate.edge.decision import PEER_CERTIFICATES, Decider, DecisionSettings
from certgate.edge.ledger import RequestLedger
from certgate.edge.metrics import EdgeMetrics, Gauges
from certgate.edge.proxy import (
    ConnectionInfo,
    ConnectionRegistry,
    make_protocol_factory,
)
from certgate.edge.settings import EdgeSettings
from certgate.edge.state import EdgeState
from certgate.edge.sync import SnapshotSync
from certgate.edge.upstream import OriginPool

__all__ = ["EdgeThread", "EdgeWorker", "bind_listener", "run_edge", "start_edge_in_thread"]

log = logging.getLogger("certgate.edge.server")


def bind_listener(host: str, port: int, *, reuse_port: bool = True) -> socket.socket:
    """A bound TCP socket (not yet listening) that other processes may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _MetricsProtocol(asyncio.Protocol):
    """A minimal HTTP/1.0 responder for ``GET /metrics`` (one request per connection)."""

    def __init__(self, render: Callable[[], bytes]) -> None:
        self._render = render
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: asyncio.Transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(10, transport.close)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if b"\r\n\r\n" not in self._buf and b"\n\n" not in self._buf:
            if len(self._buf) > 8192:
                self._transport.close()
            return
        line = self._buf.split(b"\n", 1)[0].split()
        if len(line) >= 2 and line[0] in (b"GET", b"HEAD") and line[1].split(b"?")[0] == b"/metrics":
            body = self._render()
            head = (
                b"HTTP/1.0 200 OK\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            )
            self._transport.write(head + (body if line[0] == b"GET" else b""))
        else:
            self._transport.write(b"HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()


class EdgeWorker:
    """One event loop's edge. ``await worker.run()`` serves until `stop` is called."""

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        worker_id: int = 0,
        sock: socket.socket | None = None,
        clock: Clock | None = None,
        sync_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self._sock = sock
        self._clock = clock
        self._sync_transport = sync_transport
        self.metrics = EdgeMetrics(worker=worker_id)
        self.authenticator = ClientAuthenticator(cache_size=settings.client_auth_cache_size)
        self.decider = Decider(
            self.authenticator,
            DecisionSettings(
                origin_connect_timeout=settings.origin_connect_timeout,
                origin_read_timeout=settings.origin_read_timeout,
                verify_origin_tls=settings.verify_origin_tls,
                fail_closed_on_rule_errors=settings.fail_closed_on_rule_errors,
            ),
        )
        self.tls_factory = tls.TLSContextFactory(settings.tls)
        self.router = tls.SNIRouter(self.tls_factory, unknown_sni=settings.unknown_sni)
        self.registry = ConnectionRegistry()
        self.pool = OriginPool(settings.pool)
        self.ledger = RequestLedger(self.decider, self.metrics, worker_id=worker_id, clock=clock)
        self.sync: SnapshotSync | None = None
        self.address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.snapshot_applied_at = 0.0
        self._applied: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._count_client_hellos()

    # -- wiring -----------------------------------------------------------------------------------

    @property
    def access_log(self) -> AccessLog | None:
        return self.ledger.access_log

    @access_log.setter
    def access_log(self, value: AccessLog | None) -> None:
        self.ledger.access_log = value

    def _count_client_hellos(self) -> None:
        # Counting handshakes that reached the SNI callback (every ClientHello does, SNI or not)
        # against completed ones gives the failed-handshake count, which uvloop does not report.
        metrics = self.metrics

        def counting() -> None:
            metrics.tls_handshakes_started += 1

        self.router.on_client_hello = counting

    def _now(self) -> dt.datetime:
        return self._clock.now() if self._clock is not None else dt.datetime.now(dt.UTC)

    def apply(self, state: EdgeState) -> None:
        """Serve ``state`` from the next request and handshake on (loop thread)."""
        self.decider.set_state(state)
        self.router.replace(state.tls_contexts)
        self.snapshot_applied_at = time.time()
        if self._applied is not None:
            self._applied.set()  # wakes `wait_for_version`; a fresh event waits for the next one
            self._applied = asyncio.Event()

    @property
    def state(self) -> EdgeState | None:
        return self.decider.state

    def _on_connection(self, conn: ConnectionInfo) -> None:
        sslobj = conn.ssl_object
        if sslobj is None:
            return
        self.metrics.tls_handshakes_completed += 1
        conn.sni = self.router.server_name(sslobj)
        conn.state[PEER_CERTIFICATES] = tls.peer_certificates(sslobj)
        conn.state["tls_version"] = sslobj.version()

    def gauges(self) -> Gauges:
        state = self.decider.state
        log_ = self.access_log
        return Gauges(
            snapshot_version=state.version if state is not None else 0,
            snapshot_generated_at=float(state.snapshot.generated_at) if state is not None else 0.0,
            snapshot_applied_at=self.snapshot_applied_at,
            open_connections=len(self.registry),
            idle_origin_connections=self.pool.idle_count(),
            client_auth_cache_entries=len(self.authenticator),
            client_auth_cache_hits=self.authenticator.hits,
            client_auth_cache_misses=self.authenticator.misses,
            access_log_written=log_.written if log_ is not None else 0,
            access_log_dropped=log_.dropped if log_ is not None else 0,
        )

    def render_metrics(self) -> bytes:
        return self.metrics.render(self.gauges(), now=time.time())

    # -- running ----------------------------------------------------------------------------------

    async def run(self, *, ready: Callable[[EdgeWorker], None] | None = None) -> None:
        """Start everything, call ``ready(self)``, serve until `stop`, then shut down gracefully."""
        s = self.settings
        loop = self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._applied = asyncio.Event()
        self.access_log = AccessLog(s.access_log)
        clock: Clock = self._clock if self._clock is not None else _UTCClock()
        self.sync = SnapshotSync(
            s,
            self.apply,
            clock=clock,
            tls_factory=self.tls_factory,
            metrics=self.metrics,
            transport=self._sync_transport,
        )
        server: asyncio.Server | BundledTLSServer | None = None
        metrics_server: asyncio.Server | None = None
        sync_task: asyncio.Task[None] | None = None
        try:
            await self.sync.load_persisted()
            sock = self._sock
            if sock is None:
                sock = self._sock = bind_listener(*s.listen_address)
            factory = make_protocol_factory(
                self.ledger.decide,
                s.proxy,
                self.pool,
                registry=self.registry,
                error_page=self.ledger.error_page,
                on_connection=self._on_connection,
                on_rejected=self.ledger.rejected,
            )
            listening = self.router.listening_context
            if isinstance(listening, ssl.SSLContext):
                server = await loop.create_server(
                    factory,
                    sock=sock,
                    ssl=listening,
                    backlog=s.backlog,
                    ssl_handshake_timeout=s.ssl_handshake_timeout,
                    ssl_shutdown_timeout=s.ssl_shutdown_timeout,
                )
            else:
                server = BundledTLSServer(
                    loop,
                    sock,
                    factory,
                    listening,
                    handshake_timeout=s.ssl_handshake_timeout,
                    max_intermediates=tls.MAX_CLIENT_INTERMEDIATES,
                    backlog=s.backlog,
                    shutdown_timeout=s.ssl_shutdown_timeout,
                )
                await server.start()
            name = sock.getsockname()
            self.address = (name[0], name[1])
            metrics_at = s.metrics_address(self.worker_id)
            if metrics_at is not None:
                metrics_server = await loop.create_server(
                    lambda: _MetricsProtocol(self.render_metrics),
                    metrics_at[0],
                    metrics_at[1],
                    reuse_address=True,
                )
                mname = metrics_server.sockets[0].getsockname()
                self.metrics_address = (mname[0], mname[1])
            sync_task = loop.create_task(self.sync.run(), name=f"certgate-edge-sync-{self.worker_id}")
            log.info(
                "edge worker %d listening on %s:%d (snapshot %s)",
                self.worker_id,
                self.address[0],
                self.address[1],
                self.sync.version if self.sync.version is not None else "none yet",
            )
            if ready is not None:
                ready(self)
            await self._stop.wait()
        finally:
            await self._shutdown(server, metrics_server, sync_task)

    async def _shutdown(
        self,
        server: asyncio.Server | BundledTLSServer | None,
        metrics_server: asyncio.Server | None,
        sync_task: asyncio.Task[None] | None,
    ) -> None:
        if server is not None:
            server.close()  # stop accepting; open connections are ours to finish
        self.registry.shutdown()
        if not await self.registry.wait_closed(self.settings.shutdown_grace_seconds):
            log.warning(
                "worker %d: %d connections still open after the grace period; aborting",
                self.worker_id,
                len(self.registry),
            )
            self.registry.abort()
            await self.registry.wait_closed(1.0)
        if sync_task is not None:
            sync_task.cancel()
            try:
                await sync_task
            except asyncio.CancelledError:
                pass
        if metrics_server is not None:
            metrics_server.close()
        self.pool.close()
        if server is not None:
            try:
                async with asyncio.timeout(2):
                    await server.wait_closed()
            except TimeoutError:
                pass
        if self._sock is not None:
            self._sock.close()
        if self.access_log is not None:
            self.access_log.close()
        log.info("edge worker %d stopped", self.worker_id)

    def stop(self) -> None:
        """Begin a graceful shutdown (call on the loop thread; see `stop_threadsafe`)."""
        if self._stop is not None:
            self._stop.set()

    def stop_threadsafe(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.stop)

    async def wait_for_version(self, version: int) -> None:
        """Return once the state in force has at least ``version`` (wrap in a timeout)."""
        while self.state is None or self.state.version < version:
            assert self._applied is not None, "the worker is not running"
            await self._applied.wait()


class _UTCClock:
    """Wall time with microseconds (the verdicts compare Unix seconds; truncation buys nothing)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------------------------------------
# In a thread: ``certgate up`` and tests


class EdgeThread:
    """One `EdgeWorker` on a uvloop event loop in a daemon thread::

    with EdgeThread(settings) as edge:
        connect to edge.port ...
    """

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        clock: Clock | None = None,
        sync_transport: httpx.AsyncBaseTransport | None = None,
        self_check: bool = True,
    ) -> None:
        self.settings = settings
        self.worker = EdgeWorker(settings, clock=clock, sync_transport=sync_transport)
        self._self_check = self_check
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="certgate-edge", daemon=True)

    @property
    def port(self) -> int:
        assert self.worker.address is not None, "the edge is not running"
        return self.worker.address[1]

    @property
    def host(self) -> str:
        assert self.worker.address is not None, "the edge is not running"
        return self.worker.address[0]

    def _main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self.worker.run(ready=lambda _: self._ready.set()))
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 15.0) -> EdgeThread:
        if self._self_check:
            tls.self_check(self.settings.tls)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the edge did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the edge did not start: {self._error!r}") from self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.worker.stop_threadsafe()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the edge did not stop in time")

    def wait_for_version(self, version: int, timeout: float = 10.0) -> bool:
        """Block until the edge serves a snapshot of at least ``version``."""
        loop = self.worker._loop
        assert loop is not None, "the edge is not running"

        async def wait() -> bool:
            try:
                async with asyncio.timeout(timeout):
                    await self.worker.wait_for_version(version)
            except TimeoutError:
                return False
            return True

        return asyncio.run_coroutine_threadsafe(wait(), loop).result(timeout + 1)

    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn()`` on the edge's loop and return its result (read state without races)."""
        loop = self.worker._loop
        assert loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def __enter__(self) -> EdgeThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_edge_in_thread(settings: EdgeSettings, *, clock: Clock | None = None) -> EdgeThread:
    """Start one edge worker in a daemon thread (``certgate up``); returns once it listens."""
    return EdgeThread(settings, clock=clock).start()


# ------------------------------------------------------------------------------------------------
# Processes: ``certgate edge``


def _install_stop_signals(worker: EdgeWorker) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)


async def _serve_in_process(worker: EdgeWorker) -> None:
    await worker.run(ready=lambda w: _install_stop_signals(w))


def _worker_main(settings: EdgeSettings, worker_id: int, port: int, log_level: str) -> None:
    """Entry point of a worker process."""
    _configure_logging(log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the loop's own handlers are installed
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    host, _ = settings.listen_address
    try:
        tls.self_check(settings.tls)
        sock = bind_listener(host, port)
        worker = EdgeWorker(settings, worker_id=worker_id, sock=sock)
        uvloop.run(_serve_in_process(worker))
    except KeyboardInterrupt:
        pass


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )


_RESTART_DELAY_MAX: Final = 10.0


def run_edge(settings: EdgeSettings, *, clock: Clock | None = None) -> int:
    """``certgate edge``: serve until SIGTERM/SIGINT. Returns the process exit code.

    One worker runs in this process; more are separate processes on the same port
    (SO_REUSEPORT), each with its own snapshot sync, caches, access-log writer and metrics port.
    The parent only supervises: it restarts a worker that dies (with backoff) and forwards
    SIGTERM to all of them on shutdown.
    """
    _configure_logging(settings.log_level)
    tls.self_check(settings.tls)  # fail before binding anything if mTLS cannot work here
    log.info("certgate edge: %s; %s", describe_build(), tls.describe_engine(settings.tls))
    if settings.tls.engine == "auto" and settings.tls.resolved_engine() == "stdlib":
        log.warning("cryptography's OpenSSL binding lacks what the bundled TLS engine needs: using stdlib")
    count = settings.worker_count
    host, port = settings.listen_address
    if count == 1:
        worker = EdgeWorker(settings, clock=clock)
        uvloop.run(_serve_in_process(worker))
        return 0

    # Hold the port (bound, never listening) so port 0 resolves once and every worker binds it.
    reserve = bind_listener(host, port)
    port = reserve.getsockname()[1]
    # fork is safe here (this process runs no threads) and starts workers at once; spawn otherwise.
    method = "fork" if threading.active_count() == 1 else "spawn"
    mp: Any = multiprocessing.get_context(method)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    procs: dict[int, Any] = {}
    started: dict[int, float] = {}
    failures: dict[int, int] = {}

    def spawn(i: int) -> None:
        p = mp.Process(
            target=_worker_main, args=(settings, i, port, settings.log_level), name=f"certgate-edge-{i}"
        )
        p.start()
        procs[i] = p
        started[i] = time.monotonic()

    log.info("certgate edge on %s:%d with %d workers (%s)", host, port, count, method)
    exit_code = 0
    try:
        for i in range(count):
            spawn(i)
        restart_at: dict[int, float] = {}
        while not stopping.is_set():
            multiprocessing.connection.wait([p.sentinel for p in procs.values()], timeout=0.5)
            now = time.monotonic()
            for i, p in list(procs.items()):
                if p.is_alive() or stopping.is_set():
                    continue
                if i not in restart_at:
                    quick = now - started[i] < 5
                    failures[i] = failures.get(i, 0) + 1 if quick else 1
                    delay = min(_RESTART_DELAY_MAX, 0.5 * 2 ** (failures[i] - 1))
                    log.error("worker %d exited with %s; restarting in %.1f s", i, p.exitcode, delay)
                    restart_at[i] = now + delay
                elif now >= restart_at[i]:
                    del restart_at[i]
                    spawn(i)
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()  # SIGTERM: graceful in the worker
        deadline = time.monotonic() + settings.shutdown_grace_seconds + 5
        for p in procs.values():
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                log.error("worker %s did not stop in time; killing it", p.name)
                p.kill()
                p.join(5)
                exit_code = 1
        reserve.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.info("certgate edge stopped")
    return exit_code
