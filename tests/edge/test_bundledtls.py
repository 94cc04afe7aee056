"""Adversarial tests of the bundled TLS engine (``bundledtls``, formerly ``sockettls``): uvloop,
real loopback sockets, real OpenSSL on both sides (cryptography's bundled one serving, the stdlib
``ssl`` module as client).

Every protocol here is a :class:`Recorder`, which notes each callback and every breach of
asyncio's protocol contract (``connection_lost`` before ``connection_made`` or twice, data after
EOF or while reading is paused, ...); :func:`serve` fails the test on any breach.

Blocking clients run in threads (``asyncio.to_thread``) so the loop keeps serving; they use
``ssl.MemoryBIO`` (:class:`BioClient`) where the test must control exactly which bytes go on the
wire and whether a close_notify arrived.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import inspect
import random
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from typing import cast

import pytest
from cryptography import x509
from tests.edge.bundledtls_support import (
    PKI,
    TIMEOUT,
    TLS12,
    TLS13,
    TRUNCATED_HELLO,
    VERSIONS,
    BioClient,
    LineEcho,
    PausedFromTheStart,
    Recorder,
    clean_error_queue,
    client_context,
    handshake_and_read_to_end,
    make_pki,
    pattern,
    raw_exchange,
    read_until_closed,
    run_on_uvloop,
    serve,
    stale_openssl_error,
    until,
)

from certgate.edge import bundledtls
from certgate.edge.tls import SNIRouter, TLSContextFactory, TLSSettings, peer_certificates

#: Kernel buffers small enough that a non-reading client blocks the server within a few records.
SMALL_BUFFER = 16 * 1024


@pytest.fixture(scope="module")
def pki() -> PKI:
    return make_pki()


@pytest.fixture(scope="module")
def factory() -> TLSContextFactory:
    made = TLSContextFactory(TLSSettings(engine="bundled"))
    assert made.engine == "bundled"
    return made


@pytest.fixture(scope="module")
def listening(factory: TLSContextFactory) -> bundledtls.BundledTLSContext:
    """A context with no SNI routing: the placeholder certificate, no client certificate asked."""
    ctx = factory.default_context()
    assert isinstance(ctx, bundledtls.BundledTLSContext)
    return ctx


@pytest.fixture(autouse=True)
def _no_stale_errors() -> Iterator[None]:
    """Tests start and end with an empty error queue (test 8 pushes errors on purpose)."""
    yield from clean_error_queue()


# ------------------------------------------------------------------------------------------------
# 1. write back-pressure


def _mixed_chunks(payload: bytes, seed: int) -> list[bytes | bytearray | memoryview]:
    rng = random.Random(seed)
    sizes = [1, 2, 7, 100, 1000, 4096, 16383, 16384, 16385, 65535, 65536, 100_000, 333_333]
    chunks: list[bytes | bytearray | memoryview] = []
    at = 0
    while at < len(payload):
        n = min(rng.choice(sizes), len(payload) - at)
        piece = payload[at : at + n]
        kind = len(chunks) % 3
        if kind == 0:
            chunks.append(piece)
        elif kind == 1:
            chunks.append(bytearray(piece))
        else:
            chunks.append(memoryview(bytearray(b"<" + piece + b">"))[1:-1])  # a view with an offset
        at += n
    return chunks


class Streamer(Recorder):
    """Writes its chunks whenever writing is not paused, then closes. Overwrites each bytearray
    (and the bytearray under each memoryview) right after handing it over: the transport must
    have taken its copy."""

    def __init__(self, chunks: list[bytes | bytearray | memoryview], high: int, low: int) -> None:
        super().__init__()
        self.chunks = chunks
        self.high, self.low = high, low
        self.next = 0
        self.write_paused = False
        self.closing = False
        self.paused_once = threading.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        self.t.set_write_buffer_limits(high=self.high, low=self.low)
        assert self.t.get_write_buffer_limits() == (self.low, self.high)
        self.pump()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_paused:
            self.breaches.append("pause_writing twice")
        self.write_paused = True
        self.paused_once.set()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.write_paused:
            self.breaches.append("resume_writing without pause_writing")
        self.write_paused = False
        self.pump()

    def pump(self) -> None:
        while not self.write_paused and self.next < len(self.chunks):
            chunk = self.chunks[self.next]
            self.next += 1
            self.t.write(chunk)
            if isinstance(chunk, bytearray):
                chunk[:] = b"\x00" * len(chunk)
            elif isinstance(chunk, memoryview):
                underlying = cast(bytearray, chunk.obj)
                underlying[:] = b"\x00" * len(underlying)
        if self.next == len(self.chunks) and not self.closing:
            # From a fresh callback (closing inside resume_writing has a test of its own).
            self.closing = True
            asyncio.get_running_loop().call_soon(self.t.close)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_write_back_pressure_pauses_resumes_and_delivers_every_byte_in_order(
    listening: bundledtls.BundledTLSContext, version: ssl.TLSVersion
) -> None:
    payload = random.Random(5).randbytes(5 * 1024 * 1024)
    chunks = _mixed_chunks(payload, seed=version.value)
    assert {type(c) for c in chunks} == {bytes, bytearray, memoryview}
    high, low = 64 * 1024, 16 * 1024
    streamers: list[Streamer] = []

    def make() -> Streamer:
        streamers.append(Streamer(chunks, high, low))
        return streamers[-1]

    def client(port: int) -> tuple[int, str, str]:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        raw.settimeout(TIMEOUT)
        raw.connect(("127.0.0.1", port))
        with client_context(version).wrap_socket(raw, server_hostname="plain.example.com") as tls_sock:
            negotiated = tls_sock.version() or ""
            # Read nothing until the server had to stop writing.
            while not streamers:
                threading.Event().wait(0.002)
            assert streamers[0].paused_once.wait(TIMEOUT), "pause_writing never came"
            digest = hashlib.sha256()
            total = 0
            while data := tls_sock.recv(1 << 16):
                digest.update(data)
                total += len(data)
            # recv() returned b"" on the server's close_notify (a TCP close would raise SSLEOFError
            # if ragged EOFs were not suppressed: checked with BioClient in the close() test).
            return total, digest.hexdigest(), negotiated

    async def scenario() -> None:
        async with serve(make, listening) as h:
            total, digest, negotiated = await asyncio.to_thread(client, h.port)
            assert negotiated == {TLS12: "TLSv1.2", TLS13: "TLSv1.3"}[version]
            assert total == len(payload)
            assert digest == hashlib.sha256(payload).hexdigest()
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            await asyncio.sleep(0.02)
            assert proto.lost == [None]
            flow = [(kind, size) for kind, size in proto.events if kind.endswith("_writing")]
            assert len(flow) >= 2 and flow[0][0] == "pause_writing"
            # Strictly alternating; a last pause_writing may stay unanswered once close() was called.
            pairs = ["pause_writing", "resume_writing"] * (len(flow) // 2) + ["pause_writing"] * (
                len(flow) % 2
            )
            assert [kind for kind, _ in flow] == pairs
            for kind, size in flow:
                if kind == "pause_writing":
                    assert size > high, flow
                else:
                    assert size <= low, flow
            assert proto.t.get_write_buffer_size() == 0

    run_on_uvloop(scenario())


def test_write_of_a_memoryview_with_wide_items_sends_all_its_bytes(
    listening: bundledtls.BundledTLSContext,
) -> None:
    words = array.array("I", range(1000))  # 4000 bytes, len() == 1000
    expected = words.tobytes()

    class Writer(Recorder):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.t.write(memoryview(words))
            self.t.close()

    async def scenario() -> None:
        async with serve(Writer, listening) as h:
            data, end = await asyncio.to_thread(handshake_and_read_to_end, h.port, client_context())
            assert end == "close_notify"
            assert data == expected, f"{len(data)} of {len(expected)} bytes arrived"

    run_on_uvloop(scenario())


class ClosesInResumeWriting(Recorder):
    """Writes a first blob (pause_writing comes), and in resume_writing a last one, then closes."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        self.t.set_write_buffer_limits(high=64 * 1024, low=0)  # resume_writing only once flushed
        self.t.write(pattern(2 * self.size)[: self.size])

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.t.is_closing():
            self.t.write(pattern(2 * self.size)[self.size :])  # more than the socket takes at once
            self.t.close()


def test_close_inside_resume_writing_still_flushes_everything(
    listening: bundledtls.BundledTLSContext,
) -> None:
    size = 1024 * 1024

    async def scenario() -> None:
        async with serve(lambda: ClosesInResumeWriting(size), listening) as h:
            data, end = await asyncio.to_thread(handshake_and_read_to_end, h.port, client_context())
            proto = h.protocol
            assert proto.kinds()[:3] == ["made", "pause_writing", "resume_writing"]
            assert len(data) == 2 * size, f"{2 * size - len(data)} bytes lost ({end})"
            assert data == pattern(2 * size)
            await until(lambda: bool(proto.lost), "connection_lost")
            assert proto.lost == [None]

    run_on_uvloop(scenario())


# ------------------------------------------------------------------------------------------------
# 2. pause_reading / resume_reading


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_paused_reading_delivers_nothing_until_resumed_then_data_then_eof(
    listening: bundledtls.BundledTLSContext, version: ssl.TLSVersion
) -> None:
    records = [b"first record;", b"second;", b"x" * 20000, b"fourth;", b"last"]
    sent = threading.Event()
    release = threading.Event()

    def client(port: int) -> tuple[bytes, str]:
        c = BioClient(port, client_context(version)).handshake()
        try:
            c.send(*records)  # five records in one write: they arrive together
            c.send_close_notify()
            sent.set()
            release.wait(TIMEOUT)
            return c.read_to_end()
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(PausedFromTheStart, listening) as h:
            task = asyncio.ensure_future(asyncio.to_thread(client, h.port))
            await until(lambda: sent.is_set() and bool(h.protocols), "the client's records")
            proto = h.protocol
            await asyncio.sleep(0.2)  # the records and the close_notify sit in the socket
            assert proto.kinds() == ["made"]
            assert not proto.t.is_reading()
            proto.t.pause_reading()  # idempotent
            proto.resume()
            assert proto.t.is_reading()
            proto.t.resume_reading()  # idempotent
            await until(lambda: bool(proto.lost), "connection_lost")
            release.set()
            data, end = await task
            assert bytes(proto.received) == b"".join(records)
            kinds = proto.kinds()
            assert kinds[-2:] == ["eof", "lost"] and set(kinds[1:-2]) == {"data"}
            assert proto.lost == [None]
            assert (data, end) == (b"", "close_notify")

    run_on_uvloop(scenario())


class PausesOnEveryRead(Recorder):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.pause()


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_pausing_inside_data_received_holds_back_records_that_arrived_together(
    listening: bundledtls.BundledTLSContext, version: ssl.TLSVersion
) -> None:
    records = [b"%d:" % i + b"r" * (i * 3000) for i in range(12)]
    expected = b"".join(records)
    done = threading.Event()

    def client(port: int) -> None:
        c = BioClient(port, client_context(version)).handshake()
        try:
            c.send(*records)  # twelve records (up to 33 KB) in one sendall
            done.wait(TIMEOUT)
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(PausesOnEveryRead, listening) as h:
            task = asyncio.ensure_future(asyncio.to_thread(client, h.port))
            await until(lambda: bool(h.protocols) and bool(h.protocol.received), "the first record")
            proto = h.protocol
            rounds = 0
            while len(proto.received) < len(expected):
                before = len(proto.received)
                await asyncio.sleep(0.01)  # paused: nothing may arrive (Recorder checks it too)
                assert len(proto.received) == before
                assert not proto.t.is_reading()
                proto.resume()
                await until(lambda before=before: len(proto.received) > before, "data after resume_reading")  # type: ignore[misc]
                rounds += 1
            assert bytes(proto.received) == expected
            assert rounds >= 1
            done.set()
            await task

    run_on_uvloop(scenario())


# ------------------------------------------------------------------------------------------------
# 3. client EOF


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_client_close_notify_is_eof_received_then_connection_lost_none(
    listening: bundledtls.BundledTLSContext, version: ssl.TLSVersion
) -> None:
    def client(port: int) -> tuple[bytes, str]:
        c = BioClient(port, client_context(version)).handshake()
        try:
            c.send(b"hello\n")
            assert c.read(6) == b"hello\n"
            c.send_close_notify()
            return c.read_to_end()
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(LineEcho, listening) as h:
            data, end = await asyncio.to_thread(client, h.port)
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            assert proto.kinds() == ["made", "data", "eof", "lost"]
            assert proto.lost == [None]
            assert (data, end) == (b"", "close_notify")  # the server answered with its own

    run_on_uvloop(scenario())


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_client_tcp_close_without_close_notify_is_eof_received_then_connection_lost_none(
    listening: bundledtls.BundledTLSContext, version: ssl.TLSVersion
) -> None:
    def client(port: int) -> None:
        c = BioClient(port, client_context(version)).handshake()
        c.send(b"hello\n")
        assert c.read(6) == b"hello\n"
        c.sock.shutdown(socket.SHUT_WR)  # FIN, no close_notify
        c.close()

    async def scenario() -> None:
        async with serve(LineEcho, listening) as h:
            await asyncio.to_thread(client, h.port)
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            assert proto.kinds() == ["made", "data", "eof", "lost"], proto.events
            assert proto.lost == [None]

    run_on_uvloop(scenario())


def test_eof_received_returning_true_keeps_the_connection_for_the_protocol(
    listening: bundledtls.BundledTLSContext,
) -> None:
    class Lingers(Recorder):
        def eof_received(self) -> bool:
            super().eof_received()
            asyncio.get_running_loop().call_later(0.05, self.answer)
            return True

        def answer(self) -> None:
            assert not self.lost and not self.t.is_closing()
            self.t.write(b"late answer")
            self.t.close()

    def client(port: int) -> tuple[bytes, str]:
        c = BioClient(port, client_context()).handshake()
        try:
            c.send(b"question")
            c.send_close_notify()
            return c.read_to_end()
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(Lingers, listening) as h:
            data, end = await asyncio.to_thread(client, h.port)
            assert (data, end) == (b"late answer", "close_notify")
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            assert proto.kinds() == ["made", "data", "eof", "lost"]
            assert proto.lost == [None]

    run_on_uvloop(scenario())


# ------------------------------------------------------------------------------------------------
# 4. close() and abort()


class WritesThen(Recorder):
    """Writes ``size`` bytes in one write() on a small send buffer, then closes or aborts."""

    def __init__(self, size: int, then: str) -> None:
        super().__init__()
        self.size, self.then = size, then
        self.buffered_at_close = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        self.t.set_write_buffer_limits(high=1 << 30)  # no pause_writing: the test is about close
        self.t.write(pattern(self.size))
        self.buffered_at_close = self.t.get_write_buffer_size()
        if self.then == "close":
            self.t.close()
            self.t.close()  # idempotent
        elif self.then == "close+abort":
            self.t.close()
            self.t.abort()
        else:
            self.t.abort()
            self.t.abort()
            self.t.close()
        assert self.t.is_closing()
        self.t.write(b"ignored after close")  # a no-op, as asyncio's transports do
        if self.then != "close":
            assert self.t.get_write_buffer_size() == 0


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_close_flushes_a_full_buffer_then_sends_close_notify(
    listening: bundledtls.BundledTLSContext, version: ssl.TLSVersion
) -> None:
    size = 3 * 1024 * 1024
    go = threading.Event()

    def client(port: int) -> tuple[bytes, str]:
        c = BioClient(port, client_context(version)).handshake()
        try:
            go.wait(TIMEOUT)
            return c.read_to_end()
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(lambda: WritesThen(size, "close"), listening) as h:
            task = asyncio.ensure_future(asyncio.to_thread(client, h.port))
            await until(lambda: bool(h.protocols), "the handshake")
            proto = cast(WritesThen, h.protocol)
            assert proto.buffered_at_close > 0  # close() came with most of the data still buffered
            await asyncio.sleep(0.1)
            assert not proto.lost  # not before everything was flushed
            assert proto.t.get_write_buffer_size() > 0
            go.set()
            data, end = await task
            assert data == pattern(size)
            assert end == "close_notify"
            await until(lambda: bool(proto.lost), "connection_lost")
            await asyncio.sleep(0.02)
            assert proto.lost == [None]
            assert proto.kinds() == ["made", "lost"]

    run_on_uvloop(scenario())


def test_close_after_a_flush_always_sends_close_notify(listening: bundledtls.BundledTLSContext) -> None:
    size = 3 * 1024 * 1024
    go = threading.Event()

    def client(port: int) -> tuple[bytes, str]:
        c = BioClient(port, client_context()).handshake()
        try:
            go.wait(TIMEOUT)
            return c.read_to_end()
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(lambda: WritesThen(size, "close"), listening) as h:
            ends = []
            for _ in range(6):
                go.clear()
                task = asyncio.ensure_future(asyncio.to_thread(client, h.port))
                await asyncio.sleep(0.05)  # the server fills the socket, the client reads nothing
                go.set()
                data, end = await task
                assert len(data) == size
                ends.append(end)
            assert ends == ["close_notify"] * 6

    run_on_uvloop(scenario())


@pytest.mark.parametrize("then", ["abort", "close+abort"])
def test_abort_drops_the_connection_at_once_and_connection_lost_comes_once(
    listening: bundledtls.BundledTLSContext, then: str
) -> None:
    size = 3 * 1024 * 1024

    async def scenario() -> None:
        async with serve(lambda: WritesThen(size, then), listening) as h:
            data, end = await asyncio.to_thread(handshake_and_read_to_end, h.port, client_context())
            proto = cast(WritesThen, h.protocol)
            assert proto.buffered_at_close > 0
            assert end in ("eof", "reset")  # no close_notify
            assert len(data) < size - proto.buffered_at_close + 1
            assert data == pattern(len(data))  # what did arrive is intact
            await until(lambda: bool(proto.lost), "connection_lost")
            await asyncio.sleep(0.02)
            assert proto.lost == [None]
            assert proto.kinds() == ["made", "lost"]

    run_on_uvloop(scenario())


def test_closing_inside_connection_made_and_data_received(listening: bundledtls.BundledTLSContext) -> None:
    class Closes(Recorder):
        def __init__(self, how: str) -> None:
            super().__init__()
            self.how = how

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if self.how == "abort in connection_made":
                self.t.abort()
            elif self.how == "close in connection_made":
                self.t.write(b"bye")
                self.t.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.how == "abort in data_received":
                self.t.abort()
            else:
                self.t.write(b"got " + data)
                self.t.close()

    hows = ["abort in connection_made", "close in connection_made", "abort in data_received", "close"]
    expected = {hows[0]: b"", hows[1]: b"bye", hows[2]: b"", hows[3]: b"got ping"}

    def client(port: int) -> tuple[bytes, str]:
        c = BioClient(port, client_context())
        try:
            c.handshake()
            c.send(b"ping")
            return c.read_to_end()
        except (ConnectionError, ssl.SSLError):
            return b"", "failed"
        finally:
            c.close()

    async def scenario() -> None:
        for how in hows:
            async with serve(lambda how=how: Closes(how), listening) as h:  # type: ignore[misc]
                data, _end = await asyncio.to_thread(client, h.port)
                assert data == expected[how], how
                proto = h.protocol
                await until(lambda proto=proto: bool(proto.lost), "connection_lost")  # type: ignore[misc]
                await asyncio.sleep(0.02)
                assert proto.lost == [None], how
                assert h.server.connections() == 0

    run_on_uvloop(scenario())


# ------------------------------------------------------------------------------------------------
# 5. handshake failures


def test_failed_handshakes_create_no_protocol_close_the_socket_and_are_counted(
    listening: bundledtls.BundledTLSContext,
) -> None:
    def garbage(port: int) -> bytes:
        # a timeout here (TIMEOUT << 30 s) fails the test
        return raw_exchange(port, b"GET / HTTP/1.1\r\nHost: plain.example.com\r\n\r\n")

    def tls11(port: int) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            with pytest.raises(ssl.SSLError):
                ctx.wrap_socket(sock, server_hostname="plain.example.com")

    def truncated_hello(port: int) -> bytes:
        return raw_exchange(port, TRUNCATED_HELLO, fin=True)  # the start of a ClientHello, then a FIN

    def good(port: int) -> bytes:
        c = BioClient(port, client_context()).handshake()
        try:
            c.send(b"still serving\n")
            return c.read(14)
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(LineEcho, listening, handshake_timeout=30) as h:
            answer = await asyncio.to_thread(garbage, h.port)
            assert not answer.startswith(b"HTTP")  # at most a TLS alert
            await until(lambda: h.server.handshakes_failed == 1, "the garbage handshake to count")
            await asyncio.to_thread(tls11, h.port)
            await until(lambda: h.server.handshakes_failed == 2, "the TLS 1.1 handshake to count")
            await asyncio.to_thread(truncated_hello, h.port)
            await until(lambda: h.server.handshakes_failed == 3, "the truncated hello to count")
            assert h.protocols == []
            assert h.server.connections() == 0
            assert await asyncio.to_thread(good, h.port) == b"still serving\n"
            assert h.server.handshakes_failed == 3
            assert len(h.protocols) == 1

    run_on_uvloop(scenario())


def test_silent_clients_are_dropped_at_the_handshake_timeout(listening: bundledtls.BundledTLSContext) -> None:
    def silent(port: int) -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            t0 = time.monotonic()
            data = read_until_closed(sock)
            return data, time.monotonic() - t0

    def good(port: int) -> BioClient:
        c = BioClient(port, client_context(TLS12)).handshake()
        c.send(b"after\n")
        assert c.read(6) == b"after\n"
        return c

    async def scenario() -> None:
        async with serve(LineEcho, listening, handshake_timeout=0.3) as h:
            results = await asyncio.gather(*(asyncio.to_thread(silent, h.port) for _ in range(3)))
            for data, waited in results:
                assert data == b""  # closed without a byte sent
                assert 0.2 < waited < TIMEOUT
            await until(lambda: h.server.handshakes_failed == 3, "three timeouts to count")
            assert h.protocols == []
            c = await asyncio.to_thread(good, h.port)
            try:
                await asyncio.sleep(0.4)  # the good connection's timer was cancelled with its handshake
                assert h.server.handshakes_failed == 3
                assert not h.protocol.lost
                assert h.server.connections() == 1
            finally:
                c.close()

    run_on_uvloop(scenario())


# ------------------------------------------------------------------------------------------------
# 6. server.close()


def test_server_close_refuses_new_drops_handshakes_and_waits_for_established(
    pki: PKI, factory: TLSContextFactory
) -> None:
    router = SNIRouter(factory)
    router.replace({"plain.example.com": factory.host_context(pki.edge["plain.example.com"], None)})
    hellos = 0

    def on_client_hello() -> None:
        nonlocal hellos
        hellos += 1

    router.on_client_hello = on_client_hello
    listening = cast(bundledtls.BundledTLSContext, router.listening_context)

    def half_handshake(port: int) -> BioClient:
        """Sends its ClientHello, never its Finished: the server stays in the handshake."""
        c = BioClient(port, client_context(TLS13))
        with pytest.raises(ssl.SSLWantReadError):
            c.obj.do_handshake()
        c.flush()
        return c

    def rest_until_closed(c: BioClient) -> bytes:
        try:
            return read_until_closed(c.sock)
        finally:
            c.close()

    def established(port: int) -> BioClient:
        c = BioClient(port, client_context(TLS13)).handshake()
        c.send(b"one\n")
        assert c.read(4) == b"one\n"
        return c

    def connect_refused(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        except ConnectionRefusedError:
            return True
        return False

    async def scenario() -> None:
        async with serve(LineEcho, listening) as h:
            alive = await asyncio.to_thread(established, h.port)
            pending = await asyncio.to_thread(half_handshake, h.port)
            await until(lambda: hellos == 2, "the second ClientHello")
            assert h.server.connections() == 1

            h.server.close()
            assert await asyncio.to_thread(connect_refused, h.port)
            await asyncio.to_thread(rest_until_closed, pending)  # dropped: EOF (or reset) comes
            assert len(h.protocols) == 1  # the half handshake never got a protocol

            waiter = asyncio.ensure_future(h.server.wait_closed())
            await asyncio.sleep(0.05)
            assert not waiter.done()
            proto = h.protocol
            assert not proto.lost and h.server.connections() == 1

            def still_served() -> None:
                alive.send(b"two\n")
                assert alive.read(4) == b"two\n"

            await asyncio.to_thread(still_served)
            assert not waiter.done()

            def quit_and_read() -> tuple[bytes, str]:
                alive.send(b"quit\n")
                try:
                    return alive.read_to_end()
                finally:
                    alive.close()

            assert await asyncio.to_thread(quit_and_read) == (b"", "close_notify")
            await asyncio.wait_for(waiter, TIMEOUT)
            assert h.server.connections() == 0
            await until(lambda: bool(proto.lost), "connection_lost")
            assert proto.lost == [None]
            h.server.close()  # idempotent
            await asyncio.wait_for(h.server.wait_closed(), TIMEOUT)

    run_on_uvloop(scenario())


def test_wait_closed_returns_at_once_without_connections(listening: bundledtls.BundledTLSContext) -> None:
    async def scenario() -> None:
        async with serve(LineEcho, listening) as h:
            h.server.close()
            await asyncio.wait_for(h.server.wait_closed(), TIMEOUT)

    run_on_uvloop(scenario())


# ------------------------------------------------------------------------------------------------
# 7. SNI routing, connection facts, ALPN


@pytest.fixture(scope="module")
def router(pki: PKI, factory: TLSContextFactory) -> SNIRouter:
    made = SNIRouter(factory)
    root_name = pki.client_root.subject.public_bytes()
    made.replace(
        {
            "mtls.example.com": factory.host_context(pki.edge["mtls.example.com"], [root_name]),
            "plain.example.com": factory.host_context(pki.edge["plain.example.com"], None),
        }
    )
    return made


class Facts(Recorder):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.facts = transport.get_extra_info("ssl_object")
        self.t.write(b"hi")
        self.t.close()


def _presented_host(der: bytes | None) -> list[str]:
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_sni_routing_and_connection_facts(router: SNIRouter, pki: PKI, version: ssl.TLSVersion) -> None:
    listening = cast(bundledtls.BundledTLSContext, router.listening_context)
    cases = [
        ("MTLS.Example.COM.", "mtls.example.com", True),
        ("mtls.example.com", "mtls.example.com", True),
        ("Plain.EXAMPLE.com", "plain.example.com", False),
        ("plain.example.com.", "plain.example.com", False),
    ]

    def client(port: int, sni: str) -> tuple[bytes | None, str | None, bytes]:
        ctx = client_context(version, pem=pki.client_pem, alpn=["h2", "http/1.1"])
        c = BioClient(port, ctx, sni).handshake()
        try:
            data, end = c.read_to_end()
            assert end == "close_notify"
            return c.obj.getpeercert(binary_form=True), c.obj.selected_alpn_protocol(), data
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(Facts, listening) as h:
            for i, (sni, host, mtls) in enumerate(cases):
                server_cert, alpn, data = await asyncio.to_thread(client, h.port, sni)
                assert data == b"hi"
                assert _presented_host(server_cert) == [host], sni
                assert alpn == "http/1.1"
                facts = cast(Facts, h.protocols[i]).facts
                assert isinstance(facts, bundledtls.TLSFacts)
                assert facts.version() == {TLS12: "TLSv1.2", TLS13: "TLSv1.3"}[version]
                assert facts.server_name == host
                assert router.server_name(facts) == host
                assert not facts.session_reused
                assert facts.cipher()
                if mtls:
                    assert facts.getpeercert(binary_form=True) == pki.leaf_der
                    assert facts.get_unverified_chain() == [pki.leaf_der, pki.intermediate_der]
                    assert peer_certificates(facts) == (pki.leaf_der, (pki.intermediate_der,))
                else:  # no certificate was asked for, though the client had one
                    assert facts.getpeercert(binary_form=True) is None
                    assert peer_certificates(facts) == (None, ())

    run_on_uvloop(scenario())


def test_alpn_without_overlap_completes_the_handshake_without_alpn(router: SNIRouter, pki: PKI) -> None:
    listening = cast(bundledtls.BundledTLSContext, router.listening_context)

    def client(port: int, version: ssl.TLSVersion) -> tuple[str | None, bytes]:
        c = BioClient(port, client_context(version, alpn=["h2"]), "plain.example.com").handshake()
        try:
            data, end = c.read_to_end()
            assert end == "close_notify"
            return c.obj.selected_alpn_protocol(), data
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(Facts, listening) as h:
            for i, version in enumerate(VERSIONS):
                assert await asyncio.to_thread(client, h.port, version) == (None, b"hi")
                facts = cast(Facts, h.protocols[i]).facts
                assert facts.selected_alpn_protocol() is None
                assert facts.server_name == "plain.example.com"
            assert h.server.handshakes_failed == 0

    run_on_uvloop(scenario())


def test_connection_facts_report_the_negotiated_alpn(router: SNIRouter) -> None:
    listening = cast(bundledtls.BundledTLSContext, router.listening_context)

    def client(port: int) -> str | None:
        ctx = client_context(TLS13, alpn=["h2", "http/1.1"])
        c = BioClient(port, ctx, "plain.example.com").handshake()
        try:
            c.read_to_end()
            return c.obj.selected_alpn_protocol()
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(Facts, listening) as h:
            assert await asyncio.to_thread(client, h.port) == "http/1.1"
            assert cast(Facts, h.protocol).facts.selected_alpn_protocol() == "http/1.1"

    run_on_uvloop(scenario())


# ------------------------------------------------------------------------------------------------
# 8. OpenSSL error-queue hygiene


def test_stale_errors_between_requests_do_not_break_a_keep_alive_connection(
    listening: bundledtls.BundledTLSContext,
) -> None:
    size = 2 * 1024 * 1024

    def ask(c: BioClient, line: bytes, n: int) -> bytes:
        c.send(line)
        return c.read(n)

    async def scenario() -> None:
        async with serve(LineEcho, listening) as h:
            c = await asyncio.to_thread(lambda: BioClient(h.port, client_context()).handshake())
            try:
                for i in range(3):
                    stale_openssl_error()  # on the loop's thread, between requests
                    assert await asyncio.to_thread(ask, c, b"small %d\n" % i, 8) == b"small %d\n" % i
                    stale_openssl_error()
                    answer = await asyncio.to_thread(ask, c, b"big %d\n" % size, size + 1)
                    assert answer == pattern(size) + b"\n"
                assert not h.protocol.lost
            finally:
                c.close()

    run_on_uvloop(scenario())


class Deferred(Recorder):
    """Answers each request later from another callback (as the proxy answers with what its
    upstream sent), after other code on this thread left an error in OpenSSL's queue."""

    def __init__(self, size: int, inline: bool) -> None:
        super().__init__()
        self.size, self.inline = size, inline

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.inline:
            self.answer()
        else:
            asyncio.get_running_loop().call_soon(self.answer)

    def answer(self) -> None:
        stale_openssl_error()
        self.t.write(pattern(self.size))  # more than the socket takes: SSL_write must wait


@pytest.mark.parametrize("inline", [True, False], ids=["in-data_received", "from-another-callback"])
def test_stale_error_before_a_large_write_does_not_kill_the_connection(
    listening: bundledtls.BundledTLSContext, inline: bool
) -> None:
    size = 1024 * 1024

    def client(port: int) -> bytes:
        c = BioClient(port, client_context()).handshake()
        try:
            c.send(b"GET\n")
            return c.read(size)
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(lambda: Deferred(size, inline), listening) as h:
            assert await asyncio.to_thread(client, h.port) == pattern(size)
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            assert proto.lost == [None]

    run_on_uvloop(scenario())


# ------------------------------------------------------------------------------------------------
# 9. many connections


def test_two_hundred_concurrent_clients_each_get_their_answer(
    listening: bundledtls.BundledTLSContext,
) -> None:
    contexts = {version: client_context(version) for version in VERSIONS}

    async def one(port: int, i: int) -> bytes:
        ctx = contexts[VERSIONS[i % 2]]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="plain.example.com"
        )
        try:
            writer.write(b"client %d\n" % i)
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    async def scenario() -> None:
        async with serve(LineEcho, listening) as h:
            answers = await asyncio.wait_for(
                asyncio.gather(*(one(h.port, i) for i in range(200))), 3 * TIMEOUT
            )
            assert answers == [b"client %d\n" % i for i in range(200)]
            assert h.server.handshakes_failed == 0
            assert len(h.protocols) == 200
            await until(lambda: all(p.lost for p in h.protocols), "every connection_lost")
            assert h.server.connections() == 0

    run_on_uvloop(scenario())


# --- the binding check ---------------------------------------------------------------------------


def test_required_lists_exactly_what_the_engine_calls_in_the_binding() -> None:
    # `auto` falls back to the stdlib engine when the binding lacks a name in REQUIRED: a name the
    # engine calls but REQUIRED omits would fail at run time instead, on the first connection.
    source = inspect.getsource(bundledtls)
    used = set(re.findall(r"\blib\.([A-Za-z_][A-Za-z0-9_]*)", source))
    assert used == set(bundledtls.REQUIRED)
    assert len(bundledtls.REQUIRED) == len(set(bundledtls.REQUIRED))


def test_a_binding_without_a_required_name_is_refused_and_auto_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bundledtls, "REQUIRED", (*bundledtls.REQUIRED, "SSL_no_such_function"))
    with pytest.raises(bundledtls.BundledTLSError, match="SSL_no_such_function"):
        bundledtls.Binding()

    def missing() -> bundledtls.Binding:
        raise bundledtls.BundledTLSError("cryptography's OpenSSL binding lacks SSL_no_such_function")

    monkeypatch.setattr(bundledtls, "binding", missing)
    assert not bundledtls.available()
    assert TLSSettings(engine="auto").resolved_engine() == "stdlib"
    assert TLSSettings(engine="bundled").resolved_engine() == "bundled"  # asked for: no fallback
