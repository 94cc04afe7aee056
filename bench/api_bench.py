"""Control-plane API throughput and latency over HTTP, with signature verification, on SQLite.

Run::

    PYTHONPATH=src .venv/bin/python bench/api_bench.py [--requests 400] [--rows 100000] [--clients 1,8]

The server is ``certgate.api.server.run_api`` in its own process (uvicorn, uvloop, httptools,
as ``certgate api`` runs it) over a SQLite file prepared by this script. Clients are threads of
this process, each with its own keep-alive ``httpx`` connection, signing every request with
ACS3-HMAC-SHA256 (``certgate.api.auth.sign_acs3``, the SDK's algorithm) and a fresh nonce, so
every call pays the whole server path: read, signature check, nonce claim (a write), action,
JSON. Latency is measured by the client per request; calls/s is requests completed over the
wall time of the run; server CPU is the server process's user+system time per request (from
/proc, so it stays meaningful on a busy machine).

Cases:

- ``CreateClientCertificate`` (server-made ECDSA P-256 key; issuance, one write transaction);
- ``ListClientCertificates`` page 1 (20 per page) of a site with a few hundred certificates;
- ``ListClientCertificates`` of a site with ``--rows`` certificates (inserted directly through
  the store, one transaction), first, middle and last pages, 20 and 100 per page: must stay
  paged with p99 <= 50 ms.

Prints markdown tables (copied into bench/API.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from certgate.api.auth import sign_acs3
from certgate.bootstrap import initialize
from certgate.clock import SystemClock
from certgate.ids import AccountId, CertificateId, SiteId
from certgate.services import accounts, certificates, sites
from certgate.services.context import ServiceContext
from certgate.settings import ControlPlaneSettings

P99_LIMIT_MS = 50.0
SRC = Path(__file__).resolve().parents[1] / "src"


@dataclasses.dataclass
class Tenant:
    key_id: str
    secret: str
    site_id: int


class ServerProcess:
    """``run_api`` in a child process, with its CPU time read from /proc."""

    def __init__(self, settings: ControlPlaneSettings) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.endpoint}"
        code = (
            "from pathlib import Path; from certgate.api.server import run_api; "
            "from certgate.settings import ControlPlaneSettings; "
            f"run_api(ControlPlaneSettings(data_dir=Path({str(settings.data_dir)!r})), {self.endpoint!r}, "
            "log_level='warning')"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen([sys.executable, "-c", code], env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the API server did not start") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


@dataclasses.dataclass
class Result:
    name: str
    clients: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    server_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def call(
    http: httpx.Client,
    server: ServerProcess,
    tenant: Tenant,
    action: str,
    method: str,
    query: list[tuple[str, str]],
    form: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    body = str(httpx.QueryParams(form)).encode() if form else b""
    headers = sign_acs3(
        method=method, host=server.endpoint, action=action, query=query, body=body,
        access_key_id=tenant.key_id, secret=tenant.secret, date=SystemClock().now(),
        nonce=secrets.token_hex(16), content_type="application/x-www-form-urlencoded" if form else None,
    )  # fmt: skip
    url = server.url + "/?" + str(httpx.QueryParams(query))
    return http.request(method, url, headers=headers, content=body)


def run(
    server: ServerProcess,
    name: str,
    clients: int,
    requests: int,
    one: Callable[[httpx.Client], httpx.Response],
) -> Result:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))
    start_gate = threading.Barrier(clients + 1)

    def worker() -> None:
        nonlocal errors
        with httpx.Client(timeout=60) as http:
            one(http)  # open the connection
            start_gate.wait()
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                response = one(http)
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(elapsed)
                    errors += response.status_code != 200

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    cpu0, t0 = server.cpu_seconds(), time.perf_counter()
    for thread in threads:
        thread.join()
    seconds, cpu = time.perf_counter() - t0, server.cpu_seconds() - cpu0
    return Result(name, clients, requests, seconds, latencies, errors, cpu)


def bulk_certificates(ctx: ServiceContext, account_id: AccountId, site_id: SiteId, rows: int) -> float:
    """``rows`` certificates in the site, added through the store in one transaction. They share
    one real certificate's facts (the list only reads rows) with distinct ids and times."""
    issued = certificates.issue_client_certificate(
        ctx, account_id, site_id, validity_days=365, key_type="ECDSA"
    ).certificate
    base = issued.created_at - dt.timedelta(days=400)
    t0 = time.perf_counter()
    with ctx.store.transaction() as tx:
        for n in range(rows - 1):
            created = base + dt.timedelta(seconds=n)
            tx.add_client_certificate(
                dataclasses.replace(
                    issued,
                    id=CertificateId(f"{n:032x}"),
                    cert=dataclasses.replace(issued.cert, serial_hex=f"{n + 1:x}"),
                    created_at=created,
                    updated_at=created,
                )
            )
    return time.perf_counter() - t0


def table(results: list[Result]) -> str:
    lines = [
        "| case | clients | requests | calls/s | p50 ms | p99 ms | max ms | server CPU ms/call | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.clients} | {r.requests} | {r.rate:,.0f} | {r.pct(50):.1f} | {r.pct(99):.1f} | "
            f"{max(r.latencies_ms):.1f} | {r.server_cpu_s / r.requests * 1000:.2f} | {r.errors} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="requests per case")
    parser.add_argument("--rows", type=int, default=100_000, help="certificates in the big site")
    parser.add_argument("--clients", default="1,8", help="comma-separated client thread counts")
    args = parser.parse_args()
    client_counts = [int(c) for c in args.clients.split(",")]

    settings = ControlPlaneSettings(data_dir=Path(tempfile.mkdtemp(prefix="certgate-api-bench-")))
    ctx = initialize(settings)
    try:
        new = accounts.create_account(ctx, "bench")
        small = sites.create_site(ctx, new.account.id, name="small.example", access_type="NS",
                                  coverage="global", instance_id=new.account.instance_id)  # fmt: skip
        big = sites.create_site(ctx, new.account.id, name="big.example", access_type="NS", coverage="global",
                                instance_id=new.account.instance_id)  # fmt: skip
        load_seconds = bulk_certificates(ctx, new.account.id, big.id, args.rows)
    finally:
        ctx.store.close()
    small_t = Tenant(new.access_key_id, new.access_key_secret, small.id)
    big_t = Tenant(new.access_key_id, new.access_key_secret, big.id)

    results: list[Result] = []
    server = ServerProcess(settings)
    try:

        def create(http: httpx.Client) -> httpx.Response:
            return call(http, server, small_t, "CreateClientCertificate", "POST", [("SiteId", str(small.id))],
                        [("PkeyType", "ECDSA"), ("ValidityDays", "365")])  # fmt: skip

        def list_page(tenant: Tenant, number: int, size: int) -> Callable[[httpx.Client], httpx.Response]:
            query = [("SiteId", str(tenant.site_id)), ("PageNumber", str(number)), ("PageSize", str(size))]
            return lambda http: call(http, server, tenant, "ListClientCertificates", "GET", query)

        for clients in client_counts:
            results.append(run(server, "CreateClientCertificate (ECDSA key)", clients, args.requests, create))
        for clients in client_counts:
            name = "ListClientCertificates, 20/page (site of ~1k)"
            results.append(run(server, name, clients, args.requests, list_page(small_t, 1, 20)))
        pages_20, pages_100 = args.rows // 20, args.rows // 100
        big_cases = [
            (f"List of {args.rows:,}: page 1 of {pages_20:,} (20/page)", 1, 20),
            (f"List of {args.rows:,}: page {pages_20 // 2:,} (20/page)", pages_20 // 2, 20),
            (f"List of {args.rows:,}: page {pages_20:,} (20/page)", pages_20, 20),
            (f"List of {args.rows:,}: page {pages_100 // 2:,} (100/page)", pages_100 // 2, 100),
        ]
        for name, number, size in big_cases:
            for clients in client_counts:
                results.append(run(server, name, clients, args.requests, list_page(big_t, number, size)))
        with httpx.Client() as http:
            query = [("SiteId", str(big.id)), ("PageNumber", "2"), ("PageSize", "100")]
            check = call(http, server, big_t, "ListClientCertificates", "GET", query).json()
        assert check["TotalCount"] == args.rows and len(check["Result"]) == 100, check.get("Code")
    finally:
        server.stop()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"Python {sys.version.split()[0]}, {platform.system()} {platform.release()}")  # fmt: skip
    print(f"store: SQLite (WAL), {args.rows:,} certificates loaded in {load_seconds:.1f} s\n")
    print(table(results))
    big_ok = all(
        r.pct(99) <= P99_LIMIT_MS for r in results if r.name.startswith("List of") and r.clients == 1
    )
    print(f"\nList on {args.rows:,} certificates, one client, p99 <= {P99_LIMIT_MS:.0f} ms: "
          f"{'yes' if big_ok else 'NO'}")  # fmt: skip
    return 0 if big_ok and not any(r.errors for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
