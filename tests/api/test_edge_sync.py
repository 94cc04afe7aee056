"""The edge snapshot endpoint (token, ETag, long-poll) and the version watcher behind it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_esa20240910 import models as esa

from certgate.api.edge_sync import VersionWatcher
from certgate.services import certificates
from certgate.snapshot import decode_snapshot

MAX_WAIT = 0.5


@pytest.fixture(scope="module")
def edge_api(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A server whose long-polls last at most MAX_WAIT seconds."""
    build_api = request.getfixturevalue("build_api_factory")
    data_dir: Path = tmp_path_factory.mktemp("edge-sync")
    yield from build_api(
        f"sqlite:///{data_dir / 'certgate.db'}", data_dir, snapshot_poll_max_seconds=MAX_WAIT
    )


def get(api: Any, token: str | None = None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or api.edge_token}"} if token != "" else {}
    return api.http.get(api.server.url + "/edge/v1/snapshot", params=params, headers=headers, timeout=30)


# -- endpoint ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_token_required(edge_api: Any, token: str) -> None:
    response = get(edge_api, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["Code"] == "Unauthorized"


def test_current_snapshot(edge_api: Any) -> None:
    response = get(edge_api)
    assert response.status_code == 200
    version = int(response.headers["x-certgate-snapshot-version"])
    assert version == edge_api.ctx.store.current_version() > 0
    snapshot = decode_snapshot(response.content)
    assert snapshot.version == version
    assert "api.example.com" in snapshot.hosts and "api.other.org" in snapshot.hosts
    etag = response.headers["etag"]
    assert etag.startswith(f'"{version}-')
    again = edge_api.http.get(
        edge_api.server.url + "/edge/v1/snapshot",
        headers={"Authorization": f"Bearer {edge_api.edge_token}", "If-None-Match": etag},
    )
    assert again.status_code == 304 and again.headers["etag"] == etag and again.content == b""


def test_long_poll_times_out_with_304(edge_api: Any) -> None:
    current = edge_api.ctx.store.current_version()
    started = time.monotonic()
    response = get(edge_api, after=current, wait=0.2)
    elapsed = time.monotonic() - started
    assert response.status_code == 304
    assert int(response.headers["x-certgate-snapshot-version"]) == current
    assert 0.2 <= elapsed < 1.0


def test_wait_is_bounded_by_the_server(edge_api: Any) -> None:
    current = edge_api.ctx.store.current_version()
    started = time.monotonic()
    assert get(edge_api, after=current, wait=3600).status_code == 304
    assert time.monotonic() - started < MAX_WAIT + 0.5
    started = time.monotonic()
    assert get(edge_api, after=current).status_code == 304  # no wait: the server's maximum
    assert MAX_WAIT <= time.monotonic() - started < MAX_WAIT + 0.5


def test_older_or_newer_version_answers_at_once(edge_api: Any) -> None:
    current = edge_api.ctx.store.current_version()
    older = get(edge_api, after=current - 1, wait=10)
    assert older.status_code == 200 and int(older.headers["x-certgate-snapshot-version"]) == current
    # An edge that saw a version this database never reached (restored backup) learns at once.
    newer = get(edge_api, after=current + 100, wait=10)
    assert newer.status_code == 200 and int(newer.headers["x-certgate-snapshot-version"]) == current


@pytest.mark.parametrize(
    "params, name",
    [
        ({"after": "x"}, "after"),
        ({"after": "-1"}, "after"),
        ({"after": "1", "wait": "soon"}, "wait"),
        ({"after": "1", "wait": "-2"}, "wait"),
        ({"after": "1", "wait": "nan"}, "wait"),
    ],
)
def test_bad_poll_parameters(edge_api: Any, params: dict[str, str], name: str) -> None:
    response = get(edge_api, **params)
    assert response.status_code == 400 and response.json()["Code"] == f"InvalidParameter.{name}"


def _poll_in_thread(api: Any, after: int, wait: float) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        response = get(api, after=after, wait=wait)
        result["at"] = time.monotonic()
        result["response"] = response

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.15)  # let the request reach the server and wait
    return thread, result


def test_revoke_wakes_a_waiting_edge_at_once(tmp_path_factory: pytest.TempPathFactory, request: Any) -> None:
    """A long poll longer than the test: only the change can end it."""
    build_api = request.getfixturevalue("build_api_factory")
    data_dir = tmp_path_factory.mktemp("edge-sync-wake")
    for api in build_api(f"sqlite:///{data_dir / 'db'}", data_dir, snapshot_poll_max_seconds=30):
        api.alice.client.set_client_ca_certificate_hostnames(  # the managed CA is only shipped when bound
            esa.SetClientCaCertificateHostnamesRequest(
                site_id=api.alice.site_id, hostnames=["api.example.com"]
            )
        )
        cert = api.alice.client.create_client_certificate(
            esa.CreateClientCertificateRequest(site_id=api.alice.site_id, pkey_type="ECDSA", validity_days=5)
        ).body
        current = api.ctx.store.current_version()
        thread, result = _poll_in_thread(api, current, 20)
        assert "response" not in result
        api.alice.client.revoke_client_certificate(
            esa.RevokeClientCertificateRequest(site_id=api.alice.site_id, id=cert.id)
        )
        revoked_at = time.monotonic()
        thread.join(5)
        response = result["response"]
        assert response.status_code == 200
        assert int(response.headers["x-certgate-snapshot-version"]) == current + 1
        assert result["at"] - revoked_at < 0.2, "the revocation should reach the waiting edge at once"
        snapshot = decode_snapshot(response.content)
        managed = [a for a in snapshot.anchors.values() if cert.serial_number in a.revoked_serials]
        assert len(managed) == 1


def test_change_by_another_replica_is_noticed_by_polling(edge_api: Any) -> None:
    cert = edge_api.alice.client.create_client_certificate(
        esa.CreateClientCertificateRequest(site_id=edge_api.alice.site_id, pkey_type="ECDSA", validity_days=5)
    ).body
    current = edge_api.ctx.store.current_version()
    thread, result = _poll_in_thread(edge_api, current, MAX_WAIT)
    # Straight through the services: this process's API never hears of it, like another replica.
    certificates.revoke_client_certificate(
        edge_api.ctx, edge_api.alice.account_id, edge_api.alice.site_id, cert.id
    )
    changed_at = time.monotonic()
    thread.join(5)
    assert result["response"].status_code == 200
    assert result["at"] - changed_at < 0.3


# -- VersionWatcher ------------------------------------------------------------------------------


class FakeStore:
    def __init__(self) -> None:
        self.version = 1
        self.reads = 0
        self.fail = False

    def current_version(self) -> int:
        self.reads += 1
        if self.fail:
            raise OSError("database is down")
        return self.version


async def test_watcher_wakes_on_change() -> None:
    store = FakeStore()
    watcher = VersionWatcher(store.current_version, interval=0.01)
    await watcher.start()
    try:
        assert await watcher.refresh() == 1
        waiter = asyncio.ensure_future(watcher.wait_newer(1, 5))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        store.version = 2
        assert await asyncio.wait_for(waiter, 1) == 2
        assert await watcher.wait_newer(1, 5) == 2  # already newer: at once
    finally:
        await watcher.stop()


async def test_watcher_times_out_with_last_version() -> None:
    store = FakeStore()
    watcher = VersionWatcher(store.current_version, interval=0.01)
    await watcher.start()
    try:
        started = asyncio.get_running_loop().time()
        assert await watcher.wait_newer(1, 0.1) == 1
        assert asyncio.get_running_loop().time() - started >= 0.1
    finally:
        await watcher.stop()


async def test_watcher_is_idle_without_waiters_and_reads_on_notify() -> None:
    store = FakeStore()
    watcher = VersionWatcher(store.current_version, interval=0.01)
    await watcher.start()
    try:
        await asyncio.sleep(0.1)
        assert store.reads == 0  # nobody waits: no polling
        store.version = 5
        watcher.notify()
        for _ in range(100):
            if watcher.version == 5:
                break
            await asyncio.sleep(0.01)
        assert watcher.version == 5 and store.reads >= 1
    finally:
        await watcher.stop()


async def test_watcher_survives_read_failures(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    store.fail = True
    watcher = VersionWatcher(store.current_version, interval=0.01)
    await watcher.start()
    try:
        waiter = asyncio.ensure_future(watcher.wait_newer(1, 5))
        await asyncio.sleep(0.1)
        assert "database is down" in caplog.text
        store.fail = False
        store.version = 3
        assert await asyncio.wait_for(waiter, 2) == 3
    finally:
        await watcher.stop()


def test_watcher_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        VersionWatcher(lambda: 0, interval=0)
