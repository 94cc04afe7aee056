"""A small client for certgate's ESA-compatible RPC API that signs requests like the official SDK.

It owns the wire side of the CLI: parameter serialisation (``str()`` scalars, Python-style
``True``/``False``, "shrink" JSON for lists and objects), the ACS3-HMAC-SHA256 canonical request
and signature (ESA-API.md §1.2-1.3), and the translation of HTTP outcomes into one of two
exceptions: :class:`ApiError` (the server answered with an ESA error body) or
:class:`TransportError` (no usable answer). It never logs, prints or puts into an exception the
AccessKeySecret.

The signing functions are pure (date, nonce and user agent are parameters) so tests can compare
them byte for byte with the SDK's own ``Utils.get_authorization``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import httpx

from certgate import __version__

API_VERSION: Final = "2024-09-10"
SIGNATURE_ALGORITHM: Final = "ACS3-HMAC-SHA256"
EMPTY_BODY_SHA256: Final = hashlib.sha256(b"").hexdigest()
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
DEFAULT_USER_AGENT: Final = f"certgate-cli/{__version__}"
DEFAULT_TIMEOUT_SECONDS: Final = 120.0
"""Generous because issuing an RSA4096 certificate makes the server search for primes."""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)


class ApiError(Exception):
    """The API answered with an error body: ``Code`` and ``Message`` as ESA sends them."""

    def __init__(self, code: str, message: str, *, status: int, request_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id


class TransportError(Exception):
    """No usable answer: connection refused, timeout, TLS failure, or a body that is not JSON."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the API lives. ``netloc`` is sent verbatim as the Host header, as the SDK does."""

    scheme: str
    netloc: str

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``https://host[:port]``, ``http://host[:port]`` or a bare ``host[:port]`` (HTTPS, the
        SDK's default protocol). Paths, queries and credentials in the URL are refused."""
        raw = text.strip()
        if not raw:
            raise ValueError("the endpoint is empty")
        parts = urlsplit(raw if "://" in raw else f"https://{raw}")
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"endpoint {text!r}: the scheme must be http or https")
        if not parts.hostname:
            raise ValueError(f"endpoint {text!r} has no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"endpoint {text!r} must not contain credentials")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"endpoint {text!r} must be scheme://host[:port] with no path")
        try:
            parts.port  # noqa: B018 -- raises ValueError on a malformed port
        except ValueError:
            raise ValueError(f"endpoint {text!r} has an invalid port") from None
        return cls(parts.scheme, parts.netloc)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


# -- serialisation ---------------------------------------------------------------------------


def encode_value(value: object) -> str:
    """One parameter value as the Python SDK puts it on the wire (ESA-API.md §1.6)."""
    if isinstance(value, bool):
        return "True" if value else "False"  # the SDK sends str(bool); the server parses both cases
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def encode_params(params: Mapping[str, object] | None) -> dict[str, str]:
    """Drop ``None`` (the SDK omits unset fields) and stringify the rest."""
    return {k: encode_value(v) for k, v in (params or {}).items() if v is not None}


def form_body(params: Mapping[str, str]) -> bytes:
    """The SDK's form encoding: keys sorted, ``urlencode`` (space → ``+``)."""
    return urlencode(sorted(params.items())).encode("utf-8") if params else b""


# -- signature (pure) ------------------------------------------------------------------------


def canonical_query_string(query: Mapping[str, str]) -> str:
    """Sorted ``key=value`` pairs, values RFC 3986-encoded (space → ``%20``, ``*`` → ``%2A``)."""
    return "&".join(f"{key}={quote(query[key], safe='~')}" for key in sorted(query))


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(canonical header block, SignedHeaders). Every header given is signed, as the SDK does."""
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        values.setdefault(name.lower(), []).append(value.strip())
    names = sorted(values)
    block = "".join(f"{name}:{','.join(sorted(values[name]))}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    method: str, pathname: str, query: Mapping[str, str], headers: Mapping[str, str], payload_sha256: str
) -> str:
    block, signed = canonical_headers(headers)
    return "\n".join(
        [method.upper(), pathname or "/", canonical_query_string(query), block, signed, payload_sha256]
    )


def authorization(
    method: str,
    pathname: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    credentials: Credentials,
) -> str:
    """The ``Authorization`` header value for a request whose every header in ``headers`` is signed."""
    request = canonical_request(method, pathname, query, headers, payload_sha256)
    string_to_sign = f"{SIGNATURE_ALGORITHM}\n{hashlib.sha256(request.encode('utf-8')).hexdigest()}"
    signature = hmac.new(
        credentials.access_key_secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    _, signed = canonical_headers(headers)
    return (
        f"{SIGNATURE_ALGORITHM} Credential={credentials.access_key_id},"
        f"SignedHeaders={signed},Signature={signature}"
    )


def acs_date(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_nonce() -> str:
    """32 lowercase hex digits, the shape of the SDK's md5-based nonce, from a CSPRNG."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def prepare_request(
    endpoint: Endpoint,
    credentials: Credentials,
    action: str,
    *,
    method: str,
    query: Mapping[str, object] | None = None,
    body: Mapping[str, object] | None = None,
    date: dt.datetime,
    nonce: str,
    user_agent: str = DEFAULT_USER_AGENT,
) -> PreparedRequest:
    """Build the exact bytes and headers of one signed RPC call (no I/O)."""
    query_params = encode_params(query)
    body_params = encode_params(body)
    payload = form_body(body_params)
    headers = {
        "host": endpoint.netloc,
        "x-acs-version": API_VERSION,
        "x-acs-action": action,
        "user-agent": user_agent,
        "x-acs-date": acs_date(date),
        "x-acs-signature-nonce": nonce,
        "accept": "application/json",
    }
    if payload:
        headers["content-type"] = FORM_CONTENT_TYPE
    payload_sha256 = hashlib.sha256(payload).hexdigest()
    headers["x-acs-content-sha256"] = payload_sha256
    headers["Authorization"] = authorization(method, "/", query_params, headers, payload_sha256, credentials)
    # The wire query uses urlencode like the SDK (whose generated code adds parameters in
    # alphabetical order); the server decodes it before canonicalising.
    url = f"{endpoint.url}/" + (f"?{urlencode(sorted(query_params.items()))}" if query_params else "")
    return PreparedRequest(method=method.upper(), url=url, headers=headers, body=payload)


# -- the client ------------------------------------------------------------------------------


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _error_from_response(response: httpx.Response) -> ApiError:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and (data.get("Code") or data.get("code")):
        code = str(data.get("Code") or data.get("code"))
        message = str(data.get("Message") or data.get("message") or "")
        request_id = data.get("RequestId") or data.get("requestId")
        return ApiError(code, message, status=response.status_code, request_id=request_id)
    text = " ".join(response.text.split())[:200] or response.reason_phrase
    return ApiError(f"HTTP{response.status_code}", text, status=response.status_code)


class Client:
    """Calls RPC actions on one endpoint with one access key. Synchronous; one connection pool."""

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        nonce: Callable[[], str] = new_nonce,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.endpoint = endpoint
        self._credentials = credentials
        self._clock = clock
        self._nonce = nonce
        self._user_agent = user_agent
        self._timeout = timeout
        if endpoint.scheme == "http":
            # No TLS is involved (and redirects are not followed), so skip building a CA store.
            verify = False
        # trust_env=False: a stray HTTP(S)_PROXY must not receive signed requests unannounced.
        self._http = httpx.Client(timeout=timeout, verify=verify, transport=transport, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        action: str,
        *,
        method: str = "POST",
        query: Mapping[str, object] | None = None,
        body: Mapping[str, object] | None = None,
    ) -> dict[str, Any]:
        """Send one action and return the decoded JSON object, or raise ApiError/TransportError."""
        prepared = prepare_request(
            self.endpoint,
            self._credentials,
            action,
            method=method,
            query=query,
            body=body,
            date=self._clock(),
            nonce=self._nonce(),
            user_agent=self._user_agent,
        )
        try:
            response = self._http.request(
                prepared.method, prepared.url, headers=prepared.headers, content=prepared.body
            )
        except httpx.TimeoutException:
            raise TransportError(f"no answer from {self.endpoint.url} within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach {self.endpoint.url}: {_describe(exc)}") from None
        if response.status_code >= 400:
            raise _error_from_response(response)
        try:
            data = response.json()
        except ValueError:
            raise TransportError(
                f"{self.endpoint.url} answered {action} with HTTP {response.status_code} but no JSON"
            ) from None
        if not isinstance(data, dict):
            raise TransportError(f"{self.endpoint.url} answered {action} with JSON that is not an object")
        return data


def _describe(exc: httpx.HTTPError) -> str:
    """The innermost cause, which is the part a person can act on (e.g. "Connection refused")."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = str(cause) or type(cause).__name__
    return " ".join(text.split())
