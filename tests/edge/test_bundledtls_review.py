"""Adversarial review of the bundled TLS engine (``bundledtls``): uvloop, real loopback sockets,
the bundled OpenSSL serving and the stdlib ``ssl`` module (over ``MemoryBIO``) as the client.

A confirmed problem still open is an ``xfail(strict=True)`` test; the problems fixed since (c3da09b)
are regression tests; everything else is a property that holds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.edge.bundledtls_support import (
    MTLS,
    NOW,
    PEM,
    PKI,
    PLAIN,
    TIMEOUT,
    TLS12,
    TLS13,
    TRUNCATED_HELLO,
    VERSIONS,
    BioClient,
    Echo,
    PausedFromTheStart,
    Recorder,
    clean_error_queue,
    handshake_and_read_to_end,
    key_pem,
    lib,
    make_pki,
    raw_exchange,
    read_until_closed,
    run_on_uvloop,
    serve,
    stale_openssl_error,
    until,
)
from tests.edge.bundledtls_support import client_context as support_client_context

from certgate.edge import bundledtls
from certgate.edge.tls import SNIRouter, TLSContextFactory, TLSSettings, client_ca_names_of


@pytest.fixture(scope="module")
def pki() -> PKI:
    return make_pki()


@pytest.fixture(scope="module")
def router(pki: PKI) -> SNIRouter:
    factory = TLSContextFactory(TLSSettings(engine="bundled"))
    made = SNIRouter(factory)
    made.replace(
        {
            MTLS: factory.host_context(pki.edge[MTLS], client_ca_names_of([pki.client_root])),
            PLAIN: factory.host_context(pki.edge[PLAIN], None),
        }
    )
    return made


def client_context(version: ssl.TLSVersion = TLS13, *, pem: bytes | None = None) -> ssl.SSLContext:
    """Every client here offers ``http/1.1`` by ALPN, as the edge's HTTP clients do."""
    return support_client_context(version, pem=pem, alpn=["http/1.1"])


@pytest.fixture(autouse=True)
def _clean_error_queue() -> Iterator[None]:
    yield from clean_error_queue()


# ================================================================================================
# confirmed problems (xfail strict while open; regression tests once fixed)


class StaleErrorAfterEachRead(Recorder):
    """A protocol whose request handling leaves an error in the thread's OpenSSL queue (any
    other user of cryptography's OpenSSL on the loop thread may; the queue is per thread)."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.t.write(data)
        stale_openssl_error()


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_stale_error_left_by_the_protocol_does_not_kill_the_connection(
    router: SNIRouter, version: ssl.TLSVersion
) -> None:
    def client(port: int) -> bytes:
        c = BioClient(port, client_context(version)).handshake()
        try:
            c.send(b"one\n")
            first = c.read(4)
            c.send(b"two\n")
            return first + c.read(4)
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(StaleErrorAfterEachRead, router) as h:
            assert await asyncio.to_thread(client, h.port) == b"one\ntwo\n"

    run_on_uvloop(scenario())


class StaleErrorInConnectionMade(Echo):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        stale_openssl_error()


def test_stale_error_left_in_connection_made_does_not_kill_the_connection(router: SNIRouter) -> None:
    def client(port: int) -> bytes:
        c = BioClient(port, client_context(TLS12)).handshake()
        try:
            time.sleep(0.05)
            c.send(b"hello\n")
            return c.read(6)
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(StaleErrorInConnectionMade, router) as h:
            assert await asyncio.to_thread(client, h.port) == b"hello\n"

    run_on_uvloop(scenario())


class PauseOnFirstDataResumeFromATask(Recorder):
    """Pauses on its first record; a task resumes it later (as a coroutine-driven app would)."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if len(self.events) == 2:
            self.pause()

            async def later() -> None:
                await asyncio.sleep(0.2)
                self.resume()

            asyncio.get_running_loop().create_task(later())


def _records_then_a_fin_all_arrive(
    router: SNIRouter, make: Callable[[], Recorder], records: list[bytes]
) -> None:
    """The client sends ``records`` in one ``sendall``, then a TCP FIN (no close_notify): the
    protocol gets every record, then ``eof_received``, then ``connection_lost``."""

    def client(port: int) -> None:
        c = BioClient(port, client_context(TLS13)).handshake()
        try:
            c.send(*records)  # the records in one sendall
            c.sock.shutdown(socket.SHUT_WR)  # then a TCP FIN (no close_notify)
            read_until_closed(c.sock)
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(make, router) as h:
            await asyncio.to_thread(client, h.port)
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            assert bytes(proto.received) == b"".join(records)
            assert proto.kinds()[-2:] == ["eof", "lost"]

    run_on_uvloop(scenario())


# Regression: a FIN read before the call_soon of resume_reading dropped the held records
# (found by this review at 8f57532, fixed in c3da09b)
def test_records_held_during_a_pause_are_delivered_before_a_later_tcp_fin(router: SNIRouter) -> None:
    _records_then_a_fin_all_arrive(router, PauseOnFirstDataResumeFromATask, [b"first;", b"second;", b"third"])


class PausesOnEveryRecordResumesFromATask(Recorder):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.pause()

        async def later() -> None:
            await asyncio.sleep(0.05)
            self.resume()

        asyncio.get_running_loop().create_task(later())


def test_every_record_before_a_fin_is_delivered_when_the_protocol_pauses_on_each(router: SNIRouter) -> None:
    records = [b"first;", b"second;", b"third;", b"fourth"]
    _records_then_a_fin_all_arrive(router, PausesOnEveryRecordResumesFromATask, records)


class WritesOnce(Recorder):
    size = 20000

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.t.write(b"y" * self.size)
        self.t.close()


# Regression: SSL_MODE_ENABLE_PARTIAL_WRITE: any write() over 16 KiB aborted the connection
# (found by this review at 8f57532, fixed in c3da09b)
@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_a_write_larger_than_one_record_is_delivered(router: SNIRouter, version: ssl.TLSVersion) -> None:
    async def scenario() -> None:
        async with serve(WritesOnce, router) as h:
            data, end = await asyncio.to_thread(handshake_and_read_to_end, h.port, client_context(version))
            assert (len(data), end) == (WritesOnce.size, "close_notify")

    run_on_uvloop(scenario())


class WritesMuchThenCloses(Recorder):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        for _ in range(512):  # 8 MiB in 16 KiB writes (a larger write() aborts: see above)
            self.t.write(b"x" * 16384)
        self.t.close()


# Regression: close() had no shutdown timeout: a non-reading client held the connection forever
# (found by this review at 8f57532, fixed in c3da09b)
def test_close_towards_a_client_that_never_reads_ends_in_bounded_time(router: SNIRouter) -> None:
    done = threading.Event()

    def client(port: int) -> None:
        c = BioClient(port, client_context(), rcvbuf=4096).handshake()
        try:
            done.wait(TIMEOUT)  # never reads
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(WritesMuchThenCloses, router, shutdown_timeout=0.5) as h:
            task = asyncio.ensure_future(asyncio.to_thread(client, h.port))
            try:
                await until(lambda: bool(h.protocols), "the connection")
                proto = h.protocol
                assert proto.t.is_closing()
                assert proto.t.get_write_buffer_size() > (1 << 20)  # the response sits in user space
                await until(lambda: bool(proto.lost), "connection_lost after close()", within=2.0)
            finally:
                done.set()
                await task

    run_on_uvloop(scenario())


# Regression: TLSFacts.alpn was always None
# (found by this review at 8f57532, fixed in c3da09b)
def test_selected_alpn_protocol_is_reported(router: SNIRouter) -> None:
    def client(port: int) -> str | None:
        c = BioClient(port, client_context()).handshake()
        try:
            c.send(b"x")
            c.read(1)
            return c.obj.selected_alpn_protocol()
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            assert await asyncio.to_thread(client, h.port) == "http/1.1"
            assert h.protocol.t.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"

    run_on_uvloop(scenario())


# ================================================================================================
# properties that hold


def _handshake_and_echo(port: int, ctx: ssl.SSLContext, sni: str | None) -> tuple[bytes | None, bool]:
    """(the server certificate the client saw, whether the session was reused)."""
    c = BioClient(port, ctx, server_name=sni)
    try:
        c.handshake()
        c.send(b"ping")
        assert c.read(4) == b"ping"
        return c.obj.getpeercert(binary_form=True), c.obj.session_reused
    finally:
        c.close()


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_facts_sni_routing_and_no_certificate_request_off_mtls_hosts(
    router: SNIRouter, pki: PKI, version: ssl.TLSVersion
) -> None:
    with_cert = client_context(version, pem=pki.client_pem)

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            cases: list[tuple[str | None, bytes | None]] = [
                (MTLS, pki.edge_leaf[MTLS]),
                (PLAIN, pki.edge_leaf[PLAIN]),
                ("nope.example.com", None),
                (None, None),
            ]
            for i, (sni, server_leaf) in enumerate(cases):
                seen, reused = await asyncio.to_thread(_handshake_and_echo, h.port, with_cert, sni)
                facts = h.protocols[i].t.get_extra_info("ssl_object")
                assert not reused and not facts.session_reused
                assert facts.server_name == sni
                if server_leaf is None:  # unknown or no SNI: placeholder, never a real host's
                    assert seen not in pki.edge_leaf.values()
                else:
                    assert seen == server_leaf
                if sni == MTLS:
                    assert facts.getpeercert(binary_form=True) == pki.leaf_der
                    assert facts.get_unverified_chain() == [pki.leaf_der, pki.intermediate_der]
                else:  # no CertificateRequest: the client's certificate never left it
                    assert facts.getpeercert(binary_form=True) is None
                    assert facts.get_unverified_chain() == []

    run_on_uvloop(scenario())


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_sessions_are_never_resumed_on_loopback(router: SNIRouter, pki: PKI, version: ssl.TLSVersion) -> None:
    ctx = client_context(version, pem=pki.client_pem)

    def two_connections(port: int) -> list[bool]:
        first = BioClient(port, ctx, server_name=MTLS).handshake()
        first.send(b"a")
        first.read(1)  # TLS 1.3 tickets arrive with the first data
        session = first.obj.session
        first.close()
        out = [first.obj.session_reused]
        for sni in (MTLS, PLAIN):
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni, session=session)
            c = BioClient.__new__(BioClient)
            c.sock, c.incoming, c.outgoing, c.obj = sock, incoming, outgoing, obj
            c.handshake().send(b"b")
            c.read(1)
            out.append(obj.session_reused)
            c.close()
        return out

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            assert await asyncio.to_thread(two_connections, h.port) == [False, False, False]
            assert [p.t.get_extra_info("ssl_object").session_reused for p in h.protocols] == [False] * 3
            assert [p.t.get_extra_info("ssl_object").getpeercert(True) for p in h.protocols] == [
                pki.leaf_der,
                pki.leaf_der,
                None,
            ]

    run_on_uvloop(scenario())


def test_transport_calls_after_connection_lost_are_harmless(router: SNIRouter) -> None:
    def client(port: int) -> None:
        c = BioClient(port, client_context()).handshake()
        c.send(b"x")
        c.read(1)
        c.close()

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            await asyncio.to_thread(client, h.port)
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            t = h.transport()
            assert t._ssl is None
            calls: list[Callable[[], None]] = [
                lambda: t.write(b"late"),
                lambda: t.writelines([b"a", b"b"]),
                t.pause_reading,
                t.resume_reading,
                t.close,
                t.abort,
                t._resume_records,
            ]
            for call in calls:
                call()
            assert t.is_closing() and not t.is_reading()
            assert t.get_extra_info("ssl_object") is not None
            await asyncio.sleep(0.05)
            assert proto.kinds() == ["made", "data", "eof", "lost"]
            assert h.server.connections() == 0

    run_on_uvloop(scenario())


def test_failed_handshakes_make_no_protocol_leave_no_openssl_errors_and_are_counted(
    router: SNIRouter,
) -> None:
    def garbage(port: int) -> bytes:
        return raw_exchange(port, b"GET / HTTP/1.1\r\n\r\n")

    def fin_mid_hello(port: int) -> bytes:
        return raw_exchange(port, TRUNCATED_HELLO, fin=True)

    def rst_mid_handshake(port: int) -> None:
        c = BioClient(port, client_context())
        try:
            c.obj.do_handshake()
        except ssl.SSLWantReadError:
            c.flush()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()

    def silent(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            return read_until_closed(sock)

    async def scenario() -> None:
        async with serve(Echo, router, handshake_timeout=0.3) as h:
            assert not (await asyncio.to_thread(garbage, h.port)).startswith(b"HTTP")
            await asyncio.to_thread(fin_mid_hello, h.port)
            await asyncio.to_thread(rst_mid_handshake, h.port)
            assert await asyncio.to_thread(silent, h.port) == b""  # the handshake timeout
            await until(lambda: h.server.handshakes_failed == 4, "four failed handshakes")
            assert h.protocols == [] and h.server.connections() == 0
            assert lib().ERR_peek_error() == 0
            stale_openssl_error()  # a stale error before a handshake does not fail it
            await asyncio.to_thread(_handshake_and_echo, h.port, client_context(TLS12), PLAIN)
            assert h.server.handshakes_failed == 4

    run_on_uvloop(scenario())


def test_a_corrupted_record_aborts_only_that_connection_and_leaves_no_error(router: SNIRouter) -> None:
    def client(port: int) -> str:
        c = BioClient(port, client_context()).handshake()
        try:
            c.obj.write(b"hello")
            record = bytearray(c.outgoing.read())
            record[-1] ^= 1  # break the AEAD tag
            c.sock.sendall(bytes(record))
            return c.read_to_end()[1]
        except ssl.SSLError:
            return "alert"
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            assert await asyncio.to_thread(client, h.port) in ("alert", "reset", "eof")
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            assert proto.received == b"" and proto.kinds() == ["made", "lost"]
            assert lib().ERR_peek_error() == 0
            await asyncio.to_thread(_handshake_and_echo, h.port, client_context(), PLAIN)

    run_on_uvloop(scenario())


class OpenSSLClient:
    """A client on the bundled OpenSSL itself (through memory BIOs over a blocking socket), for
    what the stdlib client cannot do (renegotiation)."""

    def __init__(
        self, port: int, server_name: bytes, *, version: int | None = None, curves: bytes = b""
    ) -> None:
        b = bundledtls.binding()
        self.lib, self.ffi = lib, ffi = b.lib, b.ffi
        self.ctx = ffi.gc(lib.SSL_CTX_new(lib.TLS_client_method()), lib.SSL_CTX_free)
        version = lib.TLS1_2_VERSION if version is None else version
        lib.SSL_CTX_set_min_proto_version(self.ctx, version)
        lib.SSL_CTX_set_max_proto_version(self.ctx, version)
        if curves:
            assert lib.SSL_CTX_set1_curves_list(self.ctx, curves) == 1
        self.ssl = ffi.gc(lib.SSL_new(self.ctx), lib.SSL_free)
        self.rbio, self.wbio = lib.BIO_new(lib.BIO_s_mem()), lib.BIO_new(lib.BIO_s_mem())
        lib.BIO_set_mem_eof_return(self.rbio, -1)
        lib.SSL_set_bio(self.ssl, self.rbio, self.wbio)
        lib.SSL_set_connect_state(self.ssl)
        lib.SSL_set_tlsext_host_name(self.ssl, server_name)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = ffi.new("char[]", 1 << 16)

    def flush(self) -> None:
        while (n := self.lib.BIO_read(self.wbio, self.buf, 1 << 16)) > 0:
            self.sock.sendall(self.ffi.unpack(self.buf, n))

    def fill(self) -> bool:
        try:
            data = self.sock.recv(1 << 16)
        except (ConnectionResetError, TimeoutError):
            return False
        if data:
            self.lib.BIO_write(self.rbio, data, len(data))
        return bool(data)

    def step(self, call: Callable[[], int]) -> int:
        """Run ``call`` until it stops wanting to read; its last result (> 0: success)."""
        while True:
            self.lib.ERR_clear_error()
            r = call()
            self.flush()
            if r > 0 or self.lib.SSL_get_error(self.ssl, r) != self.lib.SSL_ERROR_WANT_READ:
                self.lib.ERR_clear_error()
                return r
            if not self.fill():
                self.lib.ERR_clear_error()
                return r

    def close(self) -> None:
        self.sock.close()


def test_client_renegotiation_is_refused_and_never_changes_the_facts(router: SNIRouter, pki: PKI) -> None:
    def client(port: int) -> tuple[int, int, bytes]:
        c = OpenSSLClient(port, MTLS.encode())
        try:
            assert c.step(lambda: c.lib.SSL_do_handshake(c.ssl)) == 1
            assert c.lib.SSL_write(c.ssl, b"one", 3) == 3
            c.flush()
            got = c.ffi.new("char[]", 16)
            assert c.step(lambda: c.lib.SSL_read(c.ssl, got, 16)) == 3
            renegotiate = c.lib.SSL_renegotiate(c.ssl)
            again = c.step(lambda: c.lib.SSL_do_handshake(c.ssl))
            return renegotiate, again, c.ffi.unpack(got, 3)
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            renegotiate, again, echoed = await asyncio.to_thread(client, h.port)
            assert echoed == b"one"
            proto = h.protocol
            await until(lambda: bool(proto.lost), "connection_lost")
            # the client sent no certificate in the first handshake; none appeared afterwards
            facts = proto.t.get_extra_info("ssl_object")
            assert facts.getpeercert(binary_form=True) is None and facts.server_name == MTLS
            assert renegotiate == 1 and again != 1  # the server never completed a renegotiation
            assert bytes(proto.received) == b"one"

    run_on_uvloop(scenario())


def test_an_sni_lookup_failure_fails_the_handshake_without_a_protocol(pki: PKI) -> None:
    class Exploding(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("context cannot be made")

    factory = TLSContextFactory(TLSSettings(engine="bundled"))
    failing = SNIRouter(factory)
    failing.replace(Exploding())
    alerting = SNIRouter(factory, unknown_sni="alert")

    def handshake(port: int, sni: str | None) -> str:
        try:
            _handshake_and_echo(port, client_context(), sni)
        except ssl.SSLError as exc:
            return str(exc.reason)
        return "completed"

    async def scenario() -> None:
        async with serve(Echo, failing) as h:
            assert "INTERNAL_ERROR" in await asyncio.to_thread(handshake, h.port, PLAIN)
            assert await asyncio.to_thread(handshake, h.port, None) == "completed"
            await until(lambda: h.server.handshakes_failed == 1, "the failed handshake")
            assert lib().ERR_peek_error() == 0
        async with serve(Echo, alerting) as h:
            assert "UNRECOGNIZED_NAME" in await asyncio.to_thread(handshake, h.port, "nope.example.com")
            assert len(h.protocols) == 0

    run_on_uvloop(scenario())


def test_a_paused_connection_buffers_at_most_one_socket_read_whatever_the_client_sends(
    router: SNIRouter,
) -> None:
    stop = threading.Event()
    sent = [0]

    def client(port: int) -> None:
        c = BioClient(port, client_context()).handshake()
        try:
            c.obj.write(b"z" * (4 << 20))  # 4 MiB of records, more than every buffer on the way
            data = c.outgoing.read()
            c.sock.settimeout(0.05)
            view = memoryview(data)
            while view and not stop.is_set():
                try:
                    n = c.sock.send(view)
                except TimeoutError:
                    continue
                view = view[n:]
                sent[0] += n
        finally:
            c.close()

    def pending(transport: bundledtls.BundledTLSTransport) -> int:
        ffi = bundledtls.binding().ffi
        return int(lib().BIO_get_mem_data(transport._rbio, ffi.new("char **")))

    async def scenario() -> None:
        async with serve(PausedFromTheStart, router) as h:
            task = asyncio.ensure_future(asyncio.to_thread(client, h.port))
            try:
                await until(lambda: bool(h.protocols), "the connection")
                await asyncio.sleep(0.3)  # the client sends until the kernel buffers are full
                assert sent[0] > (256 << 10)
                assert pending(h.transport()) <= (256 << 10)  # uvloop's read size, no more
                assert h.protocol.received == b""
            finally:
                stop.set()
                await task

    run_on_uvloop(scenario())


@pytest.mark.parametrize("second", [None, b"nope.example.com"], ids=["no-sni", "unknown-sni"])
def test_a_retried_client_hello_without_the_mtls_name_gets_neither_its_certificate_nor_a_request(
    router: SNIRouter, pki: PKI, second: bytes | None
) -> None:
    def client(port: int) -> tuple[bytes, int]:
        # Only a P-384 key share while the server prefers X25519: the server answers HelloRetryRequest.
        c = OpenSSLClient(port, MTLS.encode(), version=c_lib.TLS1_3_VERSION, curves=b"P-384:X25519")
        try:
            c.lib.ERR_clear_error()
            assert c.lib.SSL_do_handshake(c.ssl) != 1
            c.flush()
            assert c.fill()  # the HelloRetryRequest
            c.lib.SSL_set_tlsext_host_name(c.ssl, c.ffi.NULL if second is None else second)
            assert c.step(lambda: c.lib.SSL_do_handshake(c.ssl)) == 1
            assert c.lib.SSL_write(c.ssl, b"hi", 2) == 2
            c.flush()
            got = c.ffi.new("char[]", 4)
            assert c.step(lambda: c.lib.SSL_read(c.ssl, got, 4)) == 2
            peer = c.lib.SSL_get_peer_certificate(c.ssl)
            bio = c.ffi.gc(c.lib.BIO_new(c.lib.BIO_s_mem()), c.lib.BIO_free)
            try:
                der = bundledtls._der_of(bundledtls.binding(), peer, bio)
            finally:
                c.lib.X509_free(peer)
            names = c.lib.SSL_get_client_CA_list(c.ssl)
            return der, 0 if names == c.ffi.NULL else int(c.lib.sk_X509_NAME_num(names))
        finally:
            c.close()

    c_lib = lib()

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            server_cert, ca_names = await asyncio.to_thread(client, h.port)
            facts = h.protocol.t.get_extra_info("ssl_object")
            assert facts.server_name == (None if second is None else second.decode())
            assert (server_cert == pki.edge_leaf[MTLS], ca_names) == (False, 0)

    run_on_uvloop(scenario())


def test_tiny_records_in_one_burst_reach_the_protocol_in_few_calls(router: SNIRouter) -> None:
    count = 2000

    def client(port: int) -> None:
        c = BioClient(port, client_context()).handshake()
        try:
            c.send(*([b"."] * count))  # 2000 one-byte records, one sendall (~44 KB)
            assert c.read(count) == b"." * count
        finally:
            c.close()

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            await asyncio.to_thread(client, h.port)
            calls = h.protocol.kinds().count("data")
            assert calls <= 20, f"{calls} data_received calls for {count} records"

    run_on_uvloop(scenario())


def test_an_oversized_client_certificate_message_fails_the_handshake_without_a_protocol(
    router: SNIRouter, pki: PKI
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fat client")])
    fat = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x00" * 150_000), False
        )
        .sign(key, hashes.SHA256())
    )
    pem = fat.public_bytes(PEM) + key_pem(key)

    def client(port: int) -> str:
        try:
            _handshake_and_echo(port, client_context(TLS13, pem=pem), MTLS)
        except (ssl.SSLError, ConnectionError) as exc:
            return type(exc).__name__
        return "completed"

    async def scenario() -> None:
        async with serve(Echo, router) as h:
            assert await asyncio.to_thread(client, h.port) != "completed"
            await until(lambda: h.server.handshakes_failed == 1, "the failed handshake")
            assert h.protocols == []
            assert lib().ERR_peek_error() == 0
            # a normal mTLS client still gets through
            seen, _ = await asyncio.to_thread(
                _handshake_and_echo, h.port, client_context(TLS13, pem=pki.client_pem), MTLS
            )
            assert seen == pki.edge_leaf[MTLS]

    run_on_uvloop(scenario())
