"""certgate.edge.server: one edge worker on loopback with real TLS clients and a real origin; the
control plane is a scripted snapshot endpoint (httpx.MockTransport), so each test states exactly
what configuration the edge has."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import Client, EchoOrigin, write_client_cert

from certgate.edge import server as server_module
from certgate.edge.accesslog import CERT_FIELDS
from certgate.edge.server import EdgeThread, bind_listener
from certgate.edge.settings import EdgeSettings
from certgate.pki.authority import create_certificate_authority
from certgate.pki.keys import KeyType, private_key_to_pem
from certgate.pki.pem import certificate_to_pem
from certgate.snapshot.format import (
    EdgeTLSCertificate,
    HostPolicy,
    OriginPolicy,
    OriginRuleSpec,
    SitePolicy,
    Snapshot,
    TrustAnchor,
    WafRuleSpec,
    encode_snapshot,
)

NOW = dt.datetime.now(dt.UTC)
EDGE_CA = create_certificate_authority("Test Edge CA", now=NOW - dt.timedelta(days=1))
MANAGED = create_certificate_authority("Test Managed CA", now=NOW - dt.timedelta(days=1))
EDGE_CA_PEM = certificate_to_pem(EDGE_CA.certificate)
HOSTS = ("api.example.com", "www.example.com")


def _edge_cert(name: str) -> EdgeTLSCertificate:
    issued = EDGE_CA.issue_server_certificate([name], now=NOW, validity_days=30)
    assert issued.private_key is not None
    return EdgeTLSCertificate(certificate_to_pem(issued.certificate), private_key_to_pem(issued.private_key))


EDGE_CERTS = {name: _edge_cert(name) for name in HOSTS}


def snapshot(version: int, origin_port: int) -> bytes:
    site = SitePolicy(
        1,
        "acct",
        "example.com",
        waf_rules=(
            WafRuleSpec(
                1, "mtls", '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)', "deny", 1
            ),
        ),
        origin_rules=(
            OriginRuleSpec(2, "port", 'ends_with(http.host, ".example.com")', 1, http_port=origin_port),
        ),
    )
    hosts = {
        "api.example.com": HostPolicy(
            "api.example.com", 1, OriginPolicy("127.0.0.1"), EDGE_CERTS["api.example.com"], ("m",)
        ),
        "www.example.com": HostPolicy(
            "www.example.com", 1, OriginPolicy("127.0.0.1"), EDGE_CERTS["www.example.com"]
        ),
    }
    anchors = {"m": TrustAnchor("m", "managed", certificate_to_pem(MANAGED.certificate))}
    return encode_snapshot(Snapshot(version, int(time.time()), anchors, {1: site}, hosts))


class ControlPlane:
    """Serves the given snapshot once, then holds every long poll (like an idle control plane)."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data
        self.polls = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.polls += 1
        if self.data is not None and "after" not in request.url.params:
            return httpx.Response(200, content=self.data)
        if self.data is None:
            raise httpx.ConnectError("control plane down")
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


@pytest.fixture
def origin() -> Iterator[EchoOrigin]:
    o = EchoOrigin()
    yield o
    o.close()


@pytest.fixture
def client_cert(tmp_path: Path) -> Any:
    issued = MANAGED.issue_client_certificate(
        now=NOW, validity_days=10, key_type=KeyType.ECDSA_P256, common_name="device"
    )
    assert issued.private_key is not None
    return write_client_cert(tmp_path, "device", issued.certificate, private_key_to_pem(issued.private_key))


def edge_settings(tmp_path: Path, **overrides: Any) -> EdgeSettings:
    values: dict[str, Any] = {
        "control_plane": "http://cp.test",
        "token": "t",
        "listen": "127.0.0.1:0",
        "state_dir": tmp_path / "state",
        "access_log": str(tmp_path / "access.log"),
        "shutdown_grace_seconds": 3,
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.1,
    }
    values.update(overrides)
    return EdgeSettings(**values)


def start(tmp_path: Path, origin: EchoOrigin | None, **overrides: Any) -> EdgeThread:
    cp = ControlPlane(snapshot(3, origin.port) if origin is not None else None)
    edge = EdgeThread(edge_settings(tmp_path, **overrides), sync_transport=httpx.MockTransport(cp))
    edge.start()
    if origin is not None:
        assert edge.wait_for_version(3, 5)
    return edge


def log_lines(tmp_path: Path, count: int, timeout: float = 3) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        path = tmp_path / "access.log"
        lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def test_forwards_and_logs_every_client_certificate_field(
    tmp_path: Path, origin: EchoOrigin, client_cert: Any
) -> None:
    edge = start(tmp_path, origin)
    try:
        with Client(edge.port, "api.example.com", EDGE_CA_PEM, cert=client_cert) as c:
            response = c.request("api.example.com", "/hello", [("user-agent", "test/1")])
        assert response.status == 200
        assert response.origin_header("Client-Cert-Status") == ["valid"]
    finally:
        edge.stop()
    (line,) = log_lines(tmp_path, 1)
    for name in CERT_FIELDS:
        assert name in line, name
    assert line["cert_status"] == "valid" and line["cert_serial"] == client_cert.serial_hex
    assert (line["host"], line["uri"], line["status"], line["outcome"]) == (
        "api.example.com",
        "/hello",
        200,
        "forward",
    )
    assert line["user_agent"] == "test/1" and line["snapshot_version"] == 3 and line["worker"] == 0
    assert line["upstream"] == f"http://127.0.0.1:{origin.port}" and line["upstream_response_ms"] > 0


def test_client_certificates_are_read_once_per_connection(
    tmp_path: Path, origin: EchoOrigin, client_cert: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real = server_module.tls.peer_certificates

    def counting(connection: Any) -> Any:
        calls.append(connection)
        return real(connection)

    edge = start(tmp_path, origin)  # (its TLS self-check reads certificates too)
    monkeypatch.setattr(server_module.tls, "peer_certificates", counting)
    try:
        with Client(edge.port, "api.example.com", EDGE_CA_PEM, cert=client_cert) as c:
            for i in range(3):
                assert c.request("api.example.com", f"/r{i}").status == 200
        assert len(calls) == 1
        # ... and the verdict is made once (1 chain build): the connection's later requests reuse it
        # while the state is the same and their time is inside the verdict's window.
        assert edge.call(lambda: (edge.worker.authenticator.hits, edge.worker.authenticator.misses)) == (0, 1)
    finally:
        edge.stop()


def test_no_snapshot_yet_answers_503(tmp_path: Path) -> None:
    edge = start(tmp_path, None)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the placeholder certificate of an unknown name
        with (
            socket.create_connection(("127.0.0.1", edge.port)) as raw,
            ctx.wrap_socket(raw, server_hostname="api.example.com") as s,
        ):
            s.sendall(b"GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 503 ")
        assert edge.call(lambda: edge.worker.sync is not None and edge.worker.sync.failures > 0)
    finally:
        edge.stop()


def test_metrics_listener(tmp_path: Path, origin: EchoOrigin) -> None:
    edge = start(tmp_path, origin, metrics_listen="127.0.0.1:0")
    try:
        with Client(edge.port, "www.example.com", EDGE_CA_PEM) as c:
            assert c.request("www.example.com").status == 200
        assert edge.worker.metrics_address is not None
        base = f"http://127.0.0.1:{edge.worker.metrics_address[1]}"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            text = r.read().decode()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/other", timeout=5)
        assert info.value.code == 404
        info.value.close()
    finally:
        edge.stop()
    assert (
        'certgate_edge_requests_total{worker="0",host="www.example.com",status="200",cert_status="none"} 1'
        in text
    )
    assert 'certgate_edge_snapshot_version{worker="0"} 3' in text
    assert 'certgate_edge_tls_handshakes_total{worker="0"} 1' in text


def test_failed_handshakes_are_counted(tmp_path: Path, origin: EchoOrigin) -> None:
    edge = start(tmp_path, origin)
    try:
        distrustful = ssl.create_default_context()  # does not trust the edge CA: aborts the handshake
        with socket.create_connection(("127.0.0.1", edge.port)) as raw, pytest.raises(ssl.SSLError):
            distrustful.wrap_socket(raw, server_hostname="www.example.com")
        with Client(edge.port, "www.example.com", EDGE_CA_PEM) as c:
            assert c.request("www.example.com").status == 200
        time.sleep(0.1)
        started, completed = edge.call(
            lambda: (edge.worker.metrics.tls_handshakes_started, edge.worker.metrics.tls_handshakes_completed)
        )
        assert (started, completed) == (2, 1)
    finally:
        edge.stop()


def test_unknown_hosts_and_request_ids(tmp_path: Path, origin: EchoOrigin) -> None:
    edge = start(tmp_path, origin)
    try:
        with Client(edge.port, "www.example.com", EDGE_CA_PEM) as c:
            unknown = c.request("nobody.test", "/x", [("accept", "application/json")])
            served = c.request("www.example.com", "/y")
        assert unknown.status == 404 and json.loads(unknown.body)["error"] == "unknown_host"
        assert served.status == 200
    finally:
        edge.stop()
    lines = log_lines(tmp_path, 2)
    assert lines[0]["request_id"] == unknown.headers["x-request-id"] == json.loads(unknown.body)["request_id"]
    assert len({line["request_id"] for line in lines}) == 2


def test_graceful_stop_finishes_in_flight_requests(tmp_path: Path, origin: EchoOrigin) -> None:
    edge = start(tmp_path, origin)
    port = edge.port
    idle = Client(port, "www.example.com", EDGE_CA_PEM)
    assert idle.request("www.example.com", "/idle").status == 200
    busy = Client(port, "www.example.com", EDGE_CA_PEM)
    result: dict[str, Any] = {}

    def slow_request() -> None:
        result["response"] = busy.request("www.example.com", "/delay/0.6/x")

    requester = threading.Thread(target=slow_request)
    requester.start()
    time.sleep(0.2)  # the request is at the origin
    stopper = threading.Thread(target=edge.stop)
    started = time.monotonic()
    stopper.start()
    time.sleep(0.1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert idle.sock.recv(1) == b""  # the idle keep-alive connection was closed
    idle.close()
    requester.join(5)
    busy.close()
    stopper.join(10)
    assert result["response"].status == 200 and result["response"].json()["path"] == "/delay/0.6/x"
    assert result["response"].headers["connection"] == "close"
    assert time.monotonic() - started < 3  # well inside the grace period: nothing was aborted


def test_bind_listener_shares_the_port() -> None:
    first = bind_listener("127.0.0.1", 0)
    first.listen()
    try:
        second = bind_listener("127.0.0.1", first.getsockname()[1])
        second.close()
        with pytest.raises(OSError):
            bind_listener("127.0.0.1", first.getsockname()[1], reuse_port=False).close()
    finally:
        first.close()
