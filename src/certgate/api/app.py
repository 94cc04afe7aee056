"""The control-plane ASGI application: ESA RPC at ``/`` and the edge snapshot endpoint.

The web layer only moves bytes: it reads the request (bounded), hands signature checks and use
cases to worker threads (services and stores are synchronous; the event loop never blocks on
them), and renders every outcome as JSON, errors through the one table in ``api.errors``. It
never shows a traceback: unexpected failures are logged with the request id and answered with a
generic ``InternalError``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from certgate.api import actions as _actions  # noqa: F401  (registers every action)
from certgate.api.auth import Authenticator, SignedRequest
from certgate.api.edge_sync import (
    SNAPSHOT_PATH,
    SnapshotSource,
    VersionWatcher,
    check_edge_token,
    not_modified,
    parse_poll,
    snapshot_response,
)
from certgate.api.errors import RequestError, error_body, invalid_parameter, reply_for
from certgate.api.registry import API_VERSION, REGISTRY, Action, Call, Registry
from certgate.api.wire import Params, decode_params
from certgate.ids import new_request_id
from certgate.services.context import ServiceContext
from certgate.services.publishing import SnapshotPublisher
from certgate.settings import ControlPlaneSettings

log = logging.getLogger("certgate.api")

MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest request body accepted (the largest legitimate one, a 64 KiB CSR or chain, urlencoded,
is about 200 KiB)."""

FORM_TYPE: Final = "application/x-www-form-urlencoded"
JSON_TYPE: Final = "application/json;charset=utf-8"


def json_response(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(data, status_code=status, headers=dict(headers or {}), media_type=JSON_TYPE)


def error_response(exc: BaseException, *, request_id: str, host_id: str) -> Response:
    reply = reply_for(exc)
    if reply.internal:
        log.error("request %s failed", request_id, exc_info=exc)
    headers = {"x-acs-request-id": request_id}
    if reply.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return json_response(error_body(reply, request_id=request_id, host_id=host_id), reply.status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"The request body exceeds {limit} bytes.", reason="api.body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"The request body exceeds {limit} bytes.", reason="api.body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def form_pairs(request: Request, body: bytes) -> list[tuple[str, str]]:
    if not body:
        return []
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_TYPE:
        raise RequestError(
            f"The request body must be {FORM_TYPE} (got {content_type or 'no content type'}).",
            reason="api.unsupported_content_type",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("The request body is not UTF-8.", reason="api.invalid_request") from None
    return parse_qsl(text, keep_blank_values=True)


def merge_params(*sources: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Query and form parameters in one mapping; a name given twice is refused rather than
    guessed at (the signature covers both copies, the handler would see only one)."""
    merged: dict[str, str] = {}
    for pairs in sources:
        for key, value in pairs:
            if key in merged:
                raise invalid_parameter(key, "is given more than once")
            merged[key] = value
    return merged


def header_lists(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw_name, raw_value in request.scope["headers"]:
        out.setdefault(raw_name.decode("latin-1").lower(), []).append(raw_value.decode("latin-1"))
    return out


class RPCEndpoint:
    def __init__(
        self,
        ctx: ServiceContext,
        authenticator: Authenticator,
        watcher: VersionWatcher,
        *,
        registry: Registry = REGISTRY,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._ctx = ctx
        self._auth = authenticator
        self._watcher = watcher
        self._registry = registry
        self._max_body = max_body_bytes

    async def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        host_id = request.headers.get("host", "certgate")
        mutating = False
        try:
            body = await read_body(request, self._max_body)
            query = parse_qsl(
                request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
            )
            form = form_pairs(request, body)
            raw = merge_params(query, form)
            headers = header_lists(request)
            action_name = request.headers.get("x-acs-action") or raw.get("Action")
            if not action_name:
                raise RequestError("The request names no action (x-acs-action).", reason="api.missing_action")
            action = self._registry.get(action_name)
            if action is None:
                raise RequestError(
                    f"The specified action {action_name[:64]!r} is not found in version {API_VERSION}.",
                    reason="api.unknown_action",
                )
            version = request.headers.get("x-acs-version") or raw.get("Version")
            if not version:
                raise RequestError(
                    "The request names no version (x-acs-version).", reason="api.missing_version"
                )
            if version != API_VERSION:
                raise RequestError(
                    f"The specified version {version[:32]!r} is not supported; use {API_VERSION}.",
                    reason="api.unsupported_version",
                )
            signed = SignedRequest(
                method=request.method,
                path=request.scope.get("raw_path", b"/").decode("latin-1") or "/",
                query=query,
                headers=headers,
                body=body,
                params=raw,
            )
            mutating = action.mutates
            # One hop to a worker thread for everything that touches the store.
            result = await run_in_threadpool(self._serve, signed, action, raw)
            return json_response(
                {"RequestId": request_id, **result}, headers={"x-acs-request-id": request_id}
            )
        except Exception as exc:
            return error_response(exc, request_id=request_id, host_id=host_id)
        finally:
            if mutating:
                # Also after a failure: a multi-step use case may have committed part of its work.
                self._watcher.notify()

    def _serve(self, signed: SignedRequest, action: Action, raw: Mapping[str, str]) -> dict[str, Any]:
        caller = self._auth.authenticate(signed)
        params = Params(decode_params(action.params, raw))
        return action.handler(Call(self._ctx, caller.account, params))


class SnapshotEndpoint:
    def __init__(
        self,
        source: SnapshotSource,
        watcher: VersionWatcher,
        ctx: ServiceContext,
        *,
        token: str,
        max_wait: float,
    ) -> None:
        self._source = source
        self._watcher = watcher
        self._ctx = ctx
        self._token = token
        self._max_wait = max_wait

    async def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        try:
            check_edge_token(request, self._token)
            after, wait = parse_poll(request, self._max_wait)
            if after is not None:
                current = await self._watcher.refresh()
                # Equal: wait for the next version. Lower than `after` means the edge saw a
                # newer configuration than this database has (restored from a backup): answer
                # at once so the edge can tell.
                if current == after:
                    newer = await self._watcher.wait_newer(after, wait)
                    if newer is None or newer <= after:
                        return not_modified(newer if newer is not None else current)
            snapshot = await run_in_threadpool(self._source.current)
            if after is None and snapshot.etag in _etags(request.headers.get("if-none-match", "")):
                return not_modified(snapshot.version, snapshot.etag)
            return snapshot_response(snapshot)
        except Exception as exc:
            return error_response(exc, request_id=request_id, host_id=request.headers.get("host", "certgate"))


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def create_app(
    ctx: ServiceContext,
    settings: ControlPlaneSettings,
    *,
    edge_token: str,
    poll_interval: float = 0.05,
    max_body_bytes: int = MAX_BODY_BYTES,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The control plane's HTTP application over ``ctx`` (its clock also judges signature dates).

    ``extra_routes`` are served next to the API, e.g. ``Mount("/console", app=create_console(...))``:
    the composition root decides what else this process serves."""
    if not edge_token:
        raise ValueError("edge_token must not be empty")
    watcher = VersionWatcher(ctx.store.current_version, interval=poll_interval)
    rpc = RPCEndpoint(
        ctx,
        Authenticator(ctx, window_seconds=settings.signature_window_seconds),
        watcher,
        max_body_bytes=max_body_bytes,
    )
    snapshots = SnapshotEndpoint(
        SnapshotSource(SnapshotPublisher(ctx)),
        watcher,
        ctx,
        token=edge_token,
        max_wait=settings.snapshot_poll_max_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await watcher.start()
        try:
            yield
        finally:
            await watcher.stop()

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            err: Exception = RequestError(f"No API at {request.url.path[:200]}.", reason="api.not_found")
        elif status == 405:
            err = RequestError(f"{request.method} is not allowed here.", reason="api.method_not_allowed")
        else:
            err = exc
        return error_response(
            err, request_id=new_request_id(), host_id=request.headers.get("host", "certgate")
        )

    app = Starlette(
        routes=[
            Route("/", rpc.handle, methods=["GET", "POST"]),
            Route(SNAPSHOT_PATH, snapshots.handle, methods=["GET"]),
            *extra_routes,
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )
    app.state.watcher = watcher
    return app
