"""Shared helpers of the bundled TLS engine's tests (``test_bundledtls.py`` and
``test_bundledtls_review.py``): a test PKI, stdlib client contexts, a recording protocol, a
loopback server harness on uvloop and a blocking ``ssl.MemoryBIO`` client.

Not a test module: the test files import from it, and wrap :func:`make_pki` and
:func:`clean_error_queue` in their own fixtures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certgate.edge import bundledtls
from certgate.edge.tls import SNIRouter
from certgate.snapshot.format import EdgeTLSCertificate

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
NOW = dt.datetime.now(dt.UTC)
TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
VERSIONS = [TLS12, TLS13]
TIMEOUT = 5.0
MTLS, PLAIN = "mtls.example.com", "plain.example.com"


# ------------------------------------------------------------------------------------------------
# test PKI (ECDSA P-256)


def certificate(
    subject: str,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    ca: bool,
    dns: str | None = None,
    client: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass(frozen=True)
class PKI:
    edge: dict[str, EdgeTLSCertificate]  # MTLS and PLAIN, issued by one edge CA
    edge_leaf: dict[str, bytes]  # their leaf certificates, DER
    client_root: x509.Certificate
    client_chain: tuple[x509.Certificate, x509.Certificate]  # leaf, intermediate
    client_pem: bytes  # chain and key, for load_cert_chain

    @property
    def leaf_der(self) -> bytes:
        return self.client_chain[0].public_bytes(DER)

    @property
    def intermediate_der(self) -> bytes:
        return self.client_chain[1].public_bytes(DER)


def make_pki() -> PKI:
    """An edge CA with MTLS and PLAIN leaves; a client root, an intermediate and a client leaf."""
    edge_ca = certificate("Edge CA", issuer=None, ca=True)
    edge, edge_leaf = {}, {}
    for host in (MTLS, PLAIN):
        cert, key = certificate(host, issuer=edge_ca, ca=False, dns=host)
        edge[host] = EdgeTLSCertificate(
            chain_pem=cert.public_bytes(PEM).decode(), key_pem=key_pem(key).decode()
        )
        edge_leaf[host] = cert.public_bytes(DER)
    root = certificate("Client Root", issuer=None, ca=True)
    intermediate = certificate("Client Issuing CA", issuer=root, ca=True)
    leaf, leaf_key = certificate("device-1", issuer=intermediate, ca=False, client=True)
    client_pem = leaf.public_bytes(PEM) + intermediate[0].public_bytes(PEM) + key_pem(leaf_key)
    return PKI(edge, edge_leaf, root[0], (leaf, intermediate[0]), client_pem)


def client_context(
    version: ssl.TLSVersion = TLS13, *, pem: bytes | None = None, alpn: list[str] | None = None
) -> ssl.SSLContext:
    """A stdlib client context for one TLS version that verifies nothing; ``pem`` is a client
    chain and key, ``alpn`` the protocols it offers (none unless given)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    if pem is not None:
        with tempfile.NamedTemporaryFile() as file:
            file.write(pem)
            file.flush()
            ctx.load_cert_chain(file.name)
    return ctx


# ------------------------------------------------------------------------------------------------
# the loop and cryptography's OpenSSL


def run_on_uvloop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Loopback tests run on uvloop, the edge's production loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


async def until(predicate: Callable[[], bool], what: str, within: float = TIMEOUT) -> None:
    """Wait (serving the loop) until ``predicate()`` holds; fail with ``what`` after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


def lib() -> Any:
    """cryptography's OpenSSL, which the bundled engine uses."""
    return bundledtls.binding().lib


def stale_openssl_error() -> None:
    """Leave errors in this thread's error queue of cryptography's OpenSSL, like a failed call
    elsewhere in the process would (the queue is per thread, shared by every user of the library)."""
    b = bundledtls.binding()
    lib, ffi = b.lib, b.ffi
    lib.ERR_put_error(lib.ERR_LIB_EVP, 0, 65, b"elsewhere.c", 1)  # any reason: it is never read
    garbage = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    bio = ffi.gc(lib.BIO_new_mem_buf(garbage, len(garbage)), lib.BIO_free)
    assert lib.PEM_read_bio_X509(bio, ffi.NULL, ffi.NULL, ffi.NULL) == ffi.NULL
    assert lib.ERR_peek_error() != 0


def clean_error_queue() -> Iterator[None]:
    """The body of each test file's autouse fixture: every test starts and ends with an empty
    error queue (some tests push errors on purpose)."""
    lib().ERR_clear_error()
    yield
    lib().ERR_clear_error()


# ------------------------------------------------------------------------------------------------
# the recording protocols


class Recorder(asyncio.Protocol):
    """Records every callback and every breach of asyncio's protocol contract."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.breaches: list[str] = []
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.made = self.eof = False
        self.lost: list[Exception | None] = []
        self.reading_paused = False  # set by pause() and resume()

    @property
    def t(self) -> asyncio.Transport:
        assert self.transport is not None
        return self.transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.made:
            self.breaches.append("connection_made twice")
        self.made = True
        self.transport = cast(asyncio.Transport, transport)
        self.events.append(("made", None))

    def data_received(self, data: bytes) -> None:
        if not self.made or self.lost:
            self.breaches.append("data_received outside the connection")
        if self.eof:
            self.breaches.append("data_received after eof_received")
        if self.reading_paused:
            self.breaches.append("data_received while reading is paused")
        if not isinstance(data, bytes):
            self.breaches.append(f"data_received got {type(data).__name__}")
        self.received += data
        self.events.append(("data", bytes(data)))

    def eof_received(self) -> bool | None:
        if not self.made or self.lost or self.eof:
            self.breaches.append("eof_received out of order")
        if self.reading_paused:
            self.breaches.append("eof_received while reading is paused")
        self.eof = True
        self.events.append(("eof", None))
        return None

    def pause_writing(self) -> None:
        self.events.append(("pause_writing", self.t.get_write_buffer_size()))

    def resume_writing(self) -> None:
        self.events.append(("resume_writing", self.t.get_write_buffer_size()))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.made:
            self.breaches.append("connection_lost before connection_made")
        if self.lost:
            self.breaches.append("connection_lost twice")
        self.lost.append(exc)
        self.events.append(("lost", exc))

    def pause(self) -> None:
        self.reading_paused = True
        self.t.pause_reading()

    def resume(self) -> None:
        self.reading_paused = False
        self.t.resume_reading()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


class Echo(Recorder):
    """Writes back every chunk it receives, as it comes."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.t.write(data)


class LineEcho(Recorder):
    """Answers every line with the line; ``quit`` closes; ``big N`` answers N bytes then ``\\n``."""

    def __init__(self) -> None:
        super().__init__()
        self._line = b""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._line += data
        while b"\n" in self._line:
            line, self._line = self._line.split(b"\n", 1)
            if line == b"quit":
                self.t.close()
                return
            if line.startswith(b"big "):
                self.t.write(pattern(int(line[4:])) + b"\n")
            else:
                self.t.write(line + b"\n")


class PausedFromTheStart(Recorder):
    """Pauses reading in ``connection_made``; the test resumes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.pause()


def pattern(n: int) -> bytes:
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


# ------------------------------------------------------------------------------------------------
# the server harness and the client


@dataclass
class Harness:
    server: bundledtls.BundledTLSServer
    port: int
    protocols: list[Recorder] = field(default_factory=list)

    @property
    def protocol(self) -> Recorder:
        assert len(self.protocols) == 1, f"{len(self.protocols)} connections"
        return self.protocols[0]

    def transport(self) -> bundledtls.BundledTLSTransport:
        return cast(bundledtls.BundledTLSTransport, self.protocol.t)


@asynccontextmanager
async def serve(
    make: Callable[[], Recorder],
    listening: bundledtls.BundledTLSContext | SNIRouter,
    *,
    handshake_timeout: float = 30.0,
    shutdown_timeout: float | None = None,
) -> AsyncIterator[Harness]:
    """A ``BundledTLSServer`` on a loopback port, listening with ``listening`` (or a router's
    listening context); the test fails if any protocol breached the contract."""
    loop = asyncio.get_running_loop()
    assert "uvloop" in type(loop).__module__
    if isinstance(listening, SNIRouter):
        context = listening.listening_context
        assert isinstance(context, bundledtls.BundledTLSContext)
        listening = context
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    harness: Harness

    def factory() -> Recorder:
        protocol = make()
        harness.protocols.append(protocol)
        return protocol

    extra: dict[str, Any] = {} if shutdown_timeout is None else {"shutdown_timeout": shutdown_timeout}
    server = bundledtls.BundledTLSServer(
        loop, sock, factory, listening, handshake_timeout=handshake_timeout, max_intermediates=8, **extra
    )
    harness = Harness(server, sock.getsockname()[1])
    await server.start()
    try:
        yield harness
    finally:
        server.close()
        for protocol in harness.protocols:
            if protocol.transport is not None:
                protocol.transport.abort()  # frees the SSL of what a failed test left open
        await asyncio.sleep(0.01)
    breaches = [b for p in harness.protocols for b in p.breaches]
    assert not breaches, breaches


class BioClient:
    """A blocking TLS client over ``ssl.MemoryBIO``: exact control of the bytes on the wire."""

    def __init__(
        self, port: int, ctx: ssl.SSLContext, server_name: str | None = PLAIN, *, rcvbuf: int = 0
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_name)

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def handshake(self) -> BioClient:
        while True:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                if not self._fill():
                    raise ConnectionError("EOF during the handshake") from None
                continue
            self.flush()
            return self

    def send(self, *records: bytes) -> None:
        """Each argument becomes one TLS record; all of them leave in one ``sendall``."""
        for record in records:
            self.obj.write(record)
        self.flush()

    def send_close_notify(self) -> None:
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        self.flush()

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            try:
                out += self.obj.read(n - len(out))
            except ssl.SSLWantReadError:
                if not self._fill():
                    raise ConnectionError(f"EOF after {len(out)} of {n} bytes") from None
        return bytes(out)

    def read_to_end(self) -> tuple[bytes, str]:
        """Everything until the connection ends, and how: 'close_notify', 'eof' (TCP only), 'reset'."""
        out = bytearray()
        while True:
            try:
                chunk = self.obj.read(1 << 16)
                if not chunk:  # SSLObject.read answers b"" once close_notify was read
                    return bytes(out), "close_notify"
                out += chunk
            except ssl.SSLWantReadError:
                try:
                    data = self.sock.recv(1 << 16)
                except ConnectionResetError:
                    return bytes(out), "reset"
                if data:
                    self.incoming.write(data)
                else:
                    self.incoming.write_eof()
            except ssl.SSLZeroReturnError:
                return bytes(out), "close_notify"
            except ssl.SSLEOFError:
                return bytes(out), "eof"

    def close(self) -> None:
        self.sock.close()


def handshake_and_read_to_end(port: int, ctx: ssl.SSLContext) -> tuple[bytes, str]:
    """A :class:`BioClient` handshake, then :meth:`BioClient.read_to_end`."""
    c = BioClient(port, ctx).handshake()
    try:
        return c.read_to_end()
    finally:
        c.close()


#: A TLS record header announcing a 512-byte ClientHello, and the hello's first 6 bytes.
TRUNCATED_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def raw_exchange(port: int, data: bytes, *, fin: bool = False) -> bytes:
    """Plain TCP: send ``data`` (then a FIN if ``fin``), and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        if fin:
            sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    """Every byte until the peer closes the TCP connection (a reset ends it too)."""
    out = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk
