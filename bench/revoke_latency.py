"""Time from a revoke API call to the first 403 at the edge (issue 5: p99 <= 250 ms).

Run::

    PYTHONPATH=src .venv/bin/python bench/revoke_latency.py [--trials 100] [--workers 1] [--connections 1]

Set-up: a control plane in this process (``create_app`` over SQLite, uvicorn on its own thread,
the real clock) with one account, site ``example.com``, record ``api.example.com`` bound to the
managed CA and the seed rule ``(http.host eq "api.example.com" and not
tls.client_auth.cert_verified)`` → deny; an echo origin; and the edge as ``certgate edge`` in a
child process (``--workers N``), pulling snapshots over the long-poll endpoint exactly as in
production. Every trial uses a fresh managed certificate:

1. open ``--connections`` keep-alive TLS connections with it (with several workers the kernel
   spreads them over the workers) and check each gets 200 (this also warms the verdict cache);
2. ``t0``; call ``RevokeClientCertificate`` (ACS3-signed HTTP, as the SDK does); the call
   returns after the commit;
3. send requests on the open connections, round robin, each as soon as the previous answer
   arrived, until every connection has had its first 403.

Reported per trial: *first 403* (t0 → the first 403 on any connection: what one client sees),
*all connections* (t0 → the last connection's first 403: every worker enforces it), the API call
itself, and the edge's part (API response → first 403). Between trials the script waits until
the edge's metrics show the control plane's version, so trials do not overlap.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import re
import secrets
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import h11
import httpx

from certgate.api.app import create_app
from certgate.api.auth import sign_acs3
from certgate.api.server import BackgroundServer
from certgate.bootstrap import RuleLanguageValidator
from certgate.clock import SystemClock
from certgate.ids import RandomIdFactory
from certgate.services import accounts, ca_certificates, certificates, rules, sites
from certgate.services.context import ServiceContext
from certgate.settings import ControlPlaneSettings
from certgate.storage import open_store
from certgate.storage.keystore import AESGCMSealer

HOST = "api.example.com"
TOKEN = "revoke-bench-" + secrets.token_hex(16)


class _Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        # One write: head and body in separate small segments would meet Nagle's algorithm here
        # and the edge's delayed ACK (~40 ms per request), which is the origin's cost, not the edge's.
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port: int = s.getsockname()[1]
    return port


class Conn:
    """A keep-alive TLS connection speaking HTTP/1.1 through h11."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        self.sock = ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=HOST
        )
        self.h11 = h11.Connection(h11.CLIENT)

    def get(self, path: str) -> int:
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        self.sock.sendall(
            self.h11.send(h11.Request(method="GET", target=path, headers=[("host", HOST)]))
            + self.h11.send(h11.EndOfMessage())
        )
        status = 0
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                return status
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed")

    def close(self) -> None:
        self.sock.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def row(name: str, values_ms: list[float]) -> str:
    p50, p90, p99 = (statistics.median(values_ms), percentile(values_ms, 90), percentile(values_ms, 99))
    return (
        f"| {name} | {len(values_ms)} | {p50:.1f} | {p90:.1f} | {p99:.1f} | "
        f"{max(values_ms):.1f} | {statistics.fmean(values_ms):.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=0, help="per trial (default: 1, or 4 per worker)")
    args = parser.parse_args()
    connections = args.connections or (1 if args.workers == 1 else 4 * args.workers)

    tmp = Path(tempfile.mkdtemp(prefix="certgate-revoke-bench-"))
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    origin.daemon_threads = True
    threading.Thread(target=origin.serve_forever, daemon=True).start()

    url = f"sqlite:///{tmp / 'certgate.db'}"
    store = open_store(url)
    ctx = ServiceContext(
        store=store,
        sealer=AESGCMSealer(secrets.token_bytes(32)),
        clock=SystemClock(),
        ids=RandomIdFactory(),
        expressions=RuleLanguageValidator(),
    )
    api = BackgroundServer(
        create_app(ctx, ControlPlaneSettings(data_dir=tmp, database_url=url), edge_token=TOKEN)
    )
    api.start()
    edge_ca = accounts.ensure_edge_authority(ctx).certificate_pem
    new = accounts.create_account(ctx, "bench")
    account = new.account.id
    site = sites.create_site(
        ctx,
        account,
        name="example.com",
        access_type="NS",
        coverage="global",
        instance_id=new.account.instance_id,
    )
    sites.create_record(
        ctx, account, site.id, name=HOST, rtype="A/AAAA", ttl=1, value="127.0.0.1", proxied=True
    )
    rules.create_origin_rule(
        ctx,
        account,
        site.id,
        rules.OriginRuleInput(
            name="port", expression=f'http.host eq "{HOST}"', origin_http_port=origin.server_address[1]
        ),
    )
    rules.create_waf_rule(
        ctx,
        account,
        site.id,
        phase="http_custom",
        data=rules.WafRuleInput(
            name="mTLS",
            expression=f'(http.host eq "{HOST}" and not tls.client_auth.cert_verified)',
            action="deny",
        ),
    )
    ca_certificates.set_hostnames(ctx, account, site.id, None, [HOST])
    print(f"issuing {args.trials} client certificates ...", file=sys.stderr)
    contexts: list[tuple[str, ssl.SSLContext]] = []
    for i in range(args.trials):
        issued = certificates.issue_client_certificate(
            ctx, account, site.id, validity_days=30, key_type="ECDSA"
        )
        assert issued.private_key_pem is not None
        pem = tmp / f"c{i}.pem"
        pem.write_text(issued.certificate.cert.certificate_pem + issued.private_key_pem)
        client_ctx = ssl.create_default_context(cadata=edge_ca)
        client_ctx.load_cert_chain(pem)
        contexts.append((issued.certificate.id, client_ctx))

    port, metrics = free_port(), free_port()
    while metrics + 1 == port or any(_busy(metrics + i) for i in range(args.workers)):
        metrics = free_port()
    (tmp / "token").write_text(TOKEN)
    edge = subprocess.Popen(
        [
            sys.executable, "-m", "certgate", "edge",
            "--control-plane", api.url,
            "--token-file", str(tmp / "token"),
            "--listen", f"127.0.0.1:{port}",
            "--workers", str(args.workers),
            "--state-dir", str(tmp / "edge"),
            "--metrics-listen", f"127.0.0.1:{metrics}",
            "--access-log", str(tmp / "access.log"),
            "--log-level", "warning",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )  # fmt: skip
    http = httpx.Client(timeout=10)

    def scrape(name: str) -> list[float]:
        """The values of metric ``certgate_edge_<name>`` on every worker."""
        found: list[float] = []
        for i in range(args.workers):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics + i}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return [-1.0]
            pattern = r"^certgate_edge_" + name + r"\{[^}]*\} ([0-9.]+)$"
            found += [float(v) for v in re.findall(pattern, text, re.M)]
        return found

    def edge_versions() -> set[int]:
        return {int(v) for v in scrape("snapshot_version")}

    def wait_synced(deadline_s: float = 20) -> None:
        deadline = time.monotonic() + deadline_s
        while edge_versions() != {store.current_version()}:
            if time.monotonic() > deadline or edge.poll() is not None:
                raise SystemExit("the edge did not catch up with the control plane")
            time.sleep(0.01)

    def revoke(cert_id: str) -> None:
        query = [("Id", cert_id), ("SiteId", str(site.id))]
        headers = sign_acs3(
            method="GET",
            host=api.endpoint,
            action="RevokeClientCertificate",
            query=query,
            body=b"",
            access_key_id=new.access_key_id,
            secret=new.access_key_secret,
            date=dt.datetime.now(dt.UTC),
            nonce=secrets.token_hex(16),
        )
        r = http.get(api.url + "/?" + str(httpx.QueryParams(query)), headers=headers)
        if r.status_code != 200:
            raise SystemExit(f"revoke failed: {r.status_code} {r.text}")

    first: list[float] = []
    everyone: list[float] = []
    api_call: list[float] = []
    edge_part: list[float] = []
    polls: list[int] = []
    applied: list[float] = []
    try:
        wait_synced()
        for trial, (cert_id, client_ctx) in enumerate(contexts):
            conns = [Conn(port, client_ctx) for _ in range(connections)]
            for c in conns:
                assert c.get(f"/warm/{trial}") == 200
            t0_wall = time.time()
            t0 = time.perf_counter()
            revoke(cert_id)
            t_api = time.perf_counter()
            pending = list(range(connections))
            t_first: float | None = None
            n = 0
            while pending:
                for i in list(pending):
                    n += 1
                    if conns[i].get(f"/poll/{trial}") == 403:
                        now = time.perf_counter()
                        t_first = t_first or now
                        pending.remove(i)
                        if not pending:
                            everyone.append((now - t0) * 1000)
            assert t_first is not None
            first.append((t_first - t0) * 1000)
            api_call.append((t_api - t0) * 1000)
            edge_part.append((t_first - t_api) * 1000)
            polls.append(n)
            for c in conns:
                c.close()
            wait_synced()
            # When each worker applied the new snapshot (its wall clock, same machine).
            applied.append((max(scrape("snapshot_applied_timestamp_seconds")) - t0_wall) * 1000)
    finally:
        edge.send_signal(signal.SIGTERM)
        edge.wait(30)
        http.close()
        # The edge's long-poll is cut at shutdown; uvicorn would print that as an error.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        api.stop()
        store.close()
        origin.shutdown()

    load = os.getloadavg()
    print(
        f"\n{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{args.trials} trials, {args.workers} edge worker(s), {connections} connection(s) per trial, "
        f"load average {load[0]:.1f} at the end, {time.strftime('%Y-%m-%d')}\n"
    )
    print("| measure (ms) | trials | p50 | p90 | p99 | max | mean |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row("revoke call → first 403 (any connection)", first))
    if connections > 1:
        print(row("revoke call → 403 on every connection", everyone))
    print(row("revoke API call (until its response)", api_call))
    print(row("API response → first 403", edge_part))
    print(row("revoke call → new snapshot applied (last worker)", applied))
    print(f"\nrequests sent while waiting: median {statistics.median(polls):.0f}, max {max(polls)}")
    print(json.dumps({"first_p99_ms": round(percentile(first, 99), 1)}))


def _busy(port: int) -> bool:
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return True
    return False


if __name__ == "__main__":
    main()
