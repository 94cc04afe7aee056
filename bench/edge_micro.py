"""CPU time of one full edge request on the hot path, with fake transports (no sockets, no TLS).

One keep-alive client connection and one pooled origin connection, both with in-memory
transports, inside a running event loop. Each iteration feeds a browser-like GET to the real
`ProxyProtocol` built by a real `EdgeWorker` (request id, `Decider` with the seed WAF rule and
an origin rule, the `ClientAuthenticator` verdict for a valid managed certificate, RFC 9440
headers), then the origin's Content-Length response to the real `OriginConnection`; the proxy
answers the client, and the worker's ``on_done`` counts metrics and encodes the access-log line
(written by the real `AccessLog` thread to /dev/null). CPU time is `time.process_time` (every
thread of this process, the log writer included), so other load on the machine does not count.

    PYTHONPATH=src .venv/bin/python bench/edge_micro.py            # 5 runs of 50,000 requests
    PYTHONPATH=src .venv/bin/python bench/edge_micro.py --profile  # + cProfile of one run
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.append(
    str(Path(__file__).resolve().parents[1] / "src")
)  # after PYTHONPATH: a compiled build given there wins

import uvloop
from cryptography.hazmat.primitives import serialization

from certgate.edge.accesslog import AccessLog
from certgate.edge.decision import PEER_CERTIFICATES
from certgate.edge.proxy import ConnectionInfo, ProxyProtocol, make_protocol_factory
from certgate.edge.server import EdgeWorker
from certgate.edge.settings import EdgeSettings
from certgate.edge.state import EdgeState
from certgate.edge.upstream import OriginConnection
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
)

HOST = "api.example.com"
REQUEST = (
    b"GET /api/v1/items?page=2 HTTP/1.1\r\nHost: api.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/120 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Cookie: session=0123456789abcdef; theme=dark\r\nConnection: keep-alive\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 28 Nov 2026 13:49:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
)
NOW = dt.datetime.now(dt.UTC)


class FakeTransport:
    """Just enough of asyncio.Transport; remembers the last write."""

    def __init__(self, extra: dict[str, Any]) -> None:
        self.extra = extra
        self.last = b""
        self.writes = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.last = data
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        raise AssertionError("closed a connection on the hot path")

    def abort(self) -> None:
        raise AssertionError("aborted a connection on the hot path")


class ClosingTransport(FakeTransport):
    """A client transport that may be closed (one request per connection)."""

    closed = False

    def close(self) -> None:
        self.closed = True


def _snapshot() -> tuple[Snapshot, bytes]:
    managed = create_certificate_authority("Managed", now=NOW - dt.timedelta(days=1))
    edge_ca = create_certificate_authority("Edge", now=NOW - dt.timedelta(days=1))
    server = edge_ca.issue_server_certificate([HOST], now=NOW, validity_days=30)
    assert server.private_key is not None
    edge_cert = EdgeTLSCertificate(
        certificate_to_pem(server.certificate), private_key_to_pem(server.private_key)
    )
    leaf = managed.issue_client_certificate(
        now=NOW - dt.timedelta(hours=1), validity_days=30, key_type=KeyType.ECDSA_P256, common_name="device"
    )
    site = SitePolicy(
        1,
        "acct",
        "example.com",
        waf_rules=(
            WafRuleSpec(
                1, "mtls", f'(http.host eq "{HOST}" and not tls.client_auth.cert_verified)', "deny", 1
            ),
        ),
        origin_rules=(OriginRuleSpec(2, "port", 'ends_with(http.host, ".example.com")', 1, http_port=9000),),
    )
    hosts = {HOST: HostPolicy(HOST, 1, OriginPolicy("127.0.0.1"), edge_cert, ("m",))}
    anchors = {"m": TrustAnchor("m", "managed", certificate_to_pem(managed.certificate))}
    snap = Snapshot(1, int(time.time()), anchors, {1: site}, hosts)
    return snap, leaf.certificate.public_bytes(serialization.Encoding.DER)


async def _run(
    n: int,
    runs: int,
    profile: bool,
    new_connections: bool = False,
    unique_heads: bool = False,
    log_off: bool = False,
) -> list[float]:
    snap, leaf_der = _snapshot()
    with tempfile.TemporaryDirectory() as tmp:
        settings = EdgeSettings(
            control_plane="http://cp.test",
            token="t",
            listen="127.0.0.1:0",
            state_dir=Path(tmp),
            access_log=None,
        )
        worker = EdgeWorker(settings)
        worker.apply(EdgeState.from_snapshot(snap, now=NOW))
        devnull = os.open(os.devnull, os.O_WRONLY)
        worker.access_log = AccessLog(None if log_off else devnull)

        def on_connection(conn: ConnectionInfo) -> None:  # what EdgeWorker does with a TLS session
            worker.metrics.tls_handshakes_completed += 1
            conn.sni = HOST
            # (a new bytes object per connection, as the TLS layer returns)
            conn.state[PEER_CERTIFICATES] = (bytes(bytearray(leaf_der)) if new_connections else leaf_der, ())
            conn.state["tls_version"] = "TLSv1.3"

        factory = make_protocol_factory(
            worker.ledger.decide,
            worker.settings.proxy,
            worker.pool,
            registry=worker.registry,
            error_page=worker.ledger.error_page,
            on_connection=on_connection,
            on_rejected=worker.ledger.rejected,
        )
        proto: ProxyProtocol = factory()
        client = FakeTransport({"peername": ("192.0.2.7", 50000), "ssl_object": object()})
        proto.connection_made(client)  # type: ignore[arg-type]

        # One pooled origin connection, keyed like the target the decision picks.
        assert worker.state is not None
        origin_tr = FakeTransport({"peername": ("127.0.0.1", 9000)})
        key = ("http", "127.0.0.1", 9000, None, True)
        oconn = OriginConnection(worker.pool, key)
        oconn.connection_made(origin_tr)  # type: ignore[arg-type]
        worker.pool._idle[key] = deque([oconn])

        feed_client = proto.data_received
        feed_origin = oconn.data_received

        def batch(count: int) -> None:
            for _ in range(count):
                feed_client(REQUEST)
                feed_origin(RESPONSE)

        # A different Cookie on every request (browser-like): nothing the edge remembers from
        # one head (parsed field block, filtered origin fields) applies to the next one.
        varied = [REQUEST.replace(b"0123456789abcdef", b"%016x" % i) for i in range(max(n, 1000))]

        def batch_unique_heads(count: int) -> None:
            for i in range(count):
                feed_client(varied[i])
                feed_origin(RESPONSE)

        closing_request = REQUEST.replace(b"Connection: keep-alive", b"Connection: close")
        clients = [client]

        def batch_new_connections(count: int) -> None:
            # What one request on its own connection costs in Python (no TLS: the handshake is
            # OpenSSL's): connection_made with the certificate hook, the request with
            # ``Connection: close``, the close, connection_lost.
            for i in range(count):
                conn_proto = factory()
                tr = ClosingTransport({"peername": ("192.0.2.7", 1024 + i % 60000), "ssl_object": object()})
                conn_proto.connection_made(tr)  # type: ignore[arg-type]
                conn_proto.data_received(closing_request)
                feed_origin(RESPONSE)
                assert tr.closed
                conn_proto.connection_lost(None)
                clients[0] = tr

        if new_connections:
            batch = batch_new_connections
        elif unique_heads:
            batch = batch_unique_heads
        batch(1000)  # warm-up (verdict cache, plans, per-connection log fragments)
        client = clients[0]
        assert client.last.startswith(b"HTTP/1.1 200 OK\r\n") and client.last.endswith(b"\r\n\r\nok"), (
            client.last
        )
        assert (
            b"\r\nClient-Cert-Status: valid\r\n" in origin_tr.last and b"\r\nClient-Cert: :" in origin_tr.last
        ), origin_tr.last
        assert worker.pool.opened == 0 and origin_tr.writes == 1000
        assert client.writes == (1 if new_connections else 1000)
        results = []
        for _ in range(runs):
            t0 = time.process_time()
            batch(n)
            worker.access_log.flush()
            results.append((time.process_time() - t0) / n * 1e6)
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            batch(n)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(45)
        worker.access_log.close()
        os.close(devnull)
        forwarded = worker.metrics.outcomes.get((HOST, "forward"), 0)
        assert forwarded == origin_tr.writes, (forwarded, origin_tr.writes)
        return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=50_000, help="requests per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--new-connections",
        action="store_true",
        help="one request per connection (Connection: close), as in handshake mode minus TLS",
    )
    ap.add_argument("--unique-heads", action="store_true", help="a different Cookie value on every request")
    ap.add_argument("--log-off", action="store_true", help="no access log (what the log line costs)")
    args = ap.parse_args()
    results = uvloop.run(
        _run(args.n, args.runs, args.profile, args.new_connections, args.unique_heads, args.log_off)
    )
    each = ", ".join(f"{r:.2f}" for r in results)
    print(
        f"{'new connection + ' if args.new_connections else ''}"
        f"{'unique heads, ' if args.unique_heads else ''}{'no access log, ' if args.log_off else ''}"
        "full request, "
        f"CPU µs per request (Python {sys.version.split()[0]}): "
        f"median {statistics.median(results):.2f}, min {min(results):.2f} ({each})"
    )


if __name__ == "__main__":
    main()
