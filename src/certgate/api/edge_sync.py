"""The snapshot endpoint edges pull their configuration from (not part of ESA), and the watcher
that tells long-polling edges about a new configuration version at once.

``GET /edge/v1/snapshot`` with ``Authorization: Bearer <edge token>`` returns the encoded
snapshot of the current version; ``?after=V&wait=S`` holds the request until the version is
greater than V (or S seconds pass: 304). The protocol is documented in ``docs/edge-sync.md``.

Change detection: one ``VersionWatcher`` per process reads ``store.current_version()`` every
``interval`` seconds while at least one edge is waiting (another replica may have written), and
immediately when this process finished a mutating action (``notify``). Reads run in a worker
thread: the event loop never waits for the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from certgate.api.errors import invalid_parameter
from certgate.errors import Unauthenticated
from certgate.services.publishing import SnapshotPublisher

log = logging.getLogger("certgate.api.edge_sync")

SNAPSHOT_PATH = "/edge/v1/snapshot"
VERSION_HEADER = "X-Certgate-Snapshot-Version"


class VersionWatcher:
    """Knows the store's configuration version and wakes waiters when it changes.

    Lives on one event loop (``start``/``stop`` in the app's lifespan); ``notify`` and
    ``wait_newer`` must be called from that loop.
    """

    def __init__(self, read_version: Callable[[], int], *, interval: float = 0.05) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._read_version = read_version
        self._interval = interval
        self._version: int | None = None
        self._changed = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._has_waiters = asyncio.Event()
        self._waiters = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def version(self) -> int | None:
        """The last version read (None before the first read)."""
        return self._version

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="certgate-version-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def notify(self) -> None:
        """This process changed the store: read the version now instead of at the next tick."""
        self._wakeup.set()

    async def refresh(self) -> int:
        """Read the version now (in a worker thread) and wake waiters if it changed."""
        version = await to_thread.run_sync(self._read_version)
        if version != self._version:
            self._version = version
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
        return version

    async def wait_newer(self, after: int, seconds: float) -> int | None:
        """The first version seen that is greater than ``after``, or the last one read when
        ``seconds`` pass first (which may be None if no read succeeded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._waiters += 1
        self._has_waiters.set()
        try:
            while True:
                version = self._version
                if version is not None and version > after:
                    return version
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return version
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            self._waiters -= 1
            if self._waiters == 0:
                self._has_waiters.clear()

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._has_waiters.is_set() and not self._wakeup.is_set():
                # Nobody waits: sleep until a waiter arrives or a local change is notified.
                wait_waiter = asyncio.ensure_future(self._has_waiters.wait())
                wait_wakeup = asyncio.ensure_future(self._wakeup.wait())
                try:
                    await asyncio.wait({wait_waiter, wait_wakeup}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    wait_waiter.cancel()
                    wait_wakeup.cancel()
            self._wakeup.clear()
            try:
                await self.refresh()
                failures = 0
            except Exception:
                failures += 1
                if failures == 1 or failures % 100 == 0:
                    log.exception("reading the configuration version failed (%d in a row)", failures)
            delay = self._interval if failures == 0 else min(5.0, self._interval * 2 ** min(failures, 7))
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                pass


@dataclass(frozen=True, slots=True)
class EncodedSnapshot:
    version: int
    data: bytes
    etag: str


class SnapshotSource:
    """The encoded snapshot of the current version with its ETag, computed once per version."""

    def __init__(self, publisher: SnapshotPublisher) -> None:
        self._publisher = publisher
        self._cached: EncodedSnapshot | None = None

    def current(self) -> EncodedSnapshot:
        version, data = self._publisher.current()
        cached = self._cached
        if cached is not None and cached.version == version and cached.data is data:
            return cached
        digest = hashlib.sha256(data).hexdigest()[:32]
        encoded = EncodedSnapshot(version, data, f'"{version}-{digest}"')
        self._cached = encoded
        return encoded


class EdgeAuthError(Unauthenticated):
    default_reason = "auth.edge_token"


def check_edge_token(request: Request, token: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise EdgeAuthError("The snapshot endpoint needs 'Authorization: Bearer <edge token>'.")
    if not hmac.compare_digest(presented.strip().encode("utf-8", "replace"), token.encode()):
        raise EdgeAuthError("The edge token is not valid.")


def parse_poll(request: Request, max_wait: float) -> tuple[int | None, float]:
    """``after`` (None: answer at once) and the bounded ``wait`` in seconds."""
    raw_after = request.query_params.get("after")
    raw_wait = request.query_params.get("wait")
    after: int | None = None
    if raw_after is not None:
        if not raw_after.isdigit() or len(raw_after) > 19:
            raise invalid_parameter("after", "must be a non-negative integer version")
        after = int(raw_after)
    wait = max_wait
    if raw_wait is not None:
        try:
            wait = float(raw_wait)
        except ValueError:
            raise invalid_parameter("wait", "must be a number of seconds") from None
        if not math.isfinite(wait) or wait < 0:
            raise invalid_parameter("wait", "must be a non-negative number of seconds")
    return after, min(wait, max_wait)


def snapshot_response(snapshot: EncodedSnapshot) -> Response:
    return Response(
        snapshot.data,
        media_type="application/json",
        headers={VERSION_HEADER: str(snapshot.version), "ETag": snapshot.etag, "Cache-Control": "no-store"},
    )


def not_modified(version: int | None, etag: str | None = None) -> Response:
    headers = {"Cache-Control": "no-store"}
    if version is not None:
        headers[VERSION_HEADER] = str(version)
    if etag is not None:
        headers["ETag"] = etag
    return Response(status_code=304, headers=headers)
