"""certgate.edge.proxy end to end on loopback: real clients, the proxy, real origin servers.

Every test runs on the stdlib event loop and on uvloop (what the edge runs). Origins parse what the
proxy sends with h11, an independent parser, so a malformed forwarded request fails the test.
Plain TCP only: the TLS layer wraps this same protocol with ``create_server(..., ssl=ctx)``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certgate.edge.bundledtls import BundledTLSContext, BundledTLSServer
from certgate.edge.http1 import HTTP1Limits, RequestError, RequestHead
from certgate.edge.proxy import (
    ConnectionInfo,
    ConnectionRegistry,
    Decision,
    ExchangeResult,
    Forward,
    ProxySettings,
    Respond,
    make_protocol_factory,
)
from certgate.edge.tls import TLSContextFactory, TLSSettings
from certgate.edge.upstream import OriginPool, OriginTarget, PoolSettings
from certgate.snapshot.format import EdgeTLSCertificate

Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def _run(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(coro, 20))

    return _run


# --- origin ----------------------------------------------------------------------------------------


@dataclass
class Received:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def get(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]


class OriginConn:
    """One origin-side connection: reads requests with h11, writes raw bytes."""

    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self._buf = b""

    async def request(self, *, body: bool = True) -> Received | None:
        """The next complete request, or None at EOF. With body=False, only the head is read."""
        conn = h11.Connection(h11.SERVER)
        if self._buf:
            conn.receive_data(self._buf)
            self._buf = b""
        req: h11.Request | None = None
        data = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await self.reader.read(256 * 1024)
                conn.receive_data(chunk)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                req = event
                self.origin.heads.append(event.target)
                if not body:
                    return Received(event.method, event.target, list(event.headers), b"")
            elif isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert req is not None
                self._buf = conn.trailing_data[0]
                got = Received(req.method, req.target, list(req.headers), bytes(data))
                self.origin.requests.append(got)
                return got

    def send(self, data: bytes) -> None:
        self.writer.write(data)


Handler = Callable[[OriginConn], Awaitable[None]]


def ok_handler(body: bytes = b"ok", extra: bytes = b"") -> Handler:
    async def handler(c: OriginConn) -> None:
        while (req := await c.request()) is not None:
            payload = b"" if req.method == b"HEAD" else body
            c.send(b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), payload))

    return handler


class Origin:
    def __init__(self, handler: Handler, *, rcvbuf: int | None = None, sndbuf: int | None = None) -> None:
        self.handler = handler
        self.rcvbuf = rcvbuf
        self.sndbuf = sndbuf
        self.connections = 0
        self.heads: list[bytes] = []
        self.requests: list[Received] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Origin:
        sock = socket.socket()
        if self.rcvbuf is not None:  # inherited by accepted sockets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        if self.sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        sock.bind(("127.0.0.1", 0))
        self.server = await asyncio.start_server(self._serve, sock=sock)
        self.port = sock.getsockname()[1]
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
            await self.handler(OriginConn(self, reader, writer))
            await writer.drain()
        except (ConnectionError, h11.RemoteProtocolError):
            pass
        finally:
            writer.close()

    def target(self, **kw: Any) -> OriginTarget:
        return OriginTarget("http", "127.0.0.1", self.port, **kw)


# --- client -----------------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def get(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n == name:
                return v
        return None


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def head(self) -> Resp:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b": ")
            assert sep, line
            headers.append((name.lower(), value))
        return Resp(status, headers, b"")

    async def response(self, *, head_request: bool = False) -> Resp:
        resp = await self.head()
        te, cl = resp.get(b"transfer-encoding"), resp.get(b"content-length")
        assert te is None or cl is None, resp
        if head_request or resp.status in (100, 204, 304):
            return resp
        if te is not None:
            assert te == b"chunked", te
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                if size == 0:
                    assert await self.reader.readexactly(2) == b"\r\n"
                    break
                body += await self.reader.readexactly(size)
                assert await self.reader.readexactly(2) == b"\r\n"
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = await self.reader.readexactly(int(cl))
        else:
            resp.body = await self.reader.read()
        return resp

    async def closed(self, within: float = 2.0) -> bool:
        """True if the proxy closes the connection (EOF) within `within` seconds, sending nothing."""
        try:
            async with asyncio.timeout(within):
                return await self.reader.read(1) == b""
        except TimeoutError:
            return False

    def close(self) -> None:
        self.writer.close()


# --- proxy under test --------------------------------------------------------------------------------


@dataclass
class Edge:
    port: int
    pool: OriginPool
    registry: ConnectionRegistry
    results: list[ExchangeResult] = field(default_factory=list)
    rejected: list[RequestError] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    async def tls_client(self, server_hostname: str) -> Client:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=ctx, server_hostname=server_hostname
        )
        c = Client(reader, writer)
        self.clients.append(c)
        return c

    async def client(
        self, *, rcvbuf: int | None = None, sndbuf: int | None = None, tls: bool = False
    ) -> Client:
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            reader, writer = await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname="a.test")
        else:
            reader, writer = await asyncio.open_connection(sock=sock)
        c = Client(reader, writer)
        self.clients.append(c)
        return c

    def buffered(self) -> int:
        return max((sum(p.buffered()) for p in self.registry), default=0)


@asynccontextmanager
async def edge(
    decide: Callable[[ConnectionInfo, RequestHead], Decision],
    settings: ProxySettings | None = None,
    pool: OriginPool | None = None,
    ssl_context: ssl.SSLContext | None = None,
    bundled_context: BundledTLSContext | None = None,
    **kw: Any,
) -> AsyncIterator[Edge]:
    pool = pool or OriginPool()
    registry = ConnectionRegistry()
    holder: list[Edge] = []

    def on_rejected(conn: ConnectionInfo, err: RequestError) -> None:
        holder[0].rejected.append(err)

    factory = make_protocol_factory(
        decide, settings or ProxySettings(), pool, registry=registry, on_rejected=on_rejected, **kw
    )
    server: asyncio.Server | BundledTLSServer
    if bundled_context is not None:  # the default engine's transport (edge/bundledtls.py)
        sock = socket.create_server(("127.0.0.1", 0))
        server = BundledTLSServer(
            asyncio.get_running_loop(),
            sock,
            factory,
            bundled_context,
            handshake_timeout=5,
            max_intermediates=8,
        )
        await server.start()
        port = sock.getsockname()[1]
    else:
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0, ssl=ssl_context)
        port = server.sockets[0].getsockname()[1]
    e = Edge(port, pool, registry)
    holder.append(e)
    try:
        yield e
    finally:
        server.close()
        for c in e.clients:
            c.close()
        registry.abort()
        pool.close()
        await server.wait_closed()
        await asyncio.sleep(0)


def forward_to(
    origin: Origin, results: list[ExchangeResult] | None = None, **kw: Any
) -> Callable[..., Decision]:
    target = origin.target(**kw)

    def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
        return Forward(
            target,
            [(b"client-cert-status", b"none")],
            on_done=results.append if results is not None else None,
        )

    return decide


GET = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"


# --- the happy path ---------------------------------------------------------------------------------


def test_forwarded_request_and_response_headers(run: Run) -> None:
    async def scenario() -> None:
        async def handler(c: OriginConn) -> None:
            while await c.request() is not None:
                c.send(
                    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\n"
                    b"X-Internal: secret\r\nX-Public: yes\r\nContent-Length: 2\r\n\r\nok"
                )

        async with Origin(handler) as origin:
            results: list[ExchangeResult] = []
            seen: list[ConnectionInfo] = []
            target = origin.target()

            def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
                seen.append(conn)
                conn.state["n"] = conn.state.get("n", 0) + 1
                extra = [(b"client-cert", b":AAAA:"), (b"client-cert-status", b"valid")]
                return Forward(target, extra, on_done=results.append)

            async with edge(decide) as e:
                c = await e.client()
                c.send(
                    b"GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: t\r\n"
                    b"Connection: keep-alive, X-Hop\r\n"
                    b"X-Hop: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n"
                    b"Client-Cert: :Zm9yZ2Vk:\r\nClient-Cert-Chain: :Zm9yZ2Vk:\r\n"
                    b"Client-Cert-Status: valid\r\n"
                    b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\n\r\n"
                )
                resp = await c.response()
                assert resp.status == 200 and resp.body == b"ok"
                assert resp.headers == [(b"x-public", b"yes"), (b"content-length", b"2")]
                c.send(GET)
                assert (await c.response()).status == 200

            (req, _) = origin.requests
            assert req.method == b"GET" and req.target == b"/p?q=1"
            assert req.headers == [
                (b"host", b"a.test"),
                (b"user-agent", b"t"),
                (b"x-forwarded-for", b"127.0.0.1"),
                (b"x-forwarded-proto", b"http"),
                (b"client-cert", b":AAAA:"),
                (b"client-cert-status", b"valid"),
            ]
            assert seen[0] is seen[1] and seen[0].state == {"n": 2} and seen[0].requests == 2
            info = seen[0]
            assert (
                info.peer_ip == "127.0.0.1"
                and info.peer_port > 0
                and not info.tls
                and info.ssl_object is None
            )
            r = results[0]
            assert (r.status, r.bytes_in, r.bytes_out, r.error) == (200, 0, 2, None)
            assert (
                r.upstream_connect is not None and not r.upstream_reused and r.upstream_response is not None
            )
            assert results[1].upstream_reused and results[1].upstream_connect is None
            assert 0 <= r.duration < 1

    run(scenario())


def test_keep_alive_to_the_origin_is_reused_across_clients(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(ok_handler()) as origin, edge(forward_to(origin)) as e:
            for _ in range(2):
                c = await e.client()
                for _ in range(10):
                    c.send(GET)
                    assert (await c.response()).body == b"ok"
                c.close()
            assert origin.connections == 1 and e.pool.opened == 1 and e.pool.reused == 19

    run(scenario())


def test_pipelined_requests_are_answered_in_order(run: Run) -> None:
    async def scenario() -> None:
        async def handler(c: OriginConn) -> None:
            while (req := await c.request()) is not None:
                if req.target == b"/slow":
                    await asyncio.sleep(0.2)
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(req.target), req.target))

        async with Origin(handler) as origin:
            target = origin.target()

            def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
                if head.target == b"/deny":
                    return Respond(403, [(b"content-type", b"text/plain")], b"no")
                return Forward(target)

            async with edge(decide) as e:
                c = await e.client()
                c.send(
                    b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /deny HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"POST /fast HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                    b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n"
                )
                bodies = [(await c.response()).body for _ in range(4)]
                assert bodies == [b"/slow", b"no", b"/fast", b"/last"]
                assert [r.body for r in origin.requests] == [b"", b"abc", b""]

    run(scenario())


def test_http10_client(run: Run) -> None:
    async def scenario() -> None:
        async def chunked(c: OriginConn) -> None:
            while await c.request() is not None:
                c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")

        async with Origin(chunked) as origin, edge(forward_to(origin)) as e:
            # keep-alive HTTP/1.0 with a chunked origin response: close-delimited, then closed
            c = await e.client()
            c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = await c.response()
            assert resp.body == b"abc" and resp.get(b"transfer-encoding") is None
            assert resp.get(b"connection") == b"close"
            # the Host header the origin saw is the target's (there was none)
            assert origin.requests[0].get(b"host") == [b"127.0.0.1"]

        async with Origin(ok_handler()) as origin, edge(forward_to(origin)) as e:
            c = await e.client()
            c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\n")
            resp = await c.response()
            assert resp.body == b"ok" and resp.get(b"connection") == b"keep-alive"
            c.send(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
            resp = await c.response()
            assert resp.get(b"connection") == b"close" and await c.closed()

    run(scenario())


def test_response_framings(run: Run) -> None:
    async def scenario() -> None:
        async def handler(c: OriginConn) -> None:
            req = await c.request()
            if req is None:
                return
            if req.target == b"/close-delimited":
                c.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
                return
            if req.target == b"/chunked":
                c.send(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"2\r\nab\r\n1\r\nc\r\n0\r\nX-T: 1\r\n\r\n"
                )
            elif req.target == b"/204":
                c.send(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif req.target == b"/304":
                c.send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
            elif req.target == b"/100":
                c.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
            else:
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await handler(c)

        async with Origin(handler) as origin, edge(forward_to(origin)) as e:
            c = await e.client()
            c.send(b"GET /close-delimited HTTP/1.1\r\nHost: a\r\n\r\n")
            resp = await c.response()
            assert resp.body == b"until the end" and resp.get(b"transfer-encoding") == b"chunked"
            for path, status, body in [(b"/chunked", 200, b"abc"), (b"/204", 204, b""), (b"/100", 200, b"x")]:
                c.send(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path)
                resp = await c.response()
                assert (resp.status, resp.body) == (status, body)
                assert resp.get(b"x-t") is None
            c.send(b"GET /304 HTTP/1.1\r\nHost: a\r\n\r\n")
            resp = await c.response()
            assert resp.status == 304 and resp.get(b"content-length") == b"10"
            c.send(GET)
            assert (await c.response()).status == 200
            assert origin.connections == 2  # the close-delimited one could not be reused

    run(scenario())


def test_head_requests(run: Run) -> None:
    async def scenario() -> None:
        async def handler(c: OriginConn) -> None:
            while (req := await c.request()) is not None:
                body = b"" if req.method == b"HEAD" else b"x" * 1000
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + body)

        async with Origin(handler) as origin:
            target = origin.target()

            def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
                if head.target == b"/edge":
                    return Respond(404, (), b"not here")
                return Forward(target)

            async with edge(decide) as e:
                c = await e.client()
                c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
                resp = await c.response(head_request=True)
                assert resp.status == 200 and resp.get(b"content-length") == b"1000"
                c.send(b"HEAD /edge HTTP/1.1\r\nHost: a\r\n\r\n")
                resp = await c.response(head_request=True)
                assert resp.status == 404 and resp.get(b"content-length") == b"8"
                c.send(GET)
                assert len((await c.response()).body) == 1000
                assert origin.connections == 1

    run(scenario())


def test_expect_100_continue(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(ok_handler()) as origin:
            target = origin.target()

            def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
                if head.target == b"/deny":
                    return Respond(403, (), b"no")
                return Forward(target)

            async with edge(decide) as e:
                c = await e.client()
                c.send(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                assert (await c.response()).status == 100
                c.send(b"hello")
                assert (await c.response()).status == 200
                (req,) = origin.requests
                assert req.body == b"hello" and req.get(b"expect") == []
                # refused: no 100, a final answer, and the connection closes
                c.send(b"PUT /deny HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                resp = await c.response()
                assert resp.status == 403 and resp.get(b"connection") == b"close"
                assert await c.closed(within=3)

    run(scenario())


def test_upgrade_requests_go_out_as_plain_requests(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(ok_handler()) as origin, edge(forward_to(origin)) as e:
            c = await e.client()
            c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + GET)
            assert (await c.response()).status == 200
            assert (await c.response()).status == 200
            assert origin.requests[0].get(b"upgrade") == [] and origin.requests[0].get(b"connection") == []

    run(scenario())


# --- bodies and back-pressure -----------------------------------------------------------------------

BIG = 20 * 1024 * 1024
PIECE = bytes(range(256)) * 256  # 64 KiB


def _pieces() -> list[bytes]:
    return [PIECE] * (BIG // len(PIECE))


def _bundled_context() -> BundledTLSContext:
    cert_pem, key_pem = _self_signed_pem()
    pem = EdgeTLSCertificate(chain_pem=cert_pem.decode(), key_pem=key_pem.decode())
    ctx = TLSContextFactory(TLSSettings(engine="bundled")).host_context(pem, None)
    assert isinstance(ctx, BundledTLSContext)
    return ctx


@pytest.mark.parametrize("over", ["tcp", "tls"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_large_download_streams_with_back_pressure(run: Run, framing: str, over: str) -> None:
    tls_context = _bundled_context() if over == "tls" else None

    async def scenario() -> None:
        sent = [0]
        stalled = asyncio.Event()

        async def handler(c: OriginConn) -> None:
            await c.request()
            c.writer.transport.set_write_buffer_limits(high=64 * 1024)
            head = b"Content-Length: %d" % BIG if framing == "length" else b"Transfer-Encoding: chunked"
            c.send(b"HTTP/1.1 200 OK\r\n%s\r\n\r\n" % head)
            for piece in _pieces():
                c.send(piece if framing == "length" else b"%x\r\n%s\r\n" % (len(piece), piece))
                sent[0] += len(piece)
                await c.writer.drain()
            if framing == "chunked":
                c.send(b"0\r\n\r\n")
            stalled.set()

        async with (
            Origin(handler, sndbuf=64 * 1024) as origin,
            edge(forward_to(origin), bundled_context=tls_context) as e,
        ):
            c = await e.client(rcvbuf=64 * 1024, tls=tls_context is not None)
            c.send(GET)
            peak = 0

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, e.buffered())
                    await asyncio.sleep(0.001)

            sampler = asyncio.create_task(sample())
            await asyncio.sleep(0.4)  # the client reads nothing: everything upstream must stop
            sent_while_stalled = sent[0]
            resp = await c.head()
            digest = hashlib.sha256()
            got = 0
            if framing == "length":
                while got < BIG:
                    data = await c.reader.read(256 * 1024)
                    digest.update(data)
                    got += len(data)
            else:
                while (size := int((await c.reader.readuntil(b"\r\n"))[:-2], 16)) != 0:
                    data = await c.reader.readexactly(size)
                    await c.reader.readexactly(2)
                    digest.update(data)
                    got += len(data)
            sampler.cancel()
            assert resp.status == 200 and got == BIG
            assert digest.digest() == hashlib.sha256(b"".join(_pieces())).digest()
            # The origin was held back (what it got out sits in kernel socket buffers, ~5-8 MiB here).
            assert sent_while_stalled < BIG * 3 // 4, sent_while_stalled
            assert peak <= 1024 * 1024, peak  # the proxy buffered at most ~high-water + one read
            assert not stalled.is_set() or sent[0] == BIG

    run(scenario())


@pytest.mark.parametrize("over", ["tcp", "tls"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_large_upload_streams_with_back_pressure(run: Run, framing: str, over: str) -> None:
    tls_context = _bundled_context() if over == "tls" else None

    async def scenario() -> None:
        reading = asyncio.Event()
        got: dict[str, Any] = {}

        async def handler(c: OriginConn) -> None:
            await reading.wait()  # the origin reads nothing at first
            req = await c.request()
            assert req is not None
            got["len"] = len(req.body)
            got["digest"] = hashlib.sha256(req.body).digest()
            got["te"] = req.get(b"transfer-encoding")
            c.send(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

        results: list[ExchangeResult] = []
        async with (
            Origin(handler, rcvbuf=64 * 1024) as origin,
            edge(forward_to(origin, results), bundled_context=tls_context) as e,
        ):
            c = await e.client(sndbuf=64 * 1024, tls=tls_context is not None)
            c.writer.transport.set_write_buffer_limits(high=64 * 1024)
            head = b"Content-Length: %d" % BIG if framing == "length" else b"Transfer-Encoding: chunked"
            c.send(b"POST /up HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n" % head)
            sent = 0
            peak = 0

            async def pump() -> None:
                nonlocal sent
                for piece in _pieces():
                    c.send(piece if framing == "length" else b"%x\r\n%s\r\n" % (len(piece), piece))
                    sent += len(piece)
                    await c.writer.drain()
                if framing == "chunked":
                    c.send(b"0\r\n\r\n")

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, e.buffered())
                    await asyncio.sleep(0.001)

            pumping = asyncio.create_task(pump())
            sampler = asyncio.create_task(sample())
            await asyncio.sleep(0.4)
            sent_while_stalled = sent
            reading.set()
            await pumping
            resp = await c.response()
            sampler.cancel()
            assert resp.status == 201
            assert got["len"] == BIG and got["digest"] == hashlib.sha256(b"".join(_pieces())).digest()
            assert got["te"] == ([b"chunked"] if framing == "chunked" else [])
            assert sent_while_stalled < BIG * 3 // 4, sent_while_stalled  # the client was held back
            assert peak <= 1024 * 1024, peak
            assert results[0].bytes_in == BIG

    run(scenario())


def test_a_client_that_never_reads_is_dropped_after_send_timeout(run: Run) -> None:
    async def scenario() -> None:
        async def handler(c: OriginConn) -> None:
            await c.request()
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
            for piece in _pieces():
                c.send(piece)
                await c.writer.drain()

        results: list[ExchangeResult] = []
        settings = ProxySettings(send_timeout=0.3)
        async with Origin(handler) as origin, edge(forward_to(origin, results), settings) as e:
            c = await e.client(rcvbuf=64 * 1024)
            c.send(GET)
            for _ in range(200):
                if results:
                    break
                await asyncio.sleep(0.02)
            assert results and results[0].error == "client_timeout" and results[0].status == 200
            assert await e.registry.wait_closed(1.0)

    run(scenario())


# --- edge responses and discarded bodies ---------------------------------------------------------------


def test_edge_response_drops_a_small_body_and_keeps_the_connection(run: Run) -> None:
    async def scenario() -> None:
        results: list[ExchangeResult] = []

        def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
            return Respond(403, [(b"content-type", b"text/plain")], b"denied", on_done=results.append)

        async with edge(decide, ProxySettings(discard_body_limit=1000)) as e:
            c = await e.client()
            c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
            resp = await c.response()
            assert resp.status == 403 and resp.body == b"denied" and resp.get(b"connection") is None
            c.send(b"56789" + GET)
            assert (await c.response()).status == 403
            # over the discard limit: the connection closes instead
            c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            assert (await c.response()).status == 403
            c.send(b"800\r\n" + b"x" * 0x800 + b"\r\n")
            assert await c.closed()
            assert [r.bytes_in for r in results] == [10, 0, 0x800]

    run(scenario())


def test_origin_answering_before_the_body_ends_closes_the_client(run: Run) -> None:
    async def scenario() -> None:
        async def handler(c: OriginConn) -> None:
            await c.request(body=False)
            c.send(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")

        async with Origin(handler) as origin, edge(forward_to(origin)) as e:
            c = await e.client()
            c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nxxxx")
            resp = await c.response()
            assert resp.status == 413 and resp.body == b"big" and resp.get(b"connection") == b"close"
            c.send(b"x" * 1000)
            assert await c.closed(within=3)

    run(scenario())


# --- origin failures ------------------------------------------------------------------------------------


def test_origin_refused_is_502_and_the_connection_survives(run: Run) -> None:
    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = OriginTarget("http", "127.0.0.1", s.getsockname()[1])
        results: list[ExchangeResult] = []
        pages: list[int] = []

        def page(status: int, head: RequestHead | None) -> tuple[list[tuple[bytes, bytes]], bytes]:
            pages.append(status)
            return [(b"content-type", b"application/json")], b'{"status": %d}' % status

        def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
            if head.target == b"/deny":
                return Respond(403)
            return Forward(dead, on_done=results.append)

        async with edge(decide, error_page=page) as e:
            c = await e.client()
            c.send(GET)
            resp = await c.response()
            assert resp.status == 502 and resp.body == b'{"status": 502}' and pages == [502]
            c.send(b"GET /deny HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await c.response()).status == 403
            assert results[0].status == 502 and results[0].error == "refused"

    run(scenario())


def test_hanging_origin_is_504_while_others_are_served(run: Run) -> None:
    async def scenario() -> None:
        async def hang(c: OriginConn) -> None:
            await c.request()
            await asyncio.sleep(10)

        async with Origin(hang) as slow, Origin(ok_handler()) as fast:
            slow_t, fast_t = slow.target(read_timeout=0.5), fast.target()

            def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
                return Forward(slow_t if head.target == b"/slow" else fast_t)

            async with edge(decide) as e:
                loop = asyncio.get_running_loop()
                a, b = await e.client(), await e.client()
                t0 = loop.time()
                a.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
                served = 0
                for _ in range(10):
                    b.send(GET)
                    assert (await b.response()).status == 200
                    served += 1
                assert loop.time() - t0 < 0.4 and served == 10  # while /slow is still pending
                resp = await a.response()
                elapsed = loop.time() - t0
                assert resp.status == 504 and 0.45 <= elapsed < 2.0, elapsed
                a.send(GET)  # the client connection is still usable
                assert (await a.response()).status == 200

    run(scenario())


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_origin_closing_mid_body_closes_the_client(run: Run, framing: str) -> None:
    async def scenario() -> None:
        async def cut(c: OriginConn) -> None:
            await c.request()
            if framing == "length":
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            else:
                c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
            await c.writer.drain()

        results: list[ExchangeResult] = []
        async with Origin(cut) as origin, edge(forward_to(origin, results)) as e:
            c = await e.client()
            c.send(GET)
            resp = await c.head()
            assert resp.status == 200
            rest = await c.reader.read()  # EOF comes: the proxy closed the connection
            assert rest.startswith(b"0123456789" if framing == "length" else b"a\r\n0123456789\r\n")
            assert b"0\r\n\r\n" not in rest
            assert results[0].error in ("reset", "protocol") and results[0].bytes_out == 10

    run(scenario())


def test_origin_garbage_is_502(run: Run) -> None:
    async def scenario() -> None:
        async def garbage(c: OriginConn) -> None:
            await c.request()
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")

        async with Origin(garbage) as origin, edge(forward_to(origin)) as e:
            c = await e.client()
            c.send(GET)
            assert (await c.response()).status == 502

    run(scenario())


def test_a_stale_pooled_connection_is_replayed_once_for_safe_requests(run: Run) -> None:
    async def scenario() -> None:
        async def one_shot(c: OriginConn) -> None:
            # Serves one request, then closes when the next one arrives (keep-alive timeout race).
            req = await c.request()
            assert req is not None
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(req.target), req.target))
            await c.writer.drain()
            await c.request(body=False)
            c.writer.transport.abort()

        results: list[ExchangeResult] = []
        async with Origin(one_shot) as origin, edge(forward_to(origin, results)) as e:
            c = await e.client()
            for path in (b"/1", b"/2"):
                c.send(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path)
                assert (await c.response()).body == path
            assert origin.connections == 2 and results[1].error is None and not results[1].upstream_reused
            # a body-carrying request is never replayed
            c.send(b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
            assert (await c.response()).status == 502
            assert results[2].error == "reset"

    run(scenario())


# --- malformed requests and smuggling ---------------------------------------------------------------------

SMUGGLING = {
    "cl-te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nG",
    "te-cl": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
    b"5c\r\nGPOST",
    "dup-cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
    b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    "te-obfuscated": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"
    b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    "te-space-colon": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "te-http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    "cl-garbage": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n",
    "two-hosts": b"GET /admin HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bare-lf": b"GET /admin HTTP/1.1\nHost: a\n\n",
    "h2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}


@pytest.mark.parametrize("payload", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggling_attempts_never_reach_the_origin(run: Run, payload: bytes) -> None:
    async def scenario() -> None:
        decided: list[RequestHead] = []
        async with Origin(ok_handler()) as origin:
            target = origin.target()

            def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
                decided.append(head)
                return Forward(target)

            async with edge(decide) as e:
                c = await e.client()
                c.send(payload)
                resp = await c.response()
                assert resp.status in (400, 501) and resp.get(b"connection") == b"close"
                assert await c.closed()
                assert decided == [] and origin.heads == [] and origin.connections == 0
                assert [r.status for r in e.rejected] == [resp.status]

    run(scenario())


def test_a_bad_chunk_aborts_the_forwarded_request(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(ok_handler()) as origin, edge(forward_to(origin)) as e:
            c = await e.client()
            c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await asyncio.sleep(0.1)
            c.send(b"zz\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
            resp = await c.response()
            assert resp.status == 400 and await c.closed()
            await asyncio.sleep(0.1)
            assert origin.requests == [] and b"/admin" not in origin.heads

    run(scenario())


def test_a_bad_request_after_good_pipelined_ones(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(ok_handler()) as origin, edge(forward_to(origin)) as e:
            c = await e.client()
            c.send(GET + GET + b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
            assert [(await c.response()).status for _ in range(3)] == [200, 200, 400]
            assert await c.closed() and len(origin.requests) == 2

    run(scenario())


def test_oversized_header_block_is_431(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(ok_handler()) as origin, edge(forward_to(origin)) as e:
            c = await e.client()
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n")
            resp = await c.response()
            assert resp.status == 431 and await c.closed() and origin.connections == 0
        settings = ProxySettings(limits=HTTP1Limits(max_header_count=5))
        async with Origin(ok_handler()) as origin, edge(forward_to(origin), settings) as e:
            c = await e.client()
            c.send(
                b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(5)) + b"\r\n"
            )
            assert (await c.response()).status == 431

    run(scenario())


def test_slow_headers_get_408(run: Run) -> None:
    async def scenario() -> None:
        settings = ProxySettings(header_timeout=0.3)
        async with Origin(ok_handler()) as origin, edge(forward_to(origin), settings) as e:
            loop = asyncio.get_running_loop()
            c = await e.client()
            t0 = loop.time()
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")  # never finished
            resp = await c.response()
            assert resp.status == 408 and await c.closed()
            assert 0.25 <= loop.time() - t0 < 1.5
            assert [r.reason for r in e.rejected] == ["http.header_timeout"]
            # a connection that sends nothing is closed without a word
            quiet = await e.client()
            assert await quiet.closed(within=1.5)
            assert origin.connections == 0

    run(scenario())


def test_keep_alive_idle_timeout_closes_quietly(run: Run) -> None:
    async def scenario() -> None:
        settings = ProxySettings(keepalive_timeout=0.3, header_timeout=5)
        async with Origin(ok_handler()) as origin, edge(forward_to(origin), settings) as e:
            c = await e.client()
            c.send(GET)
            assert (await c.response()).status == 200
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert await c.closed(within=2) and loop.time() - t0 < 1.5

    run(scenario())


def test_slow_request_body_gets_408_and_the_origin_request_is_aborted(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(ok_handler()) as origin:
            results: list[ExchangeResult] = []
            settings = ProxySettings(body_timeout=0.3)
            async with edge(forward_to(origin, results), settings) as e:
                c = await e.client()
                c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
                resp = await c.response()
                assert resp.status == 408 and await c.closed()
                await asyncio.sleep(0.1)
                assert origin.heads == [b"/"] and origin.requests == []  # never completed
                assert results[0].error == "client_timeout" and results[0].bytes_in == 3

    run(scenario())


def test_client_leaving_mid_response_is_reported_and_the_origin_connection_dropped(run: Run) -> None:
    async def scenario() -> None:
        origin_saw_eof = asyncio.Event()

        async def slow(c: OriginConn) -> None:
            await c.request()
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            await c.writer.drain()
            await c.reader.read()
            origin_saw_eof.set()

        results: list[ExchangeResult] = []
        async with Origin(slow) as origin, edge(forward_to(origin, results)) as e:
            c = await e.client()
            c.send(GET)
            await c.head()
            c.writer.transport.abort()
            await asyncio.wait_for(origin_saw_eof.wait(), 2)
            assert results[0].status == 200 and results[0].error == "client_closed"
            assert e.pool.idle_count() == 0

    run(scenario())


def test_decide_failures_are_500(run: Run) -> None:
    async def scenario() -> None:
        def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
            raise RuntimeError("bug")

        async with edge(decide) as e:
            c = await e.client()
            c.send(GET)
            resp = await c.response()
            assert resp.status == 500 and await c.closed()

        def bad_header(conn: ConnectionInfo, head: RequestHead) -> Decision:
            return Forward(OriginTarget("http", "127.0.0.1", 9), [(b"x", b"a\r\nb: c")])

        async with edge(bad_header) as e:
            c = await e.client()
            c.send(GET)
            assert (await c.response()).status == 500

    run(scenario())


# --- shutdown ---------------------------------------------------------------------------------------------


def test_graceful_shutdown(run: Run) -> None:
    async def scenario() -> None:
        async def slowish(c: OriginConn) -> None:
            while await c.request() is not None:
                await asyncio.sleep(0.3)
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        async with Origin(slowish) as origin, edge(forward_to(origin)) as e:
            idle, busy = await e.client(), await e.client()
            idle.send(GET)
            assert (await idle.response()).status == 200
            busy.send(GET + GET)  # the second one must not be served
            await asyncio.sleep(0.05)
            e.registry.shutdown()
            assert await idle.closed(within=0.2)
            resp = await busy.response()
            assert resp.status == 200 and resp.get(b"connection") == b"close"
            assert await busy.closed()
            assert await e.registry.wait_closed(1.0)
            assert len(origin.requests) == 2

    run(scenario())


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        ProxySettings(header_timeout=0)
    with pytest.raises(ValueError):
        ProxySettings(discard_body_limit=-1)
    with pytest.raises(ValueError):
        ProxySettings(strip_request_headers=frozenset({b"x-forwarded-for"}))


def test_pool_settings_reach_the_proxy(run: Run) -> None:
    async def scenario() -> None:
        async with Origin(ok_handler()) as origin:
            pool = OriginPool(PoolSettings(max_idle_per_key=0))
            async with edge(forward_to(origin), pool=pool) as e:
                c = await e.client()
                for _ in range(3):
                    c.send(GET)
                    assert (await c.response()).status == 200
                assert origin.connections == 3

    run(scenario())


def _self_signed_pem() -> tuple[bytes, bytes]:
    """A fresh self-signed ECDSA certificate for ``a.test`` and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _server_context(tmp: Path) -> ssl.SSLContext:
    cert_pem, key_pem = _self_signed_pem()
    (tmp / "edge.pem").write_bytes(cert_pem)
    (tmp / "edge.key").write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "edge.pem", tmp / "edge.key")
    return ctx


def test_the_protocol_runs_unchanged_under_a_tls_transport(run: Run, tmp_path: Path) -> None:
    """Compatibility only (TLS policy is edge.tls's job): the shell works on the loop's TLS transport."""
    ctx = _server_context(tmp_path)

    async def scenario() -> None:
        async with Origin(ok_handler()) as origin:
            target = origin.target()
            seen: list[ConnectionInfo] = []

            def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
                seen.append(conn)
                return Forward(target)

            settings = ProxySettings(linger_timeout=0.3)
            async with edge(decide, settings, ssl_context=ctx) as e:
                c = await e.tls_client("a.test")
                for _ in range(3):
                    c.send(GET)
                    assert (await c.response()).body == b"ok"
                assert seen[0].tls and isinstance(seen[0].ssl_object, ssl.SSLObject)
                assert origin.requests[0].get(b"x-forwarded-proto") == [b"https"]
                assert e.pool.opened == 1
                # an error close on TLS (no half-close there): the response arrives, then the end
                c.send(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
                assert (await c.response()).status == 400
                assert await c.closed(within=2)

    run(scenario())


def test_on_connection_hook_runs_first_and_a_failing_hook_drops_the_connection(run: Run) -> None:
    async def scenario() -> None:
        seen: list[tuple[str | None, int]] = []

        def on_connection(conn: ConnectionInfo) -> None:
            conn.sni = "a.test"
            conn.state["verified"] = "once per connection"

        def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
            seen.append((conn.sni, conn.requests))
            assert conn.state == {"verified": "once per connection"}
            return Respond(204)

        async with edge(decide, on_connection=on_connection) as e:
            c = await e.client()
            c.send(GET + GET)
            assert [(await c.response()).status for _ in range(2)] == [204, 204]
            assert seen == [("a.test", 1), ("a.test", 2)]

        def broken(conn: ConnectionInfo) -> None:
            raise RuntimeError("bug")

        async with edge(decide, on_connection=broken) as e:
            c = await e.client()
            c.send(GET)
            assert await c.closed()

    run(scenario())


def test_respond_needs_a_final_status() -> None:
    for status in (100, 101, 199, 1000):
        with pytest.raises(ValueError):
            Respond(status)
    assert Respond(200).status == 200


# --- memory ------------------------------------------------------------------------------------------


def test_closed_connections_are_freed_without_the_cyclic_collector(run: Run) -> None:
    """A closed client connection (and the origin connection behind it) must be freed by
    reference counting alone: a timer holding a bound method of its owner would keep the
    protocol, its TLS objects and buffers alive until a cyclic collection."""
    import gc

    from certgate.edge.http1 import RequestReader
    from certgate.edge.proxy import ProxyProtocol

    def live_protocols() -> tuple[int, int]:
        # (the request reader and its parser refer to each other until the reader is closed)
        objects = gc.get_objects()
        return (
            sum(1 for o in objects if isinstance(o, ProxyProtocol)),
            sum(1 for o in objects if isinstance(o, RequestReader)),
        )

    async def scenario() -> None:
        async with Origin(ok_handler()) as origin, edge(forward_to(origin)) as e:
            gc.collect()
            gc.disable()
            try:
                before = live_protocols()
                for _ in range(5):
                    c = await e.client()
                    c.send(GET)
                    assert (await c.response()).body == b"ok"
                    c.close()
                for _ in range(50):  # let the loop see every close
                    if len(e.registry) == 0:
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
                e.clients.clear()
                assert live_protocols() == before
            finally:
                gc.enable()

    run(scenario())
