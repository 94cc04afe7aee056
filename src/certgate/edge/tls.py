"""TLS termination for the edge: one stdlib ``SSLContext`` per hostname, chosen by SNI.

What this module guarantees (docs/edge-tls.md explains the choices):

* On an mTLS hostname the client is *asked* for a certificate, with the hostname's trust anchors
  as CA names, and the handshake completes whatever it sends (nothing, untrusted, expired, ...).
  The verdict is made per request by ``clientauth`` from :func:`peer_certificates`.
* On any other hostname no certificate is requested at all.
* No verdict can ride in a TLS session: session tickets and the server session cache are off on
  every context, so every connection is a full handshake whose peer certificate is its own.
* TLS 1.2 and 1.3 only, no renegotiation, no compression.
* Private keys are handed to OpenSSL through an anonymous memory file, never a path on disk.

Unknown or absent SNI is served by the listening (default) context, which has a self-signed
placeholder certificate and requests no client certificate; the HTTP layer then answers 404/421.
``SNIRouter(unknown_sni="alert")`` fails such handshakes with ``unrecognized_name`` instead.

This module never decides anything about a request; it only sets up TLS and reports facts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import ssl
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certgate.edge import _openssl, bundledtls
from certgate.errors import CertGateError
from certgate.snapshot.format import EdgeTLSCertificate, HostPolicy

#: A client may send any number of certificates; we keep at most this many intermediates.
MAX_CLIENT_INTERMEDIATES: Final = 8

SSLConnection = ssl.SSLObject | ssl.SSLSocket | bundledtls.TLSFacts
ServerContext = ssl.SSLContext | bundledtls.BundledTLSContext
"""A hostname's server context: stdlib ``SSLContext`` or the bundled engine's ``SSL_CTX``."""

Engine = Literal["bundled", "stdlib"]
ENGINES: Final = ("auto", "bundled", "stdlib")


class TLSContextError(CertGateError):
    """An edge certificate or key from the snapshot cannot be loaded into a TLS context."""

    default_reason = "edge.tls_certificate"


class TLSSelfCheckError(CertGateError):
    """The start-up self-check failed: this process cannot terminate mTLS safely."""

    default_reason = "edge.tls_self_check"


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """Protocol settings shared by every context of an edge process."""

    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    alpn_protocols: tuple[str, ...] = ("http/1.1",)
    engine: Literal["auto", "bundled", "stdlib"] = "auto"
    """``bundled``: TLS with the OpenSSL bundled in cryptography (:mod:`bundledtls`); ``stdlib``:
    the ``ssl`` module (system OpenSSL) on uvloop's transport; ``auto``: bundled when its binding
    is complete."""

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
        if self.minimum_version < ssl.TLSVersion.TLSv1_2:
            raise ValueError("the edge does not offer TLS older than 1.2")
        if self.maximum_version < self.minimum_version:
            raise ValueError("maximum_version is below minimum_version")

    def fingerprint(self) -> bytes:
        versions = (int(self.minimum_version), int(self.maximum_version))
        return repr((*versions, self.alpn_protocols, self.resolved_engine())).encode()

    def resolved_engine(self) -> Engine:
        if self.engine == "auto":
            return "bundled" if bundledtls.available() else "stdlib"
        return self.engine


# ----------------------------------------------------------------------------------------------
# contexts


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise TLSContextError("the edge private key is encrypted; snapshots carry unencrypted keys")


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read ``data`` from, backed by memory where the platform allows."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("certgate-edge-key", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    # Fallback: a 0600 file that exists only for the duration of the load.
    fd, path = tempfile.mkstemp(prefix="certgate-edge-")
    try:
        os.write(fd, data)
        os.close(fd)
        fd = -1
        yield path
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)


def _load_certificate(ctx: ssl.SSLContext, certificate: EdgeTLSCertificate) -> None:
    # chain first (leaf, then intermediates), key after it: OpenSSL takes the key from the same file
    data = (certificate.chain_pem.strip() + "\n" + certificate.key_pem.strip() + "\n").encode()
    try:
        with _private_file(data) as path:
            ctx.load_cert_chain(path, password=_no_password)
    except ssl.SSLError as exc:
        raise TLSContextError(f"edge certificate or key cannot be loaded: {exc.reason or exc}") from None


def _new_context(settings: TLSSettings) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = settings.minimum_version
    ctx.maximum_version = settings.maximum_version
    ctx.options |= (
        ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET | ssl.OP_CIPHER_SERVER_PREFERENCE
    )
    # No resumption at all: a resumed session would carry another connection's peer certificate
    # (measured: across hostnames too) and loses the client's intermediates. See docs/edge-tls.md.
    ctx.num_tickets = 0
    _openssl.disable_session_cache(ctx)
    if settings.alpn_protocols:
        ctx.set_alpn_protocols(list(settings.alpn_protocols))
    return ctx


def _placeholder_certificate() -> EdgeTLSCertificate:
    """A self-signed certificate for connections whose SNI names no served hostname."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certgate unknown host")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A fixed window: nothing trusts this certificate, so its dates only need to parse.
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("unknown.certgate.invalid")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(key, hashes.SHA256())
    )
    return EdgeTLSCertificate(
        chain_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def client_ca_names_of(anchors: Sequence[x509.Certificate]) -> tuple[bytes, ...]:
    """The CertificateRequest CA names for a trust set: each anchor's subject, deduplicated, DER."""
    names: dict[bytes, None] = {}
    for anchor in anchors:
        names.setdefault(anchor.subject.public_bytes(), None)
    return tuple(names)


class TLSContextFactory:
    """Builds the edge's server contexts from edge certificates and trust anchors.

    ``client_ca_names=None`` means "not an mTLS hostname" (no CertificateRequest); a sequence,
    even empty, means "request a certificate, naming these CAs".
    """

    def __init__(
        self, settings: TLSSettings | None = None, *, default_certificate: EdgeTLSCertificate | None = None
    ) -> None:
        self.settings = settings or TLSSettings()
        self.engine: Engine = self.settings.resolved_engine()
        if self.engine == "bundled":
            bundledtls.binding()  # raises BundledTLSError now, not on the first hostname
        self._default_certificate = default_certificate

    def context_key(self, certificate: EdgeTLSCertificate, client_ca_names: Sequence[bytes] | None) -> bytes:
        """A content hash of everything a host context is built from: equal keys, equal contexts."""
        digest = hashlib.sha256(self.settings.fingerprint())
        for part in (certificate.chain_pem.encode(), certificate.key_pem.encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
        if client_ca_names is None:
            digest.update(b"\x00")
        else:
            digest.update(b"\x01" + len(client_ca_names).to_bytes(4, "big"))
            for name in client_ca_names:
                digest.update(len(name).to_bytes(4, "big") + name)
        return digest.digest()

    def host_context(
        self, certificate: EdgeTLSCertificate, client_ca_names: Sequence[bytes] | None
    ) -> ServerContext:
        if self.engine == "bundled":
            try:
                return bundledtls.BundledTLSContext(
                    chain_pem=certificate.chain_pem.strip().encode() + b"\n",
                    key_pem=certificate.key_pem.strip().encode() + b"\n",
                    client_ca_names=client_ca_names,
                    minimum_version=int(self.settings.minimum_version),
                    maximum_version=int(self.settings.maximum_version),
                    alpn_protocols=self.settings.alpn_protocols,
                )
            except ValueError as exc:
                raise TLSContextError(f"edge certificate or key cannot be loaded: {exc}") from None
        return self.stdlib_context(certificate, client_ca_names)

    def stdlib_context(
        self, certificate: EdgeTLSCertificate, client_ca_names: Sequence[bytes] | None
    ) -> ssl.SSLContext:
        ctx = _new_context(self.settings)
        _load_certificate(ctx, certificate)
        _openssl.configure_client_auth(
            ctx, request=client_ca_names is not None, ca_names_der=tuple(client_ca_names or ())
        )
        return ctx

    def default_context(self) -> ServerContext:
        """A context for unknown or absent SNI: placeholder certificate, no client certificate."""
        if self._default_certificate is None:
            self._default_certificate = _placeholder_certificate()
        return self.host_context(self._default_certificate, None)


def build_host_context(
    policy: HostPolicy, anchors: Sequence[x509.Certificate], settings: TLSSettings | None = None
) -> ServerContext:
    """The server context of one hostname: its edge certificate, and client auth iff it is mTLS."""
    names = client_ca_names_of(anchors) if policy.mtls else None
    return TLSContextFactory(settings).host_context(policy.certificate, names)


# ----------------------------------------------------------------------------------------------
# SNI routing and per-connection facts


def normalize_server_name(name: str) -> str:
    return name.rstrip(".").lower()


class SNIRouter:
    """Chooses the context of each handshake by SNI; the hostname map is replaced atomically.

    Serve :attr:`listening_context` (``create_server(ssl=...)`` for the stdlib engine,
    ``BundledTLSServer`` for the bundled engine). Hostnames are exact names or one-label wildcards
    (``*.example.com``), matched like ``Snapshot.host``. :attr:`on_client_hello`, if set, is
    called for every ClientHello (SNI or not), before the context is chosen.
    """

    def __init__(
        self,
        factory: TLSContextFactory | None = None,
        *,
        unknown_sni: Literal["default", "alert"] = "default",
    ) -> None:
        if unknown_sni not in ("default", "alert"):
            raise ValueError("unknown_sni must be 'default' or 'alert'")
        factory = factory or TLSContextFactory()
        self._unknown_sni = unknown_sni
        self._contexts: Mapping[str, ServerContext] = {}
        self._server_names: weakref.WeakKeyDictionary[SSLConnection, str] = weakref.WeakKeyDictionary()
        self.on_client_hello: Callable[[], None] | None = None
        self.listening_context: ServerContext = factory.default_context()
        if isinstance(self.listening_context, ssl.SSLContext):
            self.listening_context.sni_callback = self._on_server_name
        else:
            bundledtls.install_server_name_callback(
                self.listening_context,
                self._bundled_context_for,
                unknown_alert=unknown_sni == "alert",
                on_client_hello=self._client_hello,
            )

    def replace(self, contexts: Mapping[str, ServerContext]) -> None:
        """Serve ``contexts`` (hostname → context) from the next handshake on; one reference swap.

        The mapping is kept, not copied (``EdgeState.tls_contexts`` makes contexts on lookup), so
        it must not change afterwards.
        """
        self._contexts = contexts

    def context_for(self, server_name: str) -> ServerContext | None:
        contexts = self._contexts
        ctx = contexts.get(server_name)
        if ctx is None and "." in server_name:
            ctx = contexts.get("*." + server_name.split(".", 1)[1])
        return ctx

    def server_name(self, connection: SSLConnection) -> str | None:
        """The SNI the client sent on this connection (lowercased, no trailing dot), or None."""
        if isinstance(connection, bundledtls.TLSFacts):
            return connection.server_name
        return self._server_names.get(connection)

    def _client_hello(self) -> None:
        if self.on_client_hello is not None:
            self.on_client_hello()

    def _bundled_context_for(self, name: str) -> bundledtls.BundledTLSContext | None:
        ctx = self.context_for(name)  # TLSContextError propagates: the handshake fails
        if ctx is not None and not isinstance(ctx, bundledtls.BundledTLSContext):
            raise TLSContextError("a stdlib context was handed to the bundled engine")
        return ctx

    def _on_server_name(
        self, connection: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        self._client_hello()
        listening = self.listening_context
        if name is None:
            # No SNI: the default context. Set it again, since after a HelloRetryRequest this
            # runs a second time, possibly after a host's context was chosen for the first hello.
            self._server_names.pop(connection, None)
            if isinstance(listening, ssl.SSLContext):
                connection.context = listening
            return None
        name = normalize_server_name(name)
        self._server_names[connection] = name
        try:
            ctx = self.context_for(name)
        except TLSContextError:
            # A context made on first use failed to load (the state reported the certificate
            # as loadable): refuse rather than serve this hostname with the placeholder.
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        if ctx is None:
            if self._unknown_sni == "alert":
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            if isinstance(listening, ssl.SSLContext):
                connection.context = listening  # (see above: a second ClientHello)
            return None
        if not isinstance(ctx, ssl.SSLContext):  # (a bundled context on the stdlib engine)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        connection.context = ctx  # SSL_set_SSL_CTX: certificate, CA names, cert callbacks follow
        return None


def peer_certificates(connection: SSLConnection) -> tuple[bytes | None, tuple[bytes, ...]]:
    """The client's certificate (DER) and the intermediates it sent, none of them verified.

    Call once per connection and reuse the result: the bytes objects then hash once for the
    verification cache. Before Python 3.13 the stdlib cannot return the client's intermediates,
    so only the leaf is returned (certificates must then chain directly to a trust anchor).
    """
    leaf = connection.getpeercert(binary_form=True)
    if leaf is None:
        return None, ()
    get_chain = getattr(connection, "get_unverified_chain", None)
    if get_chain is None:
        return leaf, ()
    chain: list[bytes] = get_chain()
    # Server side, CPython puts the peer certificate first; the rest is what the client sent.
    if chain and chain[0] == leaf:
        chain = chain[1:]
    return leaf, tuple(der for der in chain if der != leaf)[:MAX_CLIENT_INTERMEDIATES]


# ----------------------------------------------------------------------------------------------
# start-up self-check


def _self_check_pki() -> dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]]:
    window = (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, tzinfo=dt.UTC))
    made: dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}

    def make(label: str, issuer: str | None, *, ca: bool, dns: str | None = None) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"certgate self-check {label}")])
        issuer_cert, issuer_key = made[issuer] if issuer else (None, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer_cert.subject if issuer_cert else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(window[0])
            .not_valid_after(window[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
        made[label] = (builder.sign(issuer_key, hashes.SHA256()), key)

    make("trusted root", None, ca=True)
    make("rogue root", None, ca=True)
    make("rogue intermediate", "rogue root", ca=True)
    make("rogue client", "rogue intermediate", ca=False)
    make("mtls server", None, ca=False, dns="mtls.self-check.invalid")
    make("plain server", None, ca=False, dns="plain.self-check.invalid")
    return made


def _pem_certificate(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _edge_certificate(pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> EdgeTLSCertificate:
    return EdgeTLSCertificate(chain_pem=_pem_certificate(pair[0]), key_pem=_pem_key(pair[1]))


def memory_handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_name: str | None
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Run a real TLS handshake between two contexts over memory BIOs, then one round of data.

    Returns (server side, client side). Raises ``ssl.SSLError`` if the handshake fails.
    """
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    client = client_ctx.wrap_bio(client_in, client_out, server_hostname=server_name)
    server_done = client_done = False
    for _ in range(10):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
        client_in.write(server_out.read())
        if client_done and server_done:
            break
    else:
        raise ssl.SSLError("in-memory handshake did not finish")
    # In TLS 1.3 the server finishes after reading the client's Certificate/Finished; a round of
    # application data proves both directions work (and that the server did not alert late).
    client.write(b"ping")
    server_in.write(client_out.read())
    if server.read(4) != b"ping":
        raise ssl.SSLError("application data did not arrive at the server")
    server.write(b"pong")
    client_in.write(server_out.read())
    if client.read(4) != b"pong":
        raise ssl.SSLError("application data did not arrive at the client")
    return server, client


def self_check(settings: TLSSettings | None = None) -> None:
    """Prove, in this process, that mTLS termination works as this module promises.

    For the engine the settings choose: (stdlib) checks the struct-layout assumption of the ctypes
    binding; then runs real handshakes on every enabled TLS version: an mTLS hostname must
    complete the handshake with an *untrusted* client certificate (leaf + intermediate) and
    expose both, send exactly its anchors as CA names, never resume, and a plain hostname must
    not request a certificate at all.
    Raises :class:`TLSSelfCheckError` (or ``OpenSSLBindingError``/``BundledTLSError``) with the
    first failure.
    """
    settings = settings or TLSSettings()
    try:
        factory = TLSContextFactory(settings)
        if factory.engine == "stdlib":
            _check_layout()
        pki = _self_check_pki()
        anchors = [pki["trusted root"][0]]
        names = client_ca_names_of(anchors)
        mtls = factory.host_context(_edge_certificate(pki["mtls server"]), names)
        plain = factory.host_context(_edge_certificate(pki["plain server"]), None)
        if client_ca_names(mtls) != list(names):
            raise TLSSelfCheckError("the mTLS context does not carry its CA names")
        router = SNIRouter(factory)
        router.replace({"mtls.self-check.invalid": mtls, "plain.self-check.invalid": plain})
        for version in _enabled_versions(settings):
            _check_handshakes(router, version, pki)
    except (TLSSelfCheckError, _openssl.OpenSSLBindingError, bundledtls.BundledTLSError):
        raise
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TLSSelfCheckError(f"TLS self-check failed: {exc!r}") from exc


def describe_engine(settings: TLSSettings) -> str:
    """Which TLS engine and library this process serves with (logged at start-up)."""
    if settings.resolved_engine() == "bundled":
        return f"TLS engine bundled ({bundledtls.binding().version}, bundled with cryptography)"
    return f"TLS engine stdlib ({ssl.OPENSSL_VERSION}, uvloop transport)"


def handshake_once(
    server_ctx: ServerContext, client_ctx: ssl.SSLContext, server_name: str | None
) -> tuple[SSLConnection, bool]:
    """One real handshake of a server context of either engine with a stdlib client, plus a
    round of application data: (the server side's connection, whether the client resumed).
    Raises ``ssl.SSLError`` when the handshake fails."""
    if isinstance(server_ctx, ssl.SSLContext):
        server, client = memory_handshake(server_ctx, client_ctx, server_name)
        return server, client.session_reused
    facts, client = bundledtls.memory_handshake(
        server_ctx, client_ctx, server_name, max_intermediates=MAX_CLIENT_INTERMEDIATES
    )
    return facts, client.session_reused


def verify_mode(ctx: ServerContext) -> int:
    """OpenSSL's verify mode bits of a context of either engine (1: SSL_VERIFY_PEER)."""
    return _openssl.verify_mode(ctx) if isinstance(ctx, ssl.SSLContext) else ctx.verify_mode


def client_ca_names(ctx: ServerContext) -> list[bytes]:
    """The CA names (DER) a CertificateRequest from ``ctx`` carries, read back from OpenSSL."""
    if isinstance(ctx, ssl.SSLContext):
        return _openssl.client_ca_names(ctx)
    return bundledtls.client_ca_names(ctx)


def _enabled_versions(settings: TLSSettings) -> list[ssl.TLSVersion]:
    versions = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    return [v for v in versions if settings.minimum_version <= v <= settings.maximum_version]


def _check_layout() -> None:
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for mode in (ssl.CERT_OPTIONAL, ssl.CERT_NONE, ssl.CERT_REQUIRED):
        probe.verify_mode = mode
        _openssl.ssl_ctx_pointer(probe)  # raises on a mismatch


def _check_handshakes(
    router: SNIRouter,
    version: ssl.TLSVersion,
    pki: Mapping[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]],
) -> None:
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.minimum_version = client_ctx.maximum_version = version
    client_pem = (
        _pem_certificate(pki["rogue client"][0])
        + _pem_certificate(pki["rogue intermediate"][0])
        + _pem_key(pki["rogue client"][1])
    )
    with _private_file(client_pem.encode()) as path:
        client_ctx.load_cert_chain(path)
    label = version.name
    try:
        server, client_reused = handshake_once(
            router.listening_context, client_ctx, "mtls.self-check.invalid"
        )
    except ssl.SSLError as exc:
        raise TLSSelfCheckError(
            f"{label}: the handshake with an untrusted client certificate failed ({exc!r}); "
            "the accept-any binding is not in effect"
        ) from exc
    leaf, intermediates = peer_certificates(server)
    rogue_leaf = pki["rogue client"][0].public_bytes(serialization.Encoding.DER)
    if leaf != rogue_leaf:
        raise TLSSelfCheckError(f"{label}: the server did not receive the client certificate")
    if hasattr(server, "get_unverified_chain") and intermediates != (
        pki["rogue intermediate"][0].public_bytes(serialization.Encoding.DER),
    ):
        raise TLSSelfCheckError(f"{label}: the client's intermediate certificate was not exposed")
    if router.server_name(server) != "mtls.self-check.invalid":
        raise TLSSelfCheckError(f"{label}: the connection's SNI was not recorded")
    if server.session_reused or client_reused:
        raise TLSSelfCheckError(f"{label}: a fresh connection reports a resumed session")
    server, _ = handshake_once(router.listening_context, client_ctx, "plain.self-check.invalid")
    if server.getpeercert(binary_form=True) is not None:
        raise TLSSelfCheckError(f"{label}: a plain hostname requested a client certificate")
