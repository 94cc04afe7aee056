"""certgate.edge.upstream: the origin pool against real loopback origins, on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certgate.edge.http1 import MESSAGE_END, BodyChunk, ResponseError, ResponseEvent, ResponseHead
from certgate.edge.upstream import (
    OriginConnection,
    OriginError,
    OriginPool,
    OriginTarget,
    PoolSettings,
    Watchdog,
    error_kind,
)

Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def _run(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(coro, 15))

    return _run


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Origin:
    """A loopback origin that counts its connections; `handler` serves one connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Origin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for w in self._writers:
            w.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def target(self, **kw: Any) -> OriginTarget:
        return OriginTarget("http", "127.0.0.1", self.port, **kw)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def responder(response: bytes, *, forever: bool = True) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            writer.write(response)
            await writer.drain()
            if not forever:
                return

    return handler


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Listener:
    def __init__(self) -> None:
        self.events: list[ResponseEvent] = []
        self.errors: list[OriginError] = []
        self.done = asyncio.Event()
        self.got = asyncio.Event()

    def origin_events(self, conn: OriginConnection, events: list[ResponseEvent]) -> None:
        self.events += events
        self.got.set()
        if MESSAGE_END in events or any(isinstance(e, ResponseError) for e in events):
            self.done.set()

    def origin_failed(self, conn: OriginConnection, error: OriginError) -> None:
        self.errors.append(error)
        self.done.set()

    def origin_write_paused(self, conn: OriginConnection, paused: bool) -> None:
        pass

    def body(self) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, BodyChunk))


async def exchange(
    pool: OriginPool, target: OriginTarget, request: bytes = b"GET / HTTP/1.1\r\nhost: o\r\n\r\n"
) -> tuple[OriginConnection, Listener]:
    conn = pool.checkout(target) or await pool.connect(target)
    listener = Listener()
    conn.begin(listener, head_request=request.startswith(b"HEAD"), read_timeout=target.read_timeout)
    conn.send(request)
    conn.request_sent()
    await listener.done.wait()
    return conn, listener


def test_keep_alive_connections_are_reused(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(responder(OK)) as origin:
            pool = OriginPool()
            target = origin.target()
            for _ in range(5):
                conn, listener = await exchange(pool, target)
                assert isinstance(listener.events[0], ResponseHead) and listener.body() == b"ok"
                assert conn.reusable
                pool.release(conn)
                assert pool.idle_count(target) == 1
            assert origin.connections == 1 and pool.opened == 1 and pool.reused == 4
            assert conn.exchanges == 5
            pool.close()
            assert pool.idle_count() == 0

    run(scenario())


def test_targets_differing_only_in_timeouts_share_connections(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(responder(OK)) as origin:
            pool = OriginPool()
            conn, _ = await exchange(pool, origin.target(read_timeout=1))
            pool.release(conn)
            conn2, _ = await exchange(pool, origin.target(read_timeout=2, host_header=b"x"))
            assert conn2 is conn
            pool.release(conn2)
            assert pool.checkout(origin.target(sni="other")) is None
            pool.close()

    run(scenario())


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
    ],
    ids=["connection-close", "http10", "stray-bytes"],
)
def test_connections_that_cannot_carry_another_request_are_closed(run: Run, response: bytes) -> None:
    async def scenario() -> None:
        async with Origin(responder(response)) as origin:
            pool = OriginPool()
            target = origin.target()
            conn, listener = await exchange(pool, target)
            assert listener.body() == b"ok" and not conn.reusable
            pool.release(conn)
            assert pool.idle_count(target) == 0 and not conn.is_open
            pool.close()

    run(scenario())


def test_a_connection_released_mid_response_is_never_reused(run: Run) -> None:
    async def scenario() -> None:
        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await asyncio.sleep(5)

        async with Origin(slow) as origin:
            pool = OriginPool()
            target = origin.target()
            conn = await pool.connect(target)
            listener = Listener()
            conn.begin(listener, head_request=False, read_timeout=5)
            conn.send(b"GET / HTTP/1.1\r\nhost: o\r\n\r\n")
            conn.request_sent()
            await listener.got.wait()
            assert not conn.reusable
            pool.release(conn)
            assert pool.checkout(target) is None and not conn.is_open
            pool.close()

    run(scenario())


def test_a_request_never_completely_sent_is_not_reusable(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(responder(OK)) as origin:
            pool = OriginPool()
            conn = await pool.connect(origin.target())
            listener = Listener()
            conn.begin(listener, head_request=False, read_timeout=5)
            conn.send(b"GET / HTTP/1.1\r\nhost: o\r\n\r\n")  # request_sent() never called
            await listener.done.wait()
            assert not conn.reusable
            pool.release(conn)
            assert pool.idle_count() == 0
            pool.close()

    run(scenario())


def test_refused_connection(run: Run) -> None:
    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        pool = OriginPool()
        with pytest.raises(OriginError) as info:
            await pool.connect(OriginTarget("http", "127.0.0.1", port))
        assert info.value.kind == "refused" and info.value.reason == "origin.refused"

    run(scenario())


def test_connect_timeout_covers_the_tls_handshake(run: Run) -> None:
    async def scenario() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        async with Origin(silent) as origin:
            pool = OriginPool()
            target = OriginTarget("https", "127.0.0.1", origin.port, connect_timeout=0.2, verify_tls=False)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(OriginError) as info:
                await pool.connect(target)
            assert info.value.kind == "timeout" and loop.time() - t0 < 2

    run(scenario())


def test_tls_failure_against_a_plaintext_origin(run: Run) -> None:
    async def scenario() -> None:
        async def plaintext(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await asyncio.sleep(5)

        async with Origin(plaintext) as origin:
            pool = OriginPool()
            with pytest.raises(OriginError) as info:
                await pool.connect(OriginTarget("https", "127.0.0.1", origin.port, verify_tls=False))
            assert info.value.kind == "tls"

    run(scenario())


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "origin.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("origin.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "origin.pem", tmp / "origin.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_origin(run: Run, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)

    async def scenario() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        seen_sni: list[str | None] = []
        ctx.sni_callback = lambda obj, name, c: seen_sni.append(name)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    await read_head(reader)
                    writer.write(OK)
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            # Unverified (private origin): works, and sends the SNI asked for.
            pool = OriginPool()
            target = OriginTarget("https", "127.0.0.1", port, sni="origin.test", verify_tls=False)
            conn, listener = await exchange(pool, target)
            assert listener.body() == b"ok" and seen_sni == ["origin.test"]
            pool.release(conn)
            assert pool.idle_count(target) == 1
            pool.close()
            # Verified against the system roots: the self-signed certificate is refused.
            with pytest.raises(OriginError) as info:
                await OriginPool().connect(OriginTarget("https", "127.0.0.1", port, sni="origin.test"))
            assert info.value.kind == "tls"
            # Verified against our own root: accepted.
            trusting = ssl.create_default_context(cafile=str(cert))
            pool = OriginPool(ssl_context=trusting)
            conn, listener = await exchange(pool, OriginTarget("https", "127.0.0.1", port, sni="origin.test"))
            assert listener.body() == b"ok"
            pool.release(conn)
            pool.close()
        finally:
            server.close()
            await server.wait_closed()

    run(scenario())


def test_read_timeout_for_the_first_byte_and_between_bytes(run: Run) -> None:
    async def scenario() -> None:
        async def stall_after(prefix: bytes) -> Handler:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await read_head(reader)
                writer.write(prefix)
                await asyncio.sleep(5)

            return handler

        for prefix in (b"", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"):
            async with Origin(await stall_after(prefix)) as origin:
                pool = OriginPool()
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                conn, listener = await exchange(pool, origin.target(read_timeout=0.3))
                elapsed = loop.time() - t0
                assert [e.kind for e in listener.errors] == ["timeout"]
                assert 0.25 <= elapsed < 1.5 and not conn.is_open
                pool.release(conn)
                assert pool.idle_count() == 0

    run(scenario())


def test_waiting_for_the_request_does_not_count_against_the_origin(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(responder(OK)) as origin:
            pool = OriginPool()
            conn = await pool.connect(origin.target())
            listener = Listener()
            conn.begin(listener, head_request=False, read_timeout=0.2)
            conn.send(b"GET / HTTP/1.1\r\nhost: o\r\n")
            await asyncio.sleep(0.5)  # a slow client: the origin owes nothing yet
            assert not listener.errors and conn.is_open
            conn.send(b"\r\n")
            conn.request_sent()
            await listener.done.wait()
            assert listener.body() == b"ok" and not listener.errors
            pool.release(conn)
            pool.close()

    run(scenario())


def test_idle_connections_expire_and_are_forgotten_when_closed(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(responder(OK)) as origin:
            pool = OriginPool(PoolSettings(idle_timeout=0.2))
            target = origin.target()
            conn, _ = await exchange(pool, target)
            pool.release(conn)
            assert pool.idle_count(target) == 1
            await asyncio.sleep(0.4)
            assert pool.idle_count(target) == 0 and not conn.is_open

        async with Origin(responder(OK, forever=False)) as origin:  # closes after one response
            pool = OriginPool()
            target = origin.target()
            conn, _ = await exchange(pool, target)
            pool.release(conn)
            for _ in range(100):
                if pool.idle_count(target) == 0:
                    break
                await asyncio.sleep(0.01)
            assert pool.idle_count(target) == 0 and pool.checkout(target) is None
            pool.close()

    run(scenario())


def test_max_idle_per_key(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(responder(OK)) as origin:
            pool = OriginPool(PoolSettings(max_idle_per_key=2))
            target = origin.target()
            results = await asyncio.gather(*(exchange(pool, target) for _ in range(4)))
            for conn, _ in results:
                pool.release(conn)
            assert origin.connections == 4 and pool.idle_count(target) == 2
            assert sum(c.is_open for c, _ in results) == 2
            pool.close()

    run(scenario())


def test_an_idle_origin_talking_out_of_turn_is_dropped(run: Run) -> None:
    async def scenario() -> None:
        async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_head(reader)
            writer.write(OK)
            await asyncio.sleep(0.1)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            await asyncio.sleep(5)

        async with Origin(chatty) as origin:
            pool = OriginPool()
            target = origin.target()
            conn, _ = await exchange(pool, target)
            pool.release(conn)
            await asyncio.sleep(0.3)
            assert pool.checkout(target) is None and not conn.is_open
            pool.close()

    run(scenario())


def test_origin_reset_mid_body(run: Run) -> None:
    async def scenario() -> None:
        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            await writer.drain()
            writer.transport.abort()

        async with Origin(cut) as origin:
            pool = OriginPool()
            conn, listener = await exchange(pool, origin.target())
            failures = [e.kind for e in listener.errors] + [
                e.reason for e in listener.events if isinstance(e, ResponseError)
            ]
            assert failures in (["reset"], ["http.origin.truncated"])
            assert not conn.reusable
            pool.release(conn)
            pool.close()

    run(scenario())


def test_closed_pool_refuses(run: Run) -> None:
    async def scenario() -> None:
        pool = OriginPool()
        pool.close()
        with pytest.raises(OriginError):
            await pool.connect(OriginTarget("http", "127.0.0.1", 9))

    run(scenario())


def test_watchdog_moves_later_for_free_and_earlier_on_demand(run: Run) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        dog = Watchdog(loop, lambda: fired.append(loop.time()))
        t0 = loop.time()
        dog.arm(t0 + 0.3)
        dog.arm(t0 + 5)  # later: no reschedule, still fires at 0.3 (the owner re-arms then)
        dog.arm(t0 + 0.1)  # earlier: rescheduled
        await asyncio.sleep(0.2)
        assert len(fired) == 1 and fired[0] - t0 < 0.2
        dog.arm(loop.time() + 0.05)
        dog.cancel()
        await asyncio.sleep(0.1)
        assert len(fired) == 1

    run(scenario())


def test_target_validation_and_error_kinds() -> None:
    with pytest.raises(ValueError):
        OriginTarget("ftp", "h", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OriginTarget("http", "h", 0)
    with pytest.raises(ValueError):
        OriginTarget("http", "h", 80, read_timeout=0)
    assert OriginTarget("http", "h", 80).key == ("http", "h", 80, None, True)
    assert error_kind(None) == "reset"
    assert error_kind(ConnectionResetError()) == "reset"
    assert error_kind(ConnectionRefusedError()) == "refused"
    assert error_kind(TimeoutError()) == "timeout"
    assert error_kind(OSError(errno.ETIMEDOUT, "t")) == "timeout"
    assert error_kind(ssl.SSLError()) == "tls"
    assert error_kind(OSError(errno.EHOSTUNREACH, "u")) == "refused"
    assert error_kind(ValueError()) == "protocol"
