"""certgate.edge.sync against a scripted control plane (httpx.MockTransport): the long-poll
protocol of docs/edge-sync.md, verification, the atomic 0600 last-good file, start-up from it,
and retries with backoff."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import threading
from pathlib import Path

import httpx
import pytest

from certgate.clock import FixedClock
from certgate.edge.metrics import EdgeMetrics
from certgate.edge.settings import EdgeSettings
from certgate.edge.state import EdgeState
from certgate.edge.sync import SnapshotSync, persist_snapshot, read_snapshot_file
from certgate.edge.tls import TLSContextFactory
from certgate.pki.authority import create_certificate_authority
from certgate.pki.keys import private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.snapshot.format import (
    EdgeTLSCertificate,
    HostPolicy,
    OriginPolicy,
    SitePolicy,
    Snapshot,
    TrustAnchor,
    encode_snapshot,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
TOKEN = "sync-test-token"
CA = create_certificate_authority("Managed", now=NOW - dt.timedelta(days=1), validity_days=365)
_edge = CA.issue_server_certificate(["api.example.com"], now=NOW, validity_days=30)
assert _edge.private_key is not None
EDGE_CERT = EdgeTLSCertificate(certificate_to_pem(_edge.certificate), private_key_to_pem(_edge.private_key))
FACTORY = TLSContextFactory()


def encoded(version: int, revoked: tuple[str, ...] = ()) -> bytes:
    snapshot = Snapshot(
        version=version,
        generated_at=int(NOW.timestamp()),
        anchors={"m": TrustAnchor("m", "managed", certificate_to_pem(CA.certificate), revoked)},
        sites={1: SitePolicy(1, "acct", "example.com")},
        hosts={
            "api.example.com": HostPolicy("api.example.com", 1, OriginPolicy("127.0.0.1"), EDGE_CERT, ("m",))
        },
    )
    return encode_snapshot(snapshot)


def ok(data: bytes, version: int | None = None) -> httpx.Response:
    v = json.loads(data)["version"] if version is None else version
    return httpx.Response(200, content=data, headers={"X-Certgate-Snapshot-Version": str(v)})


Reply = httpx.Response | Exception


class Script:
    """A fake control plane answering from a list; records every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.exhausted = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.replies:
            self.exhausted.set()
            await asyncio.sleep(3600)  # a long poll that never answers
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def settings(tmp_path: Path, **overrides: object) -> EdgeSettings:
    values: dict[str, object] = {
        "control_plane": "http://cp.test:8080/",
        "token": TOKEN,
        "state_dir": tmp_path,
        "poll_wait_seconds": 7,
        "backoff_initial_seconds": 0.01,
        "backoff_max_seconds": 0.04,
    }
    values.update(overrides)
    return EdgeSettings(**values)  # type: ignore[arg-type]


def make_sync(
    tmp_path: Path, script: Script, applied: list[EdgeState], **kwargs: object
) -> tuple[SnapshotSync, EdgeMetrics]:
    metrics = EdgeMetrics()
    sync = SnapshotSync(
        settings(tmp_path),
        applied.append,
        clock=FixedClock(NOW),
        tls_factory=FACTORY,
        metrics=metrics,
        transport=httpx.MockTransport(script),
        rng=random.Random(1),
        **kwargs,  # type: ignore[arg-type]
    )
    return sync, metrics


async def run_until(sync: SnapshotSync, script: Script) -> None:
    """Run the sync loop until the script is used up (it then waits forever), then cancel it."""
    task = asyncio.create_task(sync.run())
    try:
        async with asyncio.timeout(5):
            await script.exhausted.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_first_poll_takes_the_snapshot_then_long_polls_after_it(tmp_path: Path) -> None:
    data = encoded(5)
    script = Script(ok(data), httpx.Response(304, headers={"X-Certgate-Snapshot-Version": "5"}))
    applied: list[EdgeState] = []
    sync, metrics = make_sync(tmp_path, script, applied)
    await run_until(sync, script)
    assert [s.version for s in applied] == [5] and sync.version == 5
    first, second, third = script.requests
    assert str(first.url) == "http://cp.test:8080/edge/v1/snapshot"
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    for later in (second, third):
        assert later.url.params["after"] == "5" and later.url.params["wait"] == "7"
    assert read_snapshot_file(tmp_path / "snapshot.json") == data
    assert (tmp_path / "snapshot.json").stat().st_mode & 0o777 == 0o600
    assert metrics.snapshot_updates == 1 and sync.failures == 0


async def test_a_snapshot_that_does_not_verify_changes_nothing(tmp_path: Path) -> None:
    good = encoded(1)
    tampered = good.replace(b"127.0.0.1", b"10.66.6.6")  # body no longer matches its digest
    script = Script(ok(good), ok(tampered, 2), ok(encoded(2), 3))  # and a version header that lies
    applied: list[EdgeState] = []
    sync, metrics = make_sync(tmp_path, script, applied)
    await run_until(sync, script)
    assert [s.version for s in applied] == [1]
    assert metrics.snapshot_failures == {"decode": 2}
    assert read_snapshot_file(tmp_path / "snapshot.json") == good


async def test_failures_back_off_and_recover(tmp_path: Path) -> None:
    script = Script(
        httpx.ConnectError("refused"),
        httpx.Response(401, json={"Code": "Unauthorized"}),
        httpx.Response(503),
        ok(encoded(3)),
    )
    applied: list[EdgeState] = []
    sync, metrics = make_sync(tmp_path, script, applied)
    await run_until(sync, script)
    assert [s.version for s in applied] == [3]
    assert metrics.snapshot_failures == {"transport": 1, "status": 2}
    assert sync.failures == 0  # reset by the success


def test_backoff_grows_and_is_capped(tmp_path: Path) -> None:
    sync = SnapshotSync(
        settings(tmp_path, backoff_initial_seconds=0.5, backoff_max_seconds=30),
        lambda s: None,
        clock=FixedClock(NOW),
        tls_factory=FACTORY,
        rng=random.Random(7),
    )
    delays = []
    for failures in range(1, 12):
        sync.failures = failures
        delays.append(sync.backoff())
    for failures, delay in enumerate(delays, start=1):
        ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 30


async def test_an_older_version_from_the_control_plane_is_applied(tmp_path: Path) -> None:
    script = Script(ok(encoded(9)), ok(encoded(4)))
    applied: list[EdgeState] = []
    sync, _ = make_sync(tmp_path, script, applied)
    await run_until(sync, script)
    assert [s.version for s in applied] == [9, 4]


async def test_a_revocation_only_update_reuses_the_previous_state(tmp_path: Path) -> None:
    script = Script(ok(encoded(1)), ok(encoded(2, revoked=("abc",))))
    applied: list[EdgeState] = []
    sync, _ = make_sync(tmp_path, script, applied)
    await run_until(sync, script)
    old, new = applied
    assert new.hosts["api.example.com"].trust is old.hosts["api.example.com"].trust
    assert new.is_revoked("m", 0xABC) and not old.is_revoked("m", 0xABC)


async def test_decoding_and_building_happen_off_the_event_loop(tmp_path: Path) -> None:
    threads: list[threading.Thread] = []

    class Recording(SnapshotSync):
        def _build(self, data: bytes, header_version: str | None) -> EdgeState:
            threads.append(threading.current_thread())
            return super()._build(data, header_version)

    script = Script(ok(encoded(1)))
    applied: list[EdgeState] = []
    sync = Recording(
        settings(tmp_path),
        applied.append,
        clock=FixedClock(NOW),
        tls_factory=FACTORY,
        transport=httpx.MockTransport(script),
    )
    await run_until(sync, script)
    assert threads and threads[0] is not threading.main_thread()
    assert applied[0].version == 1


async def test_start_from_the_persisted_snapshot(tmp_path: Path) -> None:
    persist_snapshot(tmp_path / "snapshot.json", encoded(8))
    script = Script(httpx.ConnectError("control plane down"))
    applied: list[EdgeState] = []
    sync, metrics = make_sync(tmp_path, script, applied)
    assert await sync.load_persisted()
    assert [s.version for s in applied] == [8]
    await run_until(sync, script)
    assert script.requests[0].url.params["after"] == "8"
    assert sync.version == 8 and metrics.snapshot_failures == {"transport": 1}


async def test_a_damaged_persisted_snapshot_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "snapshot.json").write_bytes(encoded(8)[:-20])
    applied: list[EdgeState] = []
    sync, metrics = make_sync(tmp_path, Script(), applied)
    assert not await sync.load_persisted()
    assert applied == [] and metrics.snapshot_failures == {"persisted": 1}


async def test_no_persisted_snapshot(tmp_path: Path) -> None:
    applied: list[EdgeState] = []
    sync, _ = make_sync(tmp_path, Script(), applied)
    assert not await sync.load_persisted()


async def test_persistence_can_be_off(tmp_path: Path) -> None:
    script = Script(ok(encoded(1)))
    applied: list[EdgeState] = []
    sync, _ = make_sync(tmp_path, script, applied, persist=False)
    await run_until(sync, script)
    assert applied and not (tmp_path / "snapshot.json").exists()


def test_persist_is_atomic_private_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "state" / "snapshot.json"
    persist_snapshot(target, b"first")
    persist_snapshot(target, b"second")
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    assert (target.parent.stat().st_mode & 0o777) == 0o700
    assert sorted(p.name for p in target.parent.iterdir()) == ["snapshot.json"]


def test_persist_failure_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "snapshot.json"
    persist_snapshot(target, b"good")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("certgate.edge.sync.os.replace", broken_replace)
    with pytest.raises(OSError):
        persist_snapshot(target, b"new")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot.json"]


async def test_a_bug_while_building_does_not_stop_the_loop(tmp_path: Path) -> None:
    class Flaky(SnapshotSync):
        calls = 0

        def _build(self, data: bytes, header_version: str | None) -> EdgeState:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise TypeError("a bug")
            return super()._build(data, header_version)

    script = Script(ok(encoded(1)), ok(encoded(1)))
    applied: list[EdgeState] = []
    metrics = EdgeMetrics()
    sync = Flaky(
        settings(tmp_path),
        applied.append,
        clock=FixedClock(NOW),
        tls_factory=FACTORY,
        metrics=metrics,
        transport=httpx.MockTransport(script),
    )
    await run_until(sync, script)
    assert [s.version for s in applied] == [1]
    assert metrics.snapshot_failures == {"build": 1}
