"""Request authentication for the ESA RPC endpoint: ACS3-HMAC-SHA256 (the SDK's default) and the
older V2 HMAC-SHA1 query signature (``Config(signature_algorithm='v2')``).

Every check raises ``Unauthenticated`` with an ``auth.*`` reason (``api.errors`` turns it into
ESA's code); success returns the caller's ``Caller``. Order: shape of the signature, timestamp
window, access key, signature (and body digest), then the nonce: a nonce is remembered only for
requests whose signature verified, so strangers cannot fill the nonce table or burn someone
else's nonces. Nonces live in the store (``Transaction.claim_nonce``) so every replica of the
control plane refuses a replay seen by any other. Secrets and digests are compared with
``hmac.compare_digest``.

The signing half (``sign_acs3``, ``sign_v2``) is here too, next to the canonical forms it shares
with the verifier: tests and the benchmark use it to build raw requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from certgate.errors import Unauthenticated
from certgate.model import Account
from certgate.services.accounts import resolve_access_key
from certgate.services.context import ServiceContext

ACS3: Final = "ACS3-HMAC-SHA256"
V2_METHOD: Final = "HMAC-SHA1"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
DATE_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
MAX_NONCE_LENGTH: Final = 128
MAX_CACHED_KEYS: Final = 10_000

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_NONCE = re.compile(rf"^[\x21-\x7e]{{1,{MAX_NONCE_LENGTH}}}$")
_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")

#: Headers that must be present and signed: without them a captured request could be replayed
#: for another action, another body, outside the window or with a fresh nonce.
REQUIRED_SIGNED: Final = {
    "host": "Host",
    "x-acs-action": "Action",
    "x-acs-version": "Version",
    "x-acs-date": "Timestamp",
    "x-acs-signature-nonce": "SignatureNonce",
    "x-acs-content-sha256": "ContentSha256",
}
V2_REQUIRED: Final = ("AccessKeyId", "Signature", "SignatureMethod", "SignatureNonce", "Timestamp")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the verifier needs of an HTTP request, already split by the web layer."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]  # URL-decoded pairs, in order, blanks kept
    headers: Mapping[str, Sequence[str]]  # lowercase name -> values
    body: bytes
    params: Mapping[str, str]  # query and form parameters merged (V2 signs them all)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return ",".join(values) if values else None


@dataclass(frozen=True, slots=True)
class Caller:
    account: Account
    access_key_id: str
    scheme: str  # "ACS3-HMAC-SHA256" | "HMAC-SHA1"


def _fail(reason: str, message: str, **details: str) -> Unauthenticated:
    return Unauthenticated(message, reason=reason, **details)


def _missing(name: str, what: str) -> Unauthenticated:
    return _fail("auth.missing", f"The request is not signed completely: {what} is missing.", param=name)


# -- canonical forms (shared by signer and verifier) -------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding (UTF-8, uppercase hex, only unreserved characters kept)."""
    return quote(value, safe="~")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(pairs))


def canonical_headers(headers: Mapping[str, Sequence[str]], signed: Sequence[str]) -> str:
    out = []
    for name in signed:
        values = sorted(v.strip() for v in headers.get(name, ()))
        out.append(f"{name}:{','.join(values)}\n")
    return "".join(out)


def acs3_string_to_sign(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, Sequence[str]],
    signed: Sequence[str],
    payload_hash: str,
) -> str:
    canonical = "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        ]
    )
    return f"{ACS3}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def acs3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def v2_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    pairs = [(k, v) for k, v in params.items() if k != "Signature"]
    return f"{method.upper()}&%2F&{percent_encode(canonical_query(pairs))}"


def v2_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def format_date(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime(DATE_FORMAT)


def sign_acs3(
    *,
    method: str,
    host: str,
    action: str,
    query: Sequence[tuple[str, str]],
    body: bytes,
    access_key_id: str,
    secret: str,
    date: dt.datetime,
    nonce: str,
    version: str = "2024-09-10",
    content_type: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of an ACS3-signed request, signing every header it sets (as the SDK does)."""
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": format_date(date),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "accept": "application/json",
    }
    if content_type is not None:
        headers["content-type"] = content_type
    headers.update({k.lower(): v for k, v in (extra_headers or {}).items()})
    signed = sorted(headers)
    multi = {k: [v] for k, v in headers.items()}
    sts = acs3_string_to_sign(method, "/", query, multi, signed, headers["x-acs-content-sha256"])
    signature = acs3_signature(secret, sts)
    headers["authorization"] = (
        f"{ACS3} Credential={access_key_id},SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    return headers


def sign_v2(
    *, method: str, params: Mapping[str, str], access_key_id: str, secret: str, date: dt.datetime, nonce: str
) -> dict[str, str]:
    """``params`` (action parameters plus Action and Version) with the V2 signature parameters."""
    signed = dict(params)
    signed.update(
        {
            "Format": "json",
            "Timestamp": format_date(date),
            "SignatureNonce": nonce,
            "SignatureMethod": V2_METHOD,
            "SignatureVersion": "1.0",
            "AccessKeyId": access_key_id,
        }
    )
    signed["Signature"] = v2_signature(secret, v2_string_to_sign(method, signed))
    return signed


# -- verification ------------------------------------------------------------------------------


def parse_authorization(value: str) -> tuple[str, str, list[str], str]:
    """(algorithm, access key id, signed header names, signature) of an ACS3 Authorization."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ACS3:
        raise _fail("auth.incomplete_signature", f"Authorization must use {ACS3}.")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep or key in parts:
            raise _fail("auth.incomplete_signature", "Authorization is malformed.")
        parts[key] = val.strip()
    credential = parts.get("Credential", "")
    signed_list = parts.get("SignedHeaders", "")
    signature = parts.get("Signature", "")
    if (
        not credential
        or not signed_list
        or not signature
        or set(parts) - {"Credential", "SignedHeaders", "Signature"}
    ):
        raise _fail(
            "auth.incomplete_signature", "Authorization needs Credential, SignedHeaders and Signature."
        )
    signed = signed_list.split(";")
    if len(set(signed)) != len(signed) or not all(_HEADER_NAME.match(h) for h in signed):
        raise _fail("auth.incomplete_signature", "SignedHeaders must list distinct lowercase header names.")
    return algorithm, credential, signed, signature


class Authenticator:
    """Verifies signed requests against the store's access keys and nonces. Thread-safe; calls
    the store, so run it off the event loop.

    A resolved access key (account and secret) is reused for ``key_cache_seconds`` (monotonic
    time): it saves a database round trip and a decryption per request, at the price that a
    key disabled in the database keeps working that long on a replica that saw it recently.
    Unknown keys are never cached. ``0`` turns the cache off.
    """

    def __init__(self, ctx: ServiceContext, *, window_seconds: int, key_cache_seconds: float = 5.0) -> None:
        self._ctx = ctx
        self._window = dt.timedelta(seconds=window_seconds)
        self._key_ttl = key_cache_seconds
        self._keys: dict[str, tuple[float, Account, str]] = {}
        self._keys_lock = threading.Lock()
        # Nonce claims are tiny write transactions. Taking them one at a time in this process
        # keeps concurrent requests from fighting over the database's writer lock (SQLite waits
        # for it by sleeping with back-off; PostgreSQL serialises writers on one row anyway).
        self._claim_lock = threading.Lock()

    def _resolve(self, key_id: str) -> tuple[Account, str]:
        if self._key_ttl <= 0:
            return resolve_access_key(self._ctx, key_id)
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        account, secret = resolve_access_key(self._ctx, key_id)
        with self._keys_lock:
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys = {k: v for k, v in self._keys.items() if v[0] > now}
                if len(self._keys) >= MAX_CACHED_KEYS:
                    self._keys.clear()
            self._keys[key_id] = (now + self._key_ttl, account, secret)
        return account, secret

    def authenticate(self, request: SignedRequest) -> Caller:
        authorization = request.header("authorization")
        if authorization is None and "Signature" in request.params:
            return self._authenticate_v2(request)
        if authorization is None:
            raise _missing("Authorization", "the Authorization header")
        _, key_id, signed, signature = parse_authorization(authorization)
        for header, name in REQUIRED_SIGNED.items():
            if request.header(header) is None:
                raise _missing(name, f"the {header} header")
            if header not in signed:
                raise _fail("auth.incomplete_signature", f"The {header} header must be signed.")
        if request.header("content-type") is not None and "content-type" not in signed:
            raise _fail("auth.incomplete_signature", "The content-type header must be signed.")
        date_header = request.header("x-acs-date")
        nonce = request.header("x-acs-signature-nonce")
        payload = request.header("x-acs-content-sha256")
        assert date_header is not None and nonce is not None and payload is not None
        when = self._check_date(date_header, "x-acs-date")
        self._check_nonce_shape(nonce)
        account, secret = self._resolve(key_id)
        sts = acs3_string_to_sign(
            request.method, request.path, request.query, request.headers, signed, payload
        )
        if not hmac.compare_digest(
            acs3_signature(secret, sts).encode(), signature.encode("utf-8", "replace")
        ):
            raise _fail(
                "auth.signature_mismatch", "The request signature does not match the one we calculated."
            )
        body_hash = hashlib.sha256(request.body).hexdigest()
        if not hmac.compare_digest(body_hash.encode(), payload.strip().lower().encode("utf-8", "replace")):
            raise _fail("auth.signature_mismatch", "x-acs-content-sha256 does not match the request body.")
        self._claim_nonce(key_id, nonce, when)
        return Caller(account, key_id, ACS3)

    def _authenticate_v2(self, request: SignedRequest) -> Caller:
        params = request.params
        for name in V2_REQUIRED:
            if not params.get(name):
                raise _missing(name, f"the {name} parameter")
        if params["SignatureMethod"] != V2_METHOD or params.get("SignatureVersion", "1.0") != "1.0":
            raise _fail("auth.incomplete_signature", f"SignatureMethod must be {V2_METHOD}, version 1.0.")
        when = self._check_date(params["Timestamp"], "Timestamp")
        nonce = params["SignatureNonce"]
        self._check_nonce_shape(nonce)
        key_id = params["AccessKeyId"]
        account, secret = self._resolve(key_id)
        expected = v2_signature(secret, v2_string_to_sign(request.method, params))
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode("utf-8", "replace")):
            raise _fail(
                "auth.signature_mismatch", "The request signature does not match the one we calculated."
            )
        self._claim_nonce(key_id, nonce, when)
        return Caller(account, key_id, V2_METHOD)

    def _check_date(self, value: str, name: str) -> dt.datetime:
        value = value.strip()
        if not _DATE.match(value):
            raise _fail("auth.timestamp_format", f"{name} must be UTC in the format yyyy-MM-ddTHH:mm:ssZ.")
        try:
            when = dt.datetime.strptime(value, DATE_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            raise _fail("auth.timestamp_format", f"{name} is not a valid date.") from None
        now = self._ctx.clock.now()
        if abs(now - when) > self._window:
            raise _fail(
                "auth.timestamp_expired",
                f"{name} {value} is more than {self._window.total_seconds() / 60:g} minutes away from "
                f"the server time {format_date(now)}.",
            )
        return when

    @staticmethod
    def _check_nonce_shape(nonce: str) -> None:
        if not _NONCE.match(nonce):
            raise _fail(
                "auth.incomplete_signature",
                f"The signature nonce must be 1-{MAX_NONCE_LENGTH} printable ASCII characters.",
            )

    def _claim_nonce(self, key_id: str, nonce: str, when: dt.datetime) -> None:
        now = self._ctx.clock.now()
        # A request is acceptable while its date is within the window of the server clock, so
        # its nonce must be remembered at least until then.
        expires_at = max(now, when) + self._window
        with self._claim_lock, self._ctx.store.transaction() as tx:
            fresh = tx.claim_nonce(f"{key_id}:{nonce}", now=now, expires_at=expires_at)
        if not fresh:
            raise _fail("auth.nonce_used", "The signature nonce has been used in a recent request.")
