"""TLS with the OpenSSL that ``cryptography`` ships, between uvloop's TCP transport and the edge
(the default engine; ``--tls-engine bundled``).

The stdlib engine (``tls`` + ``_openssl``) runs TLS on the system libssl through uvloop's
``SSLProtocol``. On Debian 12 that libssl is OpenSSL 3.0, whose handshakes spend most of their
time in locking, decoder and provider lookups rather than in cryptography. This engine runs the
same TLS on the OpenSSL that ``cryptography`` statically links (3.5 or later in every current
wheel), reached through cryptography's cffi binding module, the one pyOpenSSL uses: libuv reads
and writes the socket (one system call per burst or flight), ciphertext passes through two
OpenSSL memory BIOs, and the edge's protocol sees an ordinary ``asyncio.Transport``. No Python
exception is raised per record (cffi returns status codes). docs/edge-tls.md has the
measurements and the reasons.

What it guarantees is what ``tls`` guarantees for the stdlib engine:

* an mTLS hostname asks for a client certificate with its anchors as CA names, and the handshake
  completes whatever the client sends: the verify callback accepts every chain, so OpenSSL's own
  chain result is ignored (it still checks the client's CertificateVerify, i.e. that the client
  holds the key). The verdict is made per request by ``clientauth``;
* any other hostname requests no certificate;
* no resumption: tickets are stateful (``SSL_OP_NO_TICKET``) and the server session cache is off,
  so no ticket a client holds can ever resume a session (TLS 1.3 still sends two such unusable
  tickets: the binding has no ``SSL_CTX_set_num_tickets``);
* TLS 1.2 and 1.3 only, no renegotiation, no compression.

Callbacks run inside OpenSSL and must never raise: each one catches everything and fails the
handshake instead. Every ``SSL *`` is owned by exactly one :class:`BundledTLSTransport` and freed
when it closes; nothing reads it afterwards (the facts a connection exposes are copied out when
its handshake completes).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from certgate.errors import CertGateError

log = logging.getLogger(__name__)

#: The functions and constants this engine calls in ``cryptography``'s binding: exactly those
#: (tests/edge/test_bundledtls.py checks the list against the module's ``lib.`` uses).
REQUIRED: Final = (
    "TLS_server_method", "SSL_CTX_new", "SSL_CTX_free", "SSL_CTX_set_options", "SSL_CTX_set_mode",
    "SSL_CTX_set_session_cache_mode", "SSL_CTX_set_min_proto_version", "SSL_CTX_set_max_proto_version",
    "SSL_CTX_set_cipher_list", "SSL_CTX_use_certificate", "SSL_CTX_use_PrivateKey",
    "SSL_CTX_add_extra_chain_cert", "SSL_CTX_check_private_key", "SSL_CTX_set_client_CA_list",
    "SSL_CTX_set_verify", "SSL_CTX_set_verify_depth", "SSL_CTX_set_tlsext_servername_callback",
    "SSL_CTX_set_alpn_select_cb", "SSL_new", "SSL_free", "SSL_set_bio", "SSL_set_accept_state",
    "SSL_do_handshake", "SSL_read", "SSL_write", "SSL_shutdown", "SSL_get_error",
    "SSL_set_SSL_CTX", "SSL_set_verify", "SSL_get_servername", "SSL_get_version",
    "SSL_get_peer_certificate", "SSL_get_peer_cert_chain", "SSL_session_reused",
    "SSL_get_client_CA_list", "SSL_get_current_cipher", "SSL_CIPHER_get_name", "SSL_get0_alpn_selected",
    "BIO_new_mem_buf", "BIO_new", "BIO_s_mem", "BIO_free", "BIO_read", "BIO_write",
    "BIO_set_mem_eof_return", "BIO_get_mem_data", "PEM_read_bio_X509", "PEM_read_bio_PrivateKey",
    "i2d_X509_bio", "i2d_X509_NAME", "d2i_X509_NAME", "X509_free", "X509_NAME_free", "EVP_PKEY_free",
    "sk_X509_num", "sk_X509_value", "sk_X509_NAME_new_null", "sk_X509_NAME_push", "sk_X509_NAME_num",
    "sk_X509_NAME_value", "sk_X509_NAME_free", "ERR_clear_error", "ERR_get_error",
    "ERR_reason_error_string", "OpenSSL_version", "OPENSSL_free",
    "SSL_OP_ALL", "SSL_OP_NO_TICKET", "SSL_OP_NO_RENEGOTIATION", "SSL_OP_NO_COMPRESSION",
    "SSL_OP_CIPHER_SERVER_PREFERENCE", "SSL_MODE_RELEASE_BUFFERS", "SSL_SESS_CACHE_OFF",
    "SSL_VERIFY_NONE", "SSL_VERIFY_PEER", "SSL_ERROR_WANT_READ", "SSL_ERROR_ZERO_RETURN",
    "SSL_TLSEXT_ERR_OK", "SSL_TLSEXT_ERR_ALERT_FATAL", "SSL_TLSEXT_ERR_NOACK", "TLSEXT_NAMETYPE_host_name",
)  # fmt: skip

#: The TLS 1.2 cipher suites: CPython 3.13's default server string (TLS 1.3 suites are separate).
CIPHERS_TLS12: Final = (
    b"@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"
)

ALERT_INTERNAL_ERROR: Final = 80
ALERT_UNRECOGNIZED_NAME: Final = 112

#: Bytes asked of one ``SSL_read``: a TLS record's plaintext is at most 16 KiB.
READ_SIZE: Final = 65536

#: Bytes of ciphertext taken from the write BIO per ``BIO_read``.
WRITE_CHUNK: Final = 262144


class BundledTLSError(CertGateError):
    """The bundled TLS engine cannot run in this process (binding missing or incomplete)."""

    default_reason = "edge.tls_binding"


class Binding:
    """``cryptography``'s cffi binding (``lib``, ``ffi``), checked to have what this engine calls."""

    def __init__(self) -> None:
        try:
            from cryptography.hazmat.bindings.openssl.binding import Binding as _CryptographyBinding
        except ImportError as exc:  # pragma: no cover - cryptography always has it today
            raise BundledTLSError(f"cryptography has no OpenSSL binding module: {exc}") from None
        b = _CryptographyBinding()
        self.lib: Any = b.lib
        self.ffi: Any = b.ffi
        missing = [name for name in REQUIRED if not hasattr(self.lib, name)]
        if missing:
            raise BundledTLSError(
                "cryptography's OpenSSL binding lacks " + ", ".join(missing) + ": use --tls-engine stdlib"
            )
        self.version: str = self.ffi.string(self.lib.OpenSSL_version(0)).decode()
        # The C thunks live as long as this object, i.e. the process (binding() caches it).
        self.accept_any_chain: Any = self.ffi.callback("int(int, X509_STORE_CTX *)", _accept_any_chain)

    def error_text(self) -> str:
        """Drain this thread's OpenSSL error queue into one line (for messages)."""
        lib, ffi = self.lib, self.ffi
        reasons = []
        while code := lib.ERR_get_error():
            text = lib.ERR_reason_error_string(code)
            reasons.append(ffi.string(text).decode() if text != ffi.NULL else f"error {code:#x}")
        return "; ".join(reasons) or "unknown OpenSSL error"


def _accept_any_chain(_preverify_ok: int, _store: Any) -> int:
    # Every chain is accepted here; the edge verifies per request (clientauth).
    return 1


@functools.cache
def binding() -> Binding:
    """The process-wide binding; raises :class:`BundledTLSError` when this engine cannot run."""
    return Binding()


def available() -> bool:
    try:
        binding()
    except BundledTLSError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# contexts


class BundledTLSContext:
    """One ``SSL_CTX``: an edge certificate and key, and whether (and with which CA names) to ask
    for a client certificate. Immutable once built; freed when garbage collected."""

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_ptr",
        "client_ca_names",
        "request_client_certificate",
        "verify_mode",
    )

    def __init__(
        self,
        *,
        chain_pem: bytes,
        key_pem: bytes,
        client_ca_names: Sequence[bytes] | None,
        minimum_version: int,
        maximum_version: int,
        alpn_protocols: Sequence[str],
    ) -> None:
        b = binding()
        lib, ffi = b.lib, b.ffi
        lib.ERR_clear_error()
        ctx = lib.SSL_CTX_new(lib.TLS_server_method())
        if ctx == ffi.NULL:
            raise ValueError(f"SSL_CTX_new failed: {b.error_text()}")
        self._ptr: Any = ffi.gc(ctx, lib.SSL_CTX_free)
        # C thunks installed on this SSL_CTX live as long as this object: every connection's
        # transport holds its server, which holds the listening context.
        self._callbacks: list[Any] = []
        lib.SSL_CTX_set_options(
            ctx,
            lib.SSL_OP_ALL
            | lib.SSL_OP_NO_TICKET
            | lib.SSL_OP_NO_RENEGOTIATION
            | lib.SSL_OP_NO_COMPRESSION
            | lib.SSL_OP_CIPHER_SERVER_PREFERENCE,
        )
        lib.SSL_CTX_set_session_cache_mode(ctx, lib.SSL_SESS_CACHE_OFF)
        # RELEASE_BUFFERS: an idle connection keeps no 16 KiB read/write record buffers (as nginx
        # sets it). No partial writes: the write BIO is memory, so SSL_write takes everything.
        lib.SSL_CTX_set_mode(ctx, lib.SSL_MODE_RELEASE_BUFFERS)
        if not (
            lib.SSL_CTX_set_min_proto_version(ctx, minimum_version)
            and lib.SSL_CTX_set_max_proto_version(ctx, maximum_version)
            and lib.SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12)
        ):
            raise ValueError(f"TLS protocol settings refused: {b.error_text()}")
        _load_certificate(b, ctx, chain_pem, key_pem)
        # Depth 0 limits OpenSSL's own chain building, whose result the accept-all callback
        # ignores anyway; set on every context, since an SSL takes its verify parameters from the
        # listening context it is made from (SSL_set_SSL_CTX does not change them).
        lib.SSL_CTX_set_verify_depth(ctx, 0)
        self.request_client_certificate = client_ca_names is not None
        self.client_ca_names = tuple(client_ca_names or ())
        if self.request_client_certificate:
            lib.SSL_CTX_set_client_CA_list(ctx, _name_stack(b, self.client_ca_names))
            self.verify_mode = int(lib.SSL_VERIFY_PEER)
            lib.SSL_CTX_set_verify(ctx, self.verify_mode, b.accept_any_chain)
        else:
            self.verify_mode = int(lib.SSL_VERIFY_NONE)
            lib.SSL_CTX_set_verify(ctx, self.verify_mode, ffi.NULL)
        if alpn_protocols:
            lib.SSL_CTX_set_alpn_select_cb(ctx, _alpn_callback(b, alpn_protocols), ffi.NULL)

    @property
    def pointer(self) -> Any:
        return self._ptr


def _load_certificate(b: Binding, ctx: Any, chain_pem: bytes, key_pem: bytes) -> None:
    lib, ffi = b.lib, b.ffi
    bio = ffi.gc(lib.BIO_new_mem_buf(chain_pem, len(chain_pem)), lib.BIO_free)
    leaf = lib.PEM_read_bio_X509(bio, ffi.NULL, ffi.NULL, ffi.NULL)
    if leaf == ffi.NULL:
        raise ValueError(f"no certificate in the edge certificate chain: {b.error_text()}")
    ok = lib.SSL_CTX_use_certificate(ctx, leaf)
    lib.X509_free(leaf)
    if ok != 1:
        raise ValueError(f"edge certificate refused: {b.error_text()}")
    while True:
        extra = lib.PEM_read_bio_X509(bio, ffi.NULL, ffi.NULL, ffi.NULL)
        if extra == ffi.NULL:
            lib.ERR_clear_error()  # the end of the PEM data reads as an error
            break
        if lib.SSL_CTX_add_extra_chain_cert(ctx, extra) != 1:  # takes ownership on success
            lib.X509_free(extra)
            raise ValueError(f"intermediate certificate refused: {b.error_text()}")
    if b"ENCRYPTED" in key_pem:
        raise ValueError("the edge private key is encrypted; the edge needs it unencrypted")
    key_bio = ffi.gc(lib.BIO_new_mem_buf(key_pem, len(key_pem)), lib.BIO_free)
    # A non-NULL empty passphrase with no callback: an encrypted key fails instead of prompting.
    key = lib.PEM_read_bio_PrivateKey(key_bio, ffi.NULL, ffi.NULL, ffi.new("char[]", b""))
    if key == ffi.NULL:
        raise ValueError(f"edge private key cannot be read: {b.error_text()}")
    ok = lib.SSL_CTX_use_PrivateKey(ctx, key)
    lib.EVP_PKEY_free(key)
    if ok != 1 or lib.SSL_CTX_check_private_key(ctx) != 1:
        raise ValueError(f"edge private key does not match its certificate: {b.error_text()}")


def _name_stack(b: Binding, names_der: Sequence[bytes]) -> Any:
    lib, ffi = b.lib, b.ffi
    stack = lib.sk_X509_NAME_new_null()
    for der in names_der:
        data = ffi.new("unsigned char[]", der)
        cursor = ffi.new("unsigned char **", data)
        name = lib.d2i_X509_NAME(ffi.NULL, cursor, len(der))
        if name == ffi.NULL:
            for i in range(lib.sk_X509_NAME_num(stack)):
                lib.X509_NAME_free(lib.sk_X509_NAME_value(stack, i))
            lib.sk_X509_NAME_free(stack)
            raise ValueError(f"a CA name is not a DER X.509 name: {b.error_text()}")
        lib.sk_X509_NAME_push(stack, name)
    return stack


@functools.cache
def _alpn_callback(b: Binding, protocols: Sequence[str]) -> Any:
    """An ALPN select callback choosing the first of ``protocols`` the client offers (server order)."""
    wanted = [p.encode("ascii") for p in protocols]
    ffi = b.ffi
    ok, noack = int(b.lib.SSL_TLSEXT_ERR_OK), int(b.lib.SSL_TLSEXT_ERR_NOACK)

    def select(_ssl: Any, out: Any, outlen: Any, client: Any, client_len: int, _arg: Any) -> int:
        try:
            offered = ffi.buffer(client, client_len)[:]
            at: dict[bytes, int] = {}
            i = 0
            while i < len(offered):
                n = offered[i]
                at.setdefault(offered[i + 1 : i + 1 + n], i + 1)
                i += 1 + n
            for proto in wanted:
                start = at.get(proto)
                if start is not None:
                    out[0] = client + start
                    outlen[0] = len(proto)
                    return ok
        except Exception:  # never raise into OpenSSL
            log.exception("ALPN selection failed")
        return noack  # like CPython's: no overlap means no ALPN, not a failed handshake

    return ffi.callback(
        "int(SSL *, unsigned char **, unsigned char *, unsigned char *, unsigned int, void *)", select
    )


def client_ca_names(ctx: BundledTLSContext) -> list[bytes]:
    """The CA names a CertificateRequest from ``ctx`` carries (read back from OpenSSL), as DER."""
    b = binding()
    lib, ffi = b.lib, b.ffi
    ssl_ptr = ffi.gc(lib.SSL_new(ctx.pointer), lib.SSL_free)
    stack = lib.SSL_get_client_CA_list(ssl_ptr)
    if stack == ffi.NULL:
        return []
    out = []
    for i in range(lib.sk_X509_NAME_num(stack)):
        buf = ffi.new("unsigned char **")
        n = lib.i2d_X509_NAME(lib.sk_X509_NAME_value(stack, i), buf)
        if n < 0:
            raise ValueError("a CA name cannot be encoded")
        out.append(ffi.buffer(buf[0], n)[:])
        lib.OPENSSL_free(buf[0])
    return out


# ----------------------------------------------------------------------------------------------
# connection facts


class TLSFacts:
    """What the edge reads of a finished handshake, copied out of OpenSSL when it completed.

    Offers the part of ``ssl.SSLObject`` the edge uses, so both engines look alike upward.
    """

    __slots__ = ("__weakref__", "_chain", "_cipher", "_leaf", "_reused", "_version", "alpn", "server_name")

    def __init__(
        self,
        *,
        version: str | None,
        server_name: str | None,
        leaf: bytes | None,
        chain: tuple[bytes, ...],
        reused: bool,
        cipher: str | None,
        alpn: str | None,
    ) -> None:
        self._version = version
        self.server_name = server_name
        self._leaf = leaf
        self._chain = chain
        self._reused = reused
        self._cipher = cipher
        self.alpn = alpn

    def version(self) -> str | None:
        return self._version

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        if not binary_form:
            raise ValueError("only the DER form is kept")
        return self._leaf

    def get_unverified_chain(self) -> list[bytes]:
        """The peer's certificate then what else it sent, like CPython's server side."""
        return [self._leaf, *self._chain] if self._leaf is not None else []

    @property
    def session_reused(self) -> bool:
        return self._reused

    def cipher(self) -> str | None:
        return self._cipher

    def selected_alpn_protocol(self) -> str | None:
        return self.alpn


def _der_of(b: Binding, x509_ptr: Any, bio: Any) -> bytes:
    lib, ffi = b.lib, b.ffi
    if lib.i2d_X509_bio(bio, x509_ptr) != 1:
        raise ValueError("a peer certificate cannot be encoded")
    data = ffi.new("char **")
    n = lib.BIO_get_mem_data(bio, data)
    out: bytes = ffi.unpack(data[0], n)
    return out


def _read_facts(b: Binding, ssl_ptr: Any, max_intermediates: int) -> TLSFacts:
    lib, ffi = b.lib, b.ffi
    version = lib.SSL_get_version(ssl_ptr)
    name = lib.SSL_get_servername(ssl_ptr, lib.TLSEXT_NAMETYPE_host_name)
    server_name = None
    if name != ffi.NULL:
        server_name = ffi.string(name).decode("ascii", "replace").rstrip(".").lower()
    cipher = lib.SSL_get_current_cipher(ssl_ptr)
    alpn_data, alpn_len = ffi.new("unsigned char **"), ffi.new("unsigned int *")
    lib.SSL_get0_alpn_selected(ssl_ptr, alpn_data, alpn_len)
    alpn = ffi.buffer(alpn_data[0], alpn_len[0])[:].decode("ascii", "replace") if alpn_len[0] else None
    leaf: bytes | None = None
    chain: list[bytes] = []
    peer = lib.SSL_get_peer_certificate(ssl_ptr)  # a new reference
    if peer != ffi.NULL:
        bio = ffi.gc(lib.BIO_new(lib.BIO_s_mem()), lib.BIO_free)
        try:
            leaf = _der_of(b, peer, bio)
        finally:
            lib.X509_free(peer)
        stack = lib.SSL_get_peer_cert_chain(ssl_ptr)  # server side: the client's extra certificates
        if stack != ffi.NULL:
            for i in range(min(lib.sk_X509_num(stack), max_intermediates + 1)):
                bio = ffi.gc(lib.BIO_new(lib.BIO_s_mem()), lib.BIO_free)
                der = _der_of(b, lib.sk_X509_value(stack, i), bio)
                if der != leaf:
                    chain.append(der)
    return TLSFacts(
        version=ffi.string(version).decode() if version != ffi.NULL else None,
        server_name=server_name,
        leaf=leaf,
        chain=tuple(chain[:max_intermediates]),
        reused=bool(lib.SSL_session_reused(ssl_ptr)),
        cipher=ffi.string(lib.SSL_CIPHER_get_name(cipher)).decode() if cipher != ffi.NULL else None,
        alpn=alpn,
    )


# ----------------------------------------------------------------------------------------------
# SNI


ContextLookup = Callable[[str], BundledTLSContext | None]


def install_server_name_callback(
    listening: BundledTLSContext,
    lookup: ContextLookup,
    *,
    unknown_alert: bool,
    on_client_hello: Callable[[], None] | None = None,
) -> None:
    """Choose each connection's context by SNI from ``lookup`` (hostname → context or None).

    ``lookup`` raising fails the handshake with internal_error, never serving the hostname with
    the placeholder. The C thunk is kept by ``listening``, as long as the context lives.
    """
    b = binding()
    lib, ffi = b.lib, b.ffi
    ok, fatal = int(lib.SSL_TLSEXT_ERR_OK), int(lib.SSL_TLSEXT_ERR_ALERT_FATAL)
    host_name = int(lib.TLSEXT_NAMETYPE_host_name)
    set_ctx, set_verify, get_name = lib.SSL_set_SSL_CTX, lib.SSL_set_verify, lib.SSL_get_servername
    accept_any = b.accept_any_chain
    null = ffi.NULL
    listening_ptr = listening.pointer
    verify_none = int(lib.SSL_VERIFY_NONE)

    def on_server_name(ssl_ptr: Any, alert: Any, _arg: Any) -> int:
        try:
            if on_client_hello is not None:
                on_client_hello()
            raw = get_name(ssl_ptr, host_name)
            if raw == null:
                # No SNI: the listening context (placeholder, no client certificate). Set it again:
                # after a HelloRetryRequest this runs a second time, maybe after a host was chosen.
                set_ctx(ssl_ptr, listening_ptr)
                set_verify(ssl_ptr, verify_none, null)
                return ok
            name = ffi.string(raw).decode("ascii", "replace").rstrip(".").lower()
            try:
                ctx = lookup(name)
            except Exception:
                log.exception("TLS context for %r cannot be made", name)
                alert[0] = ALERT_INTERNAL_ERROR
                return fatal
            if ctx is None:
                if unknown_alert:
                    alert[0] = ALERT_UNRECOGNIZED_NAME
                    return fatal
                set_ctx(ssl_ptr, listening_ptr)
                set_verify(ssl_ptr, verify_none, null)
                return ok
            set_ctx(ssl_ptr, ctx.pointer)  # certificate and CA names follow the context
            # ... the verify mode does not: SSL_set_SSL_CTX keeps the one the SSL was made with.
            set_verify(ssl_ptr, ctx.verify_mode, accept_any if ctx.request_client_certificate else null)
            return ok
        except BaseException:  # never raise into OpenSSL
            log.exception("SNI callback failed")
            alert[0] = ALERT_INTERNAL_ERROR
            return fatal

    thunk = ffi.callback("int(SSL *, int *, void *)", on_server_name)
    listening._callbacks.append(thunk)  # the context owns the callbacks set on it
    lib.SSL_CTX_set_tlsext_servername_callback(listening.pointer, thunk)


# ----------------------------------------------------------------------------------------------
# the transport


def _new_server_ssl(b: Binding, ctx: BundledTLSContext) -> tuple[Any, Any, Any] | None:
    """A server-side ``SSL *`` made from ``ctx`` and its read and write memory BIOs, which it owns
    (``SSL_free`` frees all three); None (nothing left allocated) if OpenSSL is out of memory."""
    lib, ffi = b.lib, b.ffi
    ssl_ptr = lib.SSL_new(ctx.pointer)
    rbio = lib.BIO_new(lib.BIO_s_mem())
    wbio = lib.BIO_new(lib.BIO_s_mem())
    if ssl_ptr == ffi.NULL or rbio == ffi.NULL or wbio == ffi.NULL:
        for bio in (rbio, wbio):
            if bio != ffi.NULL:
                lib.BIO_free(bio)
        if ssl_ptr != ffi.NULL:
            lib.SSL_free(ssl_ptr)
        return None
    lib.BIO_set_mem_eof_return(rbio, -1)  # an empty read BIO means "want more", not EOF
    lib.SSL_set_bio(ssl_ptr, rbio, wbio)  # the SSL owns both BIOs from here on
    lib.SSL_set_accept_state(ssl_ptr)
    return ssl_ptr, rbio, wbio


class BundledTLSTransport(asyncio.Transport, asyncio.Protocol):
    """TLS between uvloop's TCP transport (below) and the edge's protocol (above).

    Below, it is the ``asyncio.Protocol`` of an accepted TCP connection: libuv reads each burst
    with one system call and writes what it is given at once. Ciphertext goes through two
    OpenSSL memory BIOs (``BIO_write`` in, ``BIO_read`` out), so a whole TLS flight costs one
    read and one write, whatever its number of records. Above, it is the ``asyncio.Transport``
    the edge's protocol sees: the protocol is made and ``connection_made`` called once the
    handshake completed. Flow control is the TCP transport's, passed through; ``close`` sends
    close_notify after what is queued; ``abort`` drops the connection. TLS cannot half-close, so
    ``can_write_eof`` is False.
    """

    def __init__(self, server: BundledTLSServer) -> None:
        super().__init__()
        self._server = server
        b = server.binding
        self._lib = lib = b.lib
        self._ffi = b.ffi
        self._ssl: Any = None
        self._rbio: Any = None
        self._wbio: Any = None
        self._raw: asyncio.Transport | None = None
        self._protocol: asyncio.Protocol | None = None
        self._facts: TLSFacts | None = None
        self._reading = True
        self._closing = False
        self._closed = False
        self._eof_pending = False  # the client's FIN came while reading was paused
        self._eof_delivered = False
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._want_read_flag = int(lib.SSL_ERROR_WANT_READ)

    # -- below: the TCP connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = raw = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        made = _new_server_ssl(self._server.binding, self._server.listening)
        if made is None:
            raw.abort()
            return
        self._ssl, self._rbio, self._wbio = made
        self._server.handshake_started(self)
        self._handshake_timer = self._server.loop.call_later(
            self._server.handshake_timeout, self._handshake_timed_out
        )

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._lib.BIO_write(self._rbio, data, len(data))  # (SSL calls below clear the error queue)
        if self._protocol is None:
            self._do_handshake()
        elif self._reading:
            self._read_records()

    def eof_received(self) -> bool | None:
        if self._protocol is None:  # the client left during its handshake
            self._handshake_failed()
            return None
        if self._reading:
            self._read_records()  # what came before the FIN, first
        if self._reading:
            self._app_eof()
        else:
            self._eof_pending = True  # delivered after the held records, on resume_reading
        return True  # we close (with close_notify) ourselves

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self._closed
        self._closed = self._closing = True
        self._cancel_handshake_timer()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._ssl is not None:
            self._lib.SSL_free(self._ssl)  # frees both BIOs too
            self._ssl = self._rbio = self._wbio = None
        if self._protocol is None:
            if not was_closed:
                self._server.handshake_failed(self)
            return
        self._server.forget(self)
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._protocol is not None:
            self._protocol.pause_writing()

    def resume_writing(self) -> None:
        if self._protocol is not None:
            self._protocol.resume_writing()

    # -- the handshake ----------------------------------------------------------------------------

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._protocol is None and not self._closed:
            self._handshake_failed()

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _handshake_failed(self) -> None:
        if self._closed:
            return
        self._closed = self._closing = True
        self._cancel_handshake_timer()
        self._lib.ERR_clear_error()
        self._flush()  # the alert, if OpenSSL wrote one
        self._server.handshake_failed(self)
        assert self._raw is not None
        self._raw.close()

    def _do_handshake(self) -> None:
        lib = self._lib
        lib.ERR_clear_error()
        r = lib.SSL_do_handshake(self._ssl)
        if r != 1:
            if lib.SSL_get_error(self._ssl, r) == self._want_read_flag:
                self._flush()
                return
            self._handshake_failed()
            return
        self._cancel_handshake_timer()
        try:
            self._facts = _read_facts(self._server.binding, self._ssl, self._server.max_intermediates)
        except Exception:
            log.exception("reading the TLS connection's facts failed")
            self._handshake_failed()
            return
        self._flush()  # the rest of our flight (TLS 1.3 tickets)
        self._server.handshake_completed(self)
        self._protocol = protocol = self._server.protocol_factory()
        protocol.connection_made(self)
        if self._reading and not self._closing:
            self._read_records()  # request bytes that came with the client's Finished

    # -- reading ----------------------------------------------------------------------------------

    def _read_records(self) -> None:
        lib = self._lib
        ssl_ptr = self._ssl
        buf = self._server.read_buffer
        unpack = self._ffi.unpack
        protocol = self._protocol
        assert protocol is not None
        clear = lib.ERR_clear_error
        while self._reading and not self._closing:
            # Everything this burst decrypts goes to the protocol in one call (as uvloop's
            # SSLProtocol does): a burst of tiny records must not cost a parser call each.
            pieces: list[bytes] = []
            err = 0
            while True:
                clear()  # the protocol may leave errors in this thread's queue (cryptography shares it)
                n = lib.SSL_read(ssl_ptr, buf, READ_SIZE)
                if n <= 0:
                    err = lib.SSL_get_error(ssl_ptr, n)
                    break
                pieces.append(unpack(buf, n))
            if pieces:
                protocol.data_received(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            if err == self._want_read_flag:
                break
            lib.ERR_clear_error()
            if self._closing:
                return
            if err == lib.SSL_ERROR_ZERO_RETURN:  # close_notify
                if self._reading:
                    self._app_eof()
                else:
                    self._eof_pending = True
            else:
                self._fatal(ConnectionResetError("TLS connection failed"))
            return
        if not self._closing:  # (close() flushed already; after abort() nothing may be written)
            self._flush()  # anything SSL_read had to answer (a KeyUpdate, an alert)

    def _app_eof(self) -> None:
        protocol = self._protocol
        assert protocol is not None
        if self._closing or self._eof_delivered:
            return
        self._eof_delivered = True
        self._reading = False
        keep_open = protocol.eof_received()
        if not keep_open:
            self.close()

    # -- writing ----------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Move the ciphertext OpenSSL wrote into the write BIO to the TCP transport."""
        raw = self._raw
        if raw is None or self._wbio is None:
            return
        lib = self._lib
        out = self._server.write_buffer
        while True:
            n = lib.BIO_read(self._wbio, out, WRITE_CHUNK)
            if n <= 0:
                return
            raw.write(self._ffi.unpack(out, n))
            if n < WRITE_CHUNK:
                return

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        lib = self._lib
        ssl_ptr = self._ssl
        lib.ERR_clear_error()
        if isinstance(data, bytes):
            size = len(data)
            n = lib.SSL_write(ssl_ptr, data, size)  # a memory BIO takes everything: n == size
        else:
            view = memoryview(data).cast("B")  # bytes, whatever the item size
            size = view.nbytes
            n = lib.SSL_write(ssl_ptr, self._ffi.from_buffer(view), size)
        if n != size:
            lib.ERR_clear_error()
            self._fatal(BrokenPipeError("TLS write failed"))
            return
        self._flush()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size() if self._raw is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits() if self._raw is not None else (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        assert self._raw is not None
        self._raw.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS cannot half-close")

    # -- flow control -----------------------------------------------------------------------------

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._reading and not self._closing:
            self._reading = False
            assert self._raw is not None
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if self._reading or self._closing or self._protocol is None:
            return
        self._reading = True
        assert self._raw is not None
        self._raw.resume_reading()
        # Records that arrived before the pause are still in the read BIO (or decrypted in OpenSSL).
        self._server.loop.call_soon(self._resume_records)

    def _resume_records(self) -> None:
        if self._reading and not self._closing and self._ssl is not None:
            self._read_records()
            if self._eof_pending and self._reading:
                self._eof_pending = False
                self._app_eof()

    # -- closing ----------------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._reading = False
        lib = self._lib
        lib.ERR_clear_error()
        if self._ssl is not None and lib.SSL_shutdown(self._ssl) < 0:  # queue close_notify
            lib.ERR_clear_error()
        self._flush()
        assert self._raw is not None
        self._raw.close()  # after what is queued; connection_lost follows
        # A client that stops reading would keep the connection (and what is queued) forever.
        self._close_timer = self._server.loop.call_later(self._server.shutdown_timeout, self.abort)

    def abort(self) -> None:
        self._closing = True
        self._reading = False
        if self._raw is not None:
            self._raw.abort()

    def _fatal(self, exc: Exception) -> None:
        log.debug("TLS connection failed: %s", exc)
        self.abort()

    # -- facts ------------------------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._facts
        if self._raw is None:
            return default
        return self._raw.get_extra_info(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        raise NotImplementedError("the protocol of a TLS connection is fixed")


class BundledTLSServer:
    """Serves the edge's protocol over TLS on a listening socket (which it owns from ``start``).

    ``close()`` stops accepting and drops connections still in their handshake (they have sent no
    request); established ones belong to their protocol and close through it; ``wait_closed()``
    returns once they have.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        listening: BundledTLSContext,
        *,
        handshake_timeout: float,
        max_intermediates: int,
        backlog: int = 1024,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.binding = binding()
        self.loop = loop
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.listening = listening
        self.handshake_timeout = handshake_timeout
        self.shutdown_timeout = shutdown_timeout
        self.max_intermediates = max_intermediates
        self.backlog = backlog
        self.read_buffer: Any = self.binding.ffi.new("char[]", READ_SIZE)
        self.write_buffer: Any = self.binding.ffi.new("char[]", WRITE_CHUNK)
        self._server: asyncio.Server | None = None
        self._handshaking: set[BundledTLSTransport] = set()
        self._open: set[BundledTLSTransport] = set()
        self._closed_event = asyncio.Event()
        self._serving = False
        self.handshakes_failed = 0

    async def start(self) -> None:
        self._server = await self.loop.create_server(
            lambda: BundledTLSTransport(self), sock=self.sock, backlog=self.backlog
        )
        self._serving = True

    def handshake_started(self, transport: BundledTLSTransport) -> None:
        self._handshaking.add(transport)

    def handshake_completed(self, transport: BundledTLSTransport) -> None:
        self._handshaking.discard(transport)
        self._open.add(transport)

    def handshake_failed(self, transport: BundledTLSTransport) -> None:
        if transport in self._handshaking:
            self._handshaking.discard(transport)
            self.handshakes_failed += 1

    def forget(self, transport: BundledTLSTransport) -> None:
        self._open.discard(transport)
        if not self._serving and not self._open:
            self._closed_event.set()

    def close(self) -> None:
        if self._server is not None and self._serving:
            self._serving = False
            self._server.close()  # closes the listening socket: the port refuses from now on
        for transport in list(self._handshaking):
            transport.abort()
        if not self._open:
            self._closed_event.set()

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    def connections(self) -> int:
        return len(self._open)


def memory_handshake(
    ctx: BundledTLSContext,
    client_ctx: Any,
    server_name: str | None,
    *,
    max_intermediates: int = 8,
    session: Any = None,
) -> tuple[TLSFacts, Any]:
    """A real handshake of ``ctx`` (server side, through memory BIOs exactly as
    :class:`BundledTLSTransport` drives it) with a stdlib client context, then one round of
    application data each way. For the start-up self-check and tests.

    Returns (the server's facts, the client's ``ssl.SSLObject``). Raises ``ssl.SSLError`` when
    the handshake fails.
    """
    import ssl

    b = binding()
    lib, ffi = b.lib, b.ffi
    made = _new_server_ssl(b, ctx)
    if made is None:
        raise MemoryError("SSL_new or BIO_new failed")
    ssl_ptr = ffi.gc(made[0], lib.SSL_free)  # frees both BIOs too
    rbio, wbio = made[1], made[2]
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(client_in, client_out, server_hostname=server_name, session=session)
    out = ffi.new("char[]", 65536)

    def to_server() -> None:
        data = client_out.read()
        if data:
            lib.BIO_write(rbio, data, len(data))

    def to_client() -> None:
        while (n := lib.BIO_read(wbio, out, 65536)) > 0:
            client_in.write(ffi.unpack(out, n))

    server_done = client_done = False
    for _ in range(10):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        to_server()
        if not server_done:
            lib.ERR_clear_error()
            r = lib.SSL_do_handshake(ssl_ptr)
            if r == 1:
                server_done = True
            elif lib.SSL_get_error(ssl_ptr, r) != lib.SSL_ERROR_WANT_READ:
                to_client()  # let the client see the alert
                raise ssl.SSLError(f"server handshake failed: {b.error_text()}")
        to_client()
        if client_done and server_done:
            break
    else:
        raise ssl.SSLError("in-memory handshake did not finish")
    client.write(b"ping")
    to_server()
    buf = ffi.new("char[]", 16)
    lib.ERR_clear_error()
    n = lib.SSL_read(ssl_ptr, buf, 16)
    if n != 4 or ffi.unpack(buf, n) != b"ping":
        raise ssl.SSLError("application data did not arrive at the server")
    if lib.SSL_write(ssl_ptr, b"pong", 4) != 4:
        raise ssl.SSLError(f"server write failed: {b.error_text()}")
    to_client()
    if client.read(4) != b"pong":
        raise ssl.SSLError("application data did not arrive at the client")
    return _read_facts(b, ssl_ptr, max_intermediates), client
