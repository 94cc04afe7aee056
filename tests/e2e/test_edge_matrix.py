"""The edge end to end: real control plane, real edge, real origins, real TLS clients (issue 5).

The matrix: every kind of client certificate on TLS 1.2 and TLS 1.3, against ``api.example.com``
(bound to the managed CA and a custom CA, with the seed rule
``(http.host eq "api.example.com" and not tls.client_auth.cert_verified)`` → deny) and against
``mgd.example.com`` (bound to the managed CA only, with a monitor rule and no deny rule, so the
origin shows what it is told about a certificate that is not trusted there). For each case:
the HTTP status, the ``cert_status`` (from ``Client-Cert-Status`` as the origin saw it, and from
the access log for blocked requests) and what the origin received (or that it received nothing).
"""

from __future__ import annotations

import base64
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from tests.e2e.conftest import EDGE_TOKEN, Client, World, build_world, free_ports, iter_lines

from certgate.services import ca_certificates

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3
VERSIONS = {"tls1.2": TLS12, "tls1.3": TLS13}
DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("edge-e2e"))
    try:
        w.start_edge()
        w.sync_edge()
        yield w
    finally:
        w.close()


def b64(der: bytes) -> str:
    return ":" + base64.b64encode(der).decode() + ":"


# (case, host, certificate, expected HTTP status, expected cert_status)
MATRIX = [
    ("no certificate", "api", None, 403, "none"),
    ("valid managed", "api", "valid", 200, "valid"),
    ("valid custom CA with intermediate", "api", "custom", 200, "valid"),
    ("untrusted", "api", "untrusted", 403, "untrusted"),
    ("expired", "api", "expired", 403, "expired"),
    ("not yet valid", "api", "not_yet_valid", 403, "not_yet_valid"),
    ("revoked", "api", "revoked", 403, "revoked"),
    ("wrong EKU", "api", "wrong_eku", 403, "untrusted"),
    ("custom CA cert on a managed-only hostname", "mgd", "custom", 200, "untrusted"),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("case", "label", "cert", "status", "cert_status"), MATRIX, ids=[m[0] for m in MATRIX]
)
def test_matrix(
    world: World, version: str, case: str, label: str, cert: str | None, status: int, cert_status: str
) -> None:
    host = f"{label}.example.com"
    path = f"/matrix/{case.replace(' ', '-')}/{version}"
    with world.client(host, cert=cert, version=VERSIONS[version]) as c:
        tls_version = c.version
        response = c.request(host, path)
    assert tls_version == {"tls1.2": "TLSv1.2", "tls1.3": "TLSv1.3"}[version]
    assert response.status == status, response.body[:300]
    logged = world.log_entry(path)
    assert logged["status"] == status
    assert logged["cert_status"] == cert_status
    assert logged["cert_presented"] is (cert is not None)
    assert logged["cert_verified"] is (cert_status == "valid")
    assert logged["cert_revoked"] is (cert_status == "revoked")
    assert logged["tls_version"] == tls_version
    if status == 403:
        assert path not in world.echo.paths(), "a blocked request reached the origin"
        assert logged["rule_id"] == world.rule_ids["seed"] and logged["rule_action"] == "deny"
        assert response.headers["x-request-id"] == logged["request_id"]
        assert logged["request_id"].encode() in response.body
        return
    seen = response.json()
    assert seen["path"] == path
    assert response.origin_header("Client-Cert-Status") == [cert_status]
    assert cert is not None
    client_cert = world.certs[cert]
    assert response.origin_header("Client-Cert") == [b64(client_cert.leaf.public_bytes(DER))]
    chain = [b64(c.public_bytes(DER)) for c in client_cert.intermediates]
    assert response.origin_header("Client-Cert-Chain") == ([", ".join(chain)] if chain else [])
    assert response.origin_header("X-Forwarded-For") == ["127.0.0.1"]
    assert response.origin_header("X-Forwarded-Proto") == ["https"]
    assert logged["cert_serial"] == client_cert.serial_hex
    assert logged["cert_fingerprint_sha256"] and logged["cert_subject_dn"] and logged["cert_not_after"] > 0
    if label == "mgd":
        assert (logged["rule_id"], logged["rule_action"]) == (world.rule_ids["monitor"], "monitor")
        assert logged["monitor_rules"] == [world.rule_ids["monitor"]]


# --- configuration changes reach open connections ------------------------------------------------


def test_revocation_through_the_api_hits_an_open_keepalive_connection(world: World) -> None:
    cert = world.certs["keepalive"]
    with world.client("api.example.com", cert="keepalive") as c:
        first = c.request("api.example.com", "/keepalive/1")
        assert first.status == 200 and first.origin_header("Client-Cert-Status") == ["valid"]
        world.revoke(cert)
        world.sync_edge()
        second = c.request("api.example.com", "/keepalive/2")
        assert second.status == 403
    assert world.log_entry("/keepalive/1")["connection"] == world.log_entry("/keepalive/2")["connection"]
    assert world.log_entry("/keepalive/2")["cert_status"] == "revoked"
    assert "/keepalive/2" not in world.echo.paths()


def test_a_new_binding_turns_mtls_on_without_restart(world: World) -> None:
    before = world.get("late.example.com", path="/late/before", cert="valid")
    assert before.status == 200
    # Not an mTLS hostname: no certificate was even requested.
    assert (
        before.origin_header("Client-Cert-Status") == ["none"] and before.origin_header("Client-Cert") == []
    )
    t = world.tenant
    ca_certificates.set_hostnames(
        world.cp.ctx,
        t.account_id,
        t.site_id,
        None,
        ["api.example.com", "mgd.example.com", "late.example.com"],
    )
    world.sync_edge()
    after = world.get("late.example.com", path="/late/after", cert="valid")
    assert after.status == 200 and after.origin_header("Client-Cert-Status") == ["valid"]
    assert after.origin_header("Client-Cert") == [b64(world.certs["valid"].leaf.public_bytes(DER))]
    untrusted = world.get("late.example.com", path="/late/untrusted", cert="untrusted")
    assert untrusted.origin_header("Client-Cert-Status") == ["untrusted"]


# --- Host/SNI, header spoofing, smuggling ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sni", "host"),
    [
        ("open.example.com", "api.example.com"),  # a plain connection used for an mTLS hostname
        ("api.example.com", "open.example.com"),
        ("mgd.example.com", "api.example.com"),  # two mTLS hostnames with different trust sets
        ("api.example.com", "unknown.test"),
    ],
)
def test_sni_and_host_must_agree_for_mtls_hostnames(world: World, sni: str, host: str) -> None:
    path = f"/misdirected/{sni}/{host}"
    response = world.get(sni, host, path, cert="valid")
    assert response.status == 421
    assert path not in world.echo.paths()
    assert world.log_entry(path)["outcome"] == "misdirected"


def test_unknown_hostname_never_reaches_an_origin(world: World) -> None:
    response = world.get("open.example.com", "nobody.example.net", "/unknown")
    assert response.status == 404
    assert "/unknown" not in world.echo.paths()


def test_client_sent_certificate_headers_never_reach_the_origin(world: World) -> None:
    forged = [
        ("Client-Cert", ":Zm9yZ2Vk:"),
        ("Client-Cert-Chain", ":Zm9yZ2Vk:"),
        ("Client-Cert-Status", "valid"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9"),
    ]
    plain = world.get("open.example.com", path="/forged/plain", headers=forged)
    assert plain.status == 200
    assert plain.origin_header("Client-Cert") == [] and plain.origin_header("Client-Cert-Chain") == []
    assert plain.origin_header("Client-Cert-Status") == ["none"]
    assert plain.origin_header("X-Forwarded-For") == ["127.0.0.1"] and plain.origin_header("Forwarded") == []
    mtls = world.get("api.example.com", path="/forged/mtls", cert="valid", headers=forged)
    assert mtls.status == 200
    assert mtls.origin_header("Client-Cert") == [b64(world.certs["valid"].leaf.public_bytes(DER))]
    assert mtls.origin_header("Client-Cert-Chain") == []
    # A forged status cannot turn an unverified client into a verified one either.
    blocked = world.get("api.example.com", path="/forged/none", headers=forged)
    assert blocked.status == 403


SMUGGLING = {
    "cl-and-te": (
        b"POST /smuggle/cl-te HTTP/1.1\r\nHost: open.example.com\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /smuggle/cl-te-inner HTTP/1.1\r\nHost: open.example.com\r\n\r\n",
        400,
    ),
    "duplicate-cl": (
        b"POST /smuggle/dup-cl HTTP/1.1\r\nHost: open.example.com\r\n"
        b"Content-Length: 5\r\nContent-Length: 39\r\n\r\nhelloGET /smuggle/dup-cl-inner HTTP/1.1\r\n\r\n",
        400,
    ),
    "bad-cl": (
        b"POST /smuggle/bad-cl HTTP/1.1\r\nHost: open.example.com\r\nContent-Length: +5\r\n\r\nhello",
        400,
    ),
    "te-not-chunked": (
        b"POST /smuggle/te HTTP/1.1\r\nHost: open.example.com\r\n"
        b"Transfer-Encoding: chunked, identity\r\n\r\n",
        400,
    ),
    "head-too-large": (
        b"GET /smuggle/large HTTP/1.1\r\nHost: open.example.com\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        431,
    ),
}


@pytest.mark.parametrize("case", SMUGGLING)
def test_smuggling_never_reaches_the_origin(world: World, case: str) -> None:
    data, status = SMUGGLING[case]

    def rejected(lines: list[dict[str, Any]]) -> int:
        return sum(1 for e in lines if e["outcome"] == "rejected" and e["status"] == status)

    before = rejected(world.log())
    with world.client("open.example.com") as c:
        reply = c.raw(data)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    world.wait_log(lambda lines: rejected(lines) == before + 1)
    assert not [p for p in world.echo.paths() if p.startswith("/smuggle/")]


def test_bad_chunk_size_in_a_request_being_forwarded(world: World) -> None:
    # The head was already decided (Forward); the bad chunk arrives in the same TLS record, so the
    # edge drops the origin exchange before anything is written to it.
    rejected_before = sum(1 for e in world.log() if e["outcome"] == "rejected")
    with world.client("open.example.com") as c:
        reply = c.raw(
            b"POST /smuggle/chunk HTTP/1.1\r\nHost: open.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nhello\r\n0\r\n\r\n"
        )
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert "/smuggle/chunk" not in world.echo.paths()
    logged = world.log_entry("/smuggle/chunk")  # one line: the request's own, with the reason
    assert logged["status"] == 400 and logged["error"].startswith("http.")
    assert sum(1 for e in world.log() if e["outcome"] == "rejected") == rejected_before


# --- origins that fail ----------------------------------------------------------------------------


def test_origin_down_is_502(world: World) -> None:
    response = world.get("down.example.com", path="/down")
    assert response.status == 502
    logged = world.log_entry("/down")
    assert logged["error"] == "refused" and response.headers["x-request-id"] == logged["request_id"]


def test_origin_hanging_is_504_while_other_requests_succeed(world: World) -> None:
    result: dict[str, Any] = {}

    def slow() -> None:
        started = time.monotonic()
        result["response"] = world.get("slow.example.com", path="/slow")
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.2)
    for i in range(5):
        started = time.monotonic()
        ok = world.get("open.example.com", path=f"/meanwhile/{i}")
        assert ok.status == 200 and time.monotonic() - started < 0.5
    assert thread.is_alive(), "the hanging origin answered too early for this test to mean anything"
    thread.join(10)
    assert result["response"].status == 504
    assert 0.9 <= result["seconds"] < 3  # the origin rule's OriginReadTimeout is 1 s
    assert world.log_entry("/slow")["error"] == "timeout"


def test_metrics_are_served(world: World) -> None:
    assert world.edge is not None
    text = world.edge.call(world.edge.worker.render_metrics).decode()
    assert (
        'certgate_edge_requests_total{worker="0",host="api.example.com",status="403",cert_status="revoked"}'
        in text
    )
    assert f'certgate_edge_snapshot_version{{worker="0"}} {world.cp.version()}' in text
    assert 'certgate_edge_origin_errors_total{worker="0",kind="refused"}' in text


# --- the control plane goes away -------------------------------------------------------------------


def test_edge_survives_the_control_plane_and_restarts_from_its_persisted_snapshot(tmp_path: Path) -> None:
    w = build_world(tmp_path)
    try:
        w.start_edge()
        version = w.sync_edge()
        snapshot_file = tmp_path / "edge-state" / "snapshot.json"
        deadline = time.monotonic() + 5
        while not snapshot_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert snapshot_file.stat().st_mode & 0o777 == 0o600

        w.cp.stop()
        assert w.get("api.example.com", path="/cp-down/1", cert="valid").status == 200
        assert w.get("api.example.com", path="/cp-down/2").status == 403

        assert w.edge is not None
        w.edge.stop()
        w.edge = None
        w.start_edge()  # the control plane is still down
        assert w.edge is not None and w.edge.worker.state is not None
        assert w.edge.worker.state.version == version
        assert w.get("api.example.com", path="/cp-down/3", cert="valid").status == 200
        assert w.get("api.example.com", path="/cp-down/4").status == 403
        assert w.get("api.example.com", path="/cp-down/5", cert="revoked").status == 403
        assert w.log_entry("/cp-down/3")["snapshot_version"] == version
    finally:
        w.close()


# --- the CLI ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_runs_two_workers_sharing_the_port(world: World, tmp_path: Path) -> None:
    port = free_ports(1)
    metrics = free_ports(2)
    token_file = tmp_path / "token"
    token_file.write_text(EDGE_TOKEN + "\n")
    access_log = tmp_path / "cli-access.log"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "certgate",
            "edge",
            "--control-plane",
            world.cp.server.url,
            "--token-file",
            str(token_file),
            "--listen",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--state-dir",
            str(tmp_path / "state"),
            "--metrics-listen",
            f"127.0.0.1:{metrics}",
            "--access-log",
            str(access_log),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    cli = World(
        tmp=tmp_path,
        cp=world.cp,
        tenant=world.tenant,
        echo=world.echo,
        hanging=world.hanging,
        edge_ca_pem=world.edge_ca_pem,
        certs=world.certs,
        rule_ids=world.rule_ids,
    )
    try:
        deadline = time.monotonic() + 20
        versions_seen: set[int] = set()
        while True:
            try:
                scraped = [
                    urllib.request.urlopen(f"http://127.0.0.1:{metrics + i}/metrics", timeout=2)
                    .read()
                    .decode()
                    for i in (0, 1)
                ]
                versions_seen = {
                    int(line.rsplit(" ", 1)[1])
                    for text in scraped
                    for line in text.splitlines()
                    if line.startswith("certgate_edge_snapshot_version{")
                }
                if versions_seen == {world.cp.version()}:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"workers not ready: {versions_seen}"
            time.sleep(0.1)
        workers: set[int] = set()
        for i in range(40):
            with cli_client(cli, port) as c:
                assert c.request("api.example.com", f"/cli/{i}").status == 200
            workers = {e["worker"] for e in iter_lines(access_log) if e.get("uri", "").startswith("/cli/")}
            if workers == {0, 1}:
                break
        deadline = time.monotonic() + 3
        while workers != {0, 1} and time.monotonic() < deadline:
            time.sleep(0.05)
            workers = {e["worker"] for e in iter_lines(access_log) if e.get("uri", "").startswith("/cli/")}
        assert workers == {0, 1}
        assert (tmp_path / "state" / "snapshot.json").stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0, stderr.decode()[-2000:]


def cli_client(w: World, port: int) -> Client:
    return Client(port, "api.example.com", w.edge_ca_pem, cert=w.certs["valid"])
