"""Snapshot sync: pull the edge configuration from the control plane, verify it, swap it in, keep it.

The loop (docs/edge-sync.md): ``GET /edge/v1/snapshot?after=V&wait=S`` with the edge token. A
``200`` carries a new version: it is decoded and verified (digest, schema: ``decode_snapshot``),
compiled into an `EdgeState` reusing the previous one (``EdgeState.from_snapshot(previous=)``),
both in a worker thread so the event loop keeps serving, then handed to ``apply`` in one call on
the loop (the owner swaps one reference and the SNI router's map: no connection is dropped).
The raw bytes are then written to ``state_dir/snapshot.json`` atomically (temp file, fsync,
rename) with mode 0600, because the snapshot holds the edge certificates' private keys.

A ``304`` means nothing changed: ask again at once. Anything else (refused connection, 5xx,
401, a snapshot that does not verify) keeps the state in force and retries with exponential
backoff and jitter. At start-up the persisted snapshot is loaded first, so an edge restarted
while the control plane is down serves its last good configuration.

A version lower than the one in force is applied too (the control plane is the source of truth:
it was restored from a backup), with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

import httpx

from certgate.clock import Clock
from certgate.edge.metrics import EdgeMetrics
from certgate.edge.settings import EdgeSettings
from certgate.edge.state import EdgeState
from certgate.edge.tls import TLSContextFactory
from certgate.snapshot.format import SnapshotError, decode_snapshot

__all__ = ["SNAPSHOT_PATH", "VERSION_HEADER", "SnapshotSync", "persist_snapshot", "read_snapshot_file"]

log = logging.getLogger("certgate.edge.sync")

SNAPSHOT_PATH: Final = "/edge/v1/snapshot"
VERSION_HEADER: Final = "x-certgate-snapshot-version"


def persist_snapshot(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600).

    A crash at any point leaves either the old file or the new one, never a mix: the bytes go to
    a temporary file in the same directory, are fsynced, then renamed over the old name, and the
    directory is fsynced so the rename itself survives a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".snapshot-", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_snapshot_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class SnapshotSync:
    """Keeps one event loop's `EdgeState` current. Create and run it on that loop."""

    def __init__(
        self,
        settings: EdgeSettings,
        apply: Callable[[EdgeState], None],
        *,
        clock: Clock,
        tls_factory: TLSContextFactory,
        metrics: EdgeMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        persist: bool = True,
    ) -> None:
        self.settings = settings
        self._apply = apply
        self._clock = clock
        self._factory = tls_factory
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._persist = persist
        self._transport = transport
        self.state: EdgeState | None = None
        self.failures = 0
        """Consecutive failed polls (0 after any successful answer)."""
        self.connected = False
        """The last poll got an answer from the control plane."""
        self._url = settings.control_plane.rstrip("/") + SNAPSHOT_PATH

    @property
    def version(self) -> int | None:
        return self.state.version if self.state is not None else None

    # -- building ---------------------------------------------------------------------------------

    def _build(self, data: bytes, header_version: str | None) -> EdgeState:
        """Decode, verify and compile (runs in a worker thread)."""
        snapshot = decode_snapshot(data)
        if header_version is not None and header_version != str(snapshot.version):
            raise SnapshotError(
                f"the version header says {header_version} but the snapshot is version {snapshot.version}"
            )
        return EdgeState.from_snapshot(
            snapshot, now=self._clock.now(), previous=self.state, tls_factory=self._factory
        )

    def _install(self, state: EdgeState, *, source: str) -> None:
        old = self.state
        if old is not None and state.version < old.version:
            log.warning(
                "snapshot version went back from %d to %d (%s); applying it",
                old.version,
                state.version,
                source,
            )
        self.state = state
        self._apply(state)
        if self._metrics is not None:
            self._metrics.snapshot_updates += 1
        for problem in state.problems:
            if old is None or problem not in old.problems:
                log.warning("snapshot %d: %s: %s", state.version, problem.subject, problem.message)
        log.info("snapshot version %d applied (%s, %d hostnames)", state.version, source, len(state.hosts))

    async def load_persisted(self) -> bool:
        """Start from the last good snapshot on disk, if there is one that verifies."""
        path = self.settings.snapshot_path
        data = await asyncio.to_thread(read_snapshot_file, path)
        if data is None:
            return False
        try:
            state = await asyncio.to_thread(self._build, data, None)
        except Exception as exc:  # whatever is wrong with the file, the control plane can fix it
            log.error("ignoring the persisted snapshot %s: %s", path, exc)
            if self._metrics is not None:
                self._metrics.snapshot_failure("persisted")
            return False
        self._install(state, source=f"from {path}")
        return True

    # -- polling ----------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        s = self.settings
        return httpx.AsyncClient(
            transport=self._transport,
            headers={"Authorization": f"Bearer {s.token}", "User-Agent": "certgate-edge"},
            # The server may hold the request for `wait` seconds plus the time to build a snapshot.
            timeout=httpx.Timeout(s.poll_wait_seconds + 10, connect=s.sync_connect_timeout),
            trust_env=False,
        )

    async def poll_once(self, client: httpx.AsyncClient, *, wait: float | None = None) -> bool:
        """One request; True when a new state was applied. Raises on failure (see `run`)."""
        wait = self.settings.poll_wait_seconds if wait is None else wait
        params: dict[str, str] = {}
        if self.state is not None:
            params = {"after": str(self.state.version), "wait": f"{wait:g}"}
        response = await client.get(self._url, params=params)
        self.connected = True
        if response.status_code == 304:
            return False
        if response.status_code != 200:
            raise _PollError("status", f"HTTP {response.status_code}: {response.text[:200]}")
        data = response.content
        try:
            state = await asyncio.to_thread(self._build, data, response.headers.get(VERSION_HEADER))
        except (SnapshotError, ValueError) as exc:
            raise _PollError("decode", str(exc)) from exc
        except Exception as exc:  # a bug in the build must not end the sync loop for good
            log.exception("building snapshot state failed")
            raise _PollError("build", f"{type(exc).__name__}: {exc}") from exc
        self._install(state, source="from the control plane")
        if self._persist:
            try:
                await asyncio.to_thread(persist_snapshot, self.settings.snapshot_path, data)
            except OSError as exc:
                # Serving goes on; only a restart without the control plane would notice.
                log.error("could not persist snapshot %d: %s", state.version, exc)
                if self._metrics is not None:
                    self._metrics.snapshot_failure("persist")
        return True

    def backoff(self) -> float:
        """Delay before the next attempt after `failures` consecutive failures (full jitter on half)."""
        s = self.settings
        delay: float = min(
            s.backoff_max_seconds, s.backoff_initial_seconds * 2.0 ** max(0, self.failures - 1)
        )
        return delay * self._rng.uniform(0.5, 1.0)

    async def run(self) -> None:
        """Poll forever (cancel the task to stop)."""
        async with self._client() as client:
            while True:
                try:
                    await self.poll_once(client)
                    self.failures = 0
                    continue
                except _PollError as exc:
                    why, message = exc.why, str(exc)
                except httpx.HTTPError as exc:
                    self.connected = False
                    why, message = "transport", f"{type(exc).__name__}: {exc}"
                self.failures += 1
                if self._metrics is not None:
                    self._metrics.snapshot_failure(why)
                delay = self.backoff()
                # The first failure of a streak is worth a warning; the rest would flood the log.
                level = logging.WARNING if self.failures == 1 else logging.DEBUG
                log.log(level, "snapshot poll failed (%s: %s); retrying in %.1f s", why, message, delay)
                await asyncio.sleep(delay)


class _PollError(Exception):
    def __init__(self, why: str, message: str) -> None:
        super().__init__(message)
        self.why = why
