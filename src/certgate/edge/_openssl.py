"""ctypes access to the OpenSSL that the stdlib ``ssl`` module runs on: the only unsafe code of the edge.

The stdlib cannot request a client certificate without letting OpenSSL reject a bad one during
the handshake, and it cannot send CA names in CertificateRequest. This module adds exactly four
things to a stdlib ``SSLContext`` (see docs/edge-tls.md for why this approach was chosen):

* an accept-all ``SSL_CTX_set_cert_verify_callback``: OpenSSL builds and checks no chain, so an
  untrusted, expired or malformed certificate never fails the handshake. OpenSSL still checks the
  client's CertificateVerify signature, i.e. that the client holds the certificate's key;
* a certificate callback (``SSL_CTX_set_cert_cb``) that sets the verify mode on the connection
  itself: ``SSL_set_SSL_CTX`` (what ``sni_callback`` does) does not copy the verify mode, so
  without it every connection would keep the mode of the listening context;
* the client CA names (``SSL_CTX_set_client_CA_list``), built in memory from subject DER;
* the server session cache off (stdlib has no switch for it).

Symbols are resolved through ``_ssl`` itself, so they come from the very libssl the stdlib is linked
against, never from another copy loaded in the process. The ``SSL_CTX *`` is read from the
``PySSLContext`` object (``PyObject_HEAD`` then ``SSL_CTX *ctx``, unchanged through CPython 3.x);
:func:`ssl_ctx_pointer` checks that assumption on every use by reading the verify mode back, and
``tls.self_check`` proves the whole thing with a real handshake at start-up.

Callbacks must never raise: an exception inside a ctypes callback would fail the handshake.
"""

from __future__ import annotations

import ctypes
import functools
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from certgate.errors import CertGateError

_SSL_VERIFY_NONE: Final = 0
_SSL_VERIFY_PEER: Final = 1
_SSL_VERIFY_FAIL_IF_NO_PEER_CERT: Final = 2
_SSL_CTRL_SET_SESS_CACHE_MODE: Final = 44
_SSL_CTRL_GET_SESS_CACHE_MODE: Final = 45
SESS_CACHE_OFF: Final = 0

_MODE_OF: Final = {
    ssl.CERT_NONE: _SSL_VERIFY_NONE,
    ssl.CERT_OPTIONAL: _SSL_VERIFY_PEER,
    ssl.CERT_REQUIRED: _SSL_VERIFY_PEER | _SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
}

# int (*)(X509_STORE_CTX *, void *arg) and int (*)(SSL *, void *arg)
_CERT_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_CERT_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class OpenSSLBindingError(CertGateError):
    """The ctypes binding to the stdlib's libssl is unusable in this process; the edge must not start."""

    default_reason = "edge.tls_binding"


class _LibSSL:
    """Typed handles to the few libssl/libcrypto functions we call."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        p, i, ul = ctypes.c_void_p, ctypes.c_int, ctypes.c_ulong
        self.version_num = self._fn(lib, "OpenSSL_version_num", ul, [])
        self.ctx_get_verify_mode = self._fn(lib, "SSL_CTX_get_verify_mode", i, [p])
        self.ctx_set_cert_verify_callback = self._fn(
            lib, "SSL_CTX_set_cert_verify_callback", None, [p, _CERT_VERIFY_CB, p]
        )
        self.ctx_set_cert_cb = self._fn(lib, "SSL_CTX_set_cert_cb", None, [p, _CERT_CB, p])
        self.set_verify = self._fn(lib, "SSL_set_verify", None, [p, i, p])
        self.ctx_set_client_ca_list = self._fn(lib, "SSL_CTX_set_client_CA_list", None, [p, p])
        self.ctx_get_client_ca_list = self._fn(lib, "SSL_CTX_get_client_CA_list", p, [p])
        self.ctx_ctrl = self._fn(lib, "SSL_CTX_ctrl", ctypes.c_long, [p, i, ctypes.c_long, p])
        self.sk_new_null = self._fn(lib, "OPENSSL_sk_new_null", p, [])
        self.sk_push = self._fn(lib, "OPENSSL_sk_push", i, [p, p])
        self.sk_num = self._fn(lib, "OPENSSL_sk_num", i, [p])
        self.sk_value = self._fn(lib, "OPENSSL_sk_value", p, [p, i])
        self.sk_pop_free = self._fn(lib, "OPENSSL_sk_pop_free", None, [p, p])
        self.name_free = self._fn(lib, "X509_NAME_free", None, [p])
        self.name_free_ptr = ctypes.cast(lib["X509_NAME_free"], ctypes.c_void_p).value
        self.d2i_name = self._fn(lib, "d2i_X509_NAME", p, [p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long])
        self.i2d_name = self._fn(lib, "i2d_X509_NAME", i, [p, ctypes.POINTER(ctypes.c_void_p)])
        self.crypto_free = self._fn(lib, "CRYPTO_free", None, [p, ctypes.c_char_p, i])

    @staticmethod
    def _fn(lib: ctypes.CDLL, name: str, restype: Any, argtypes: list[Any]) -> Callable[..., Any]:
        try:
            fn = lib[name]
        except AttributeError:
            raise OpenSSLBindingError(
                f"libssl symbol {name} not found: is the stdlib _ssl module statically linked?"
            ) from None
        fn.restype = restype
        fn.argtypes = argtypes
        return fn


@functools.cache
def libssl() -> _LibSSL:
    """Bind to the libssl that ``_ssl`` links against (dlsym through ``_ssl`` searches its dependencies)."""
    import _ssl

    path = getattr(_ssl, "__file__", None)
    try:
        lib = ctypes.CDLL(path) if path else ctypes.CDLL(None)
    except OSError as exc:
        raise OpenSSLBindingError(f"cannot load the _ssl module as a shared library: {exc}") from None
    bound = _LibSSL(lib)
    found = int(bound.version_num())
    if found != ssl.OPENSSL_VERSION_NUMBER:
        raise OpenSSLBindingError(
            f"bound OpenSSL {found:#x} is not the one the ssl module reports "
            f"({ssl.OPENSSL_VERSION_NUMBER:#x})"
        )
    return bound


def _accept_any_chain_impl(_store_ctx: int | None, _arg: int | None) -> int:
    # Replaces OpenSSL's chain verification entirely: the edge verifies per request instead.
    return 1


def _request_client_certificate_impl(ssl_ptr: int | None, _arg: int | None) -> int:
    libssl().set_verify(ssl_ptr, _SSL_VERIFY_PEER, None)
    return 1


def _do_not_request_client_certificate_impl(ssl_ptr: int | None, _arg: int | None) -> int:
    libssl().set_verify(ssl_ptr, _SSL_VERIFY_NONE, None)
    return 1


# Module-level references keep the C thunks alive for as long as any SSL_CTX may call them.
_accept_any_chain = _CERT_VERIFY_CB(_accept_any_chain_impl)
_request_client_certificate = _CERT_CB(_request_client_certificate_impl)
_do_not_request_client_certificate = _CERT_CB(_do_not_request_client_certificate_impl)


def ssl_ctx_pointer(ctx: ssl.SSLContext) -> int:
    """The ``SSL_CTX *`` behind a stdlib context, after checking the struct-layout assumption."""
    if sys.implementation.name != "cpython":
        raise OpenSSLBindingError("the TLS binding needs CPython")
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer:
        raise OpenSSLBindingError("PySSLContext holds no SSL_CTX pointer where expected")
    expected = _MODE_OF[ctx.verify_mode]
    if libssl().ctx_get_verify_mode(pointer) != expected:
        raise OpenSSLBindingError(
            "PySSLContext layout differs from what the TLS binding assumes (verify mode mismatch)"
        )
    return pointer


def verify_mode(ctx: ssl.SSLContext) -> int:
    """OpenSSL's own verify-mode bits of a context (for checks and tests)."""
    return int(libssl().ctx_get_verify_mode(ssl_ctx_pointer(ctx)))


def configure_client_auth(ctx: ssl.SSLContext, *, request: bool, ca_names_der: Sequence[bytes]) -> None:
    """Request (or never request) a client certificate on ``ctx`` and accept any certificate sent.

    ``ca_names_der`` are DER-encoded X.509 Names sent in CertificateRequest (empty: none sent).
    """
    ctx.verify_mode = ssl.CERT_OPTIONAL if request else ssl.CERT_NONE
    lib = libssl()
    pointer = ssl_ctx_pointer(ctx)
    lib.ctx_set_cert_verify_callback(pointer, _accept_any_chain, None)
    callback = _request_client_certificate if request else _do_not_request_client_certificate
    lib.ctx_set_cert_cb(pointer, callback, None)
    lib.ctx_set_client_ca_list(pointer, _name_stack(lib, ca_names_der) if ca_names_der else None)


def _name_stack(lib: _LibSSL, names_der: Sequence[bytes]) -> int:
    stack = lib.sk_new_null()
    if not stack:
        raise MemoryError("OPENSSL_sk_new_null failed")
    try:
        for der in names_der:
            cursor = ctypes.c_char_p(der)
            name = lib.d2i_name(None, ctypes.byref(cursor), len(der))
            if not name:
                raise OpenSSLBindingError("a client CA name is not a valid DER X.509 Name")
            if lib.sk_push(stack, name) <= 0:
                lib.name_free(name)
                raise MemoryError("OPENSSL_sk_push failed")
    except BaseException:
        lib.sk_pop_free(stack, lib.name_free_ptr)
        raise
    return int(stack)  # ownership passes to the SSL_CTX


def client_ca_names(ctx: ssl.SSLContext) -> list[bytes]:
    """Read back the CA names a context sends in CertificateRequest, as DER X.509 Names."""
    lib = libssl()
    stack = lib.ctx_get_client_ca_list(ssl_ctx_pointer(ctx))
    if not stack:
        return []
    names = []
    for index in range(lib.sk_num(stack)):
        buffer = ctypes.c_void_p()
        size = lib.i2d_name(lib.sk_value(stack, index), ctypes.byref(buffer))
        if size <= 0 or not buffer.value:
            raise OpenSSLBindingError("cannot encode a client CA name")
        try:
            names.append(ctypes.string_at(buffer.value, size))
        finally:
            lib.crypto_free(buffer.value, None, 0)
    return names


def disable_session_cache(ctx: ssl.SSLContext) -> None:
    """Turn off OpenSSL's server-side session cache (TLS 1.2 session-id resumption)."""
    lib = libssl()
    lib.ctx_ctrl(ssl_ctx_pointer(ctx), _SSL_CTRL_SET_SESS_CACHE_MODE, SESS_CACHE_OFF, None)


def session_cache_mode(ctx: ssl.SSLContext) -> int:
    return int(libssl().ctx_ctrl(ssl_ctx_pointer(ctx), _SSL_CTRL_GET_SESS_CACHE_MODE, 0, None))
