"""Raw speed of the edge's HTTP/1.1 engine (certgate.edge.proxy), no TLS, against nginx.

Keep-alive requests through the proxy to a trivial origin (nginx ``return 200 "ok"``), measured
with wrk on its own core, with an nginx reverse proxy doing the same job as the reference, in
interleaved rounds (this machine's speed drifts, so the per-round ratio is the figure to trust).
Both proxies and the origin share core 0; wrk runs on core 1 (the TECH-NOTES §4 set-up).

    python bench/http1_bench.py                 # full comparison (needs wrk and nginx)
    python bench/http1_bench.py --micro         # per-request CPU cost of the sans-IO parts only
    python bench/http1_bench.py --serve 9444 --origin 127.0.0.1:9000   # just run the proxy
    python bench/http1_bench.py --reference other_proxy.py   # + another proxy, run as
                                                             #   `python other_proxy.py PORT ORIGIN_PORT`

The proxy under test forwards every request with ``client-cert-status: none`` added (the shape
of a real Forward decision) and an ``on_done`` callback, i.e. the per-request work the edge does
minus TLS, verification and rules.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from certgate.edge.headers import client_response_head, origin_request_head, request_drop_set
from certgate.edge.http1 import RequestHead, RequestReader, ResponseHead, ResponseReader
from certgate.edge.proxy import (
    ConnectionInfo,
    Decision,
    ExchangeResult,
    Forward,
    ProxySettings,
    make_protocol_factory,
)
from certgate.edge.upstream import OriginPool, OriginTarget

BROWSER_GET = (
    b"GET /api/v1/items?page=2 HTTP/1.1\r\nHost: a.test\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/120 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Cookie: session=0123456789abcdef; theme=dark\r\nConnection: keep-alive\r\n\r\n"
)
ORIGIN_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 28 Nov 2026 13:49:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
)


# --- micro: the sans-IO parts, per request ---------------------------------------------------------


def micro(n: int = 200_000) -> None:
    drop = request_drop_set()
    extra = [(b"client-cert-status", b"none")]

    def per_call(label: str, fn: object, count: int) -> None:
        assert callable(fn)
        t0 = time.thread_time()  # CPU time: other load on the machine does not count
        fn()
        dt = time.thread_time() - t0
        print(f"| {label} | {dt / count * 1e6:.2f} µs |")

    reader = RequestReader()
    head = reader.feed(BROWSER_GET)[0]
    assert isinstance(head, RequestHead)
    rreader = ResponseReader()
    resp = rreader.feed(ORIGIN_RESPONSE)[0]
    assert isinstance(resp, ResponseHead)

    def parse_requests() -> None:
        r = RequestReader()
        feed = r.feed
        for _ in range(n):
            feed(BROWSER_GET)

    def build_origin_requests() -> None:
        for _ in range(n):
            origin_request_head(
                head,
                host_header=b"a.test",
                forwarded_for=b"127.0.0.1",
                forwarded_proto=b"https",
                extra=extra,
                drop=drop,
            )

    def parse_responses() -> None:
        r = ResponseReader()
        for _ in range(n):
            r.start(head_request=False)
            r.feed(ORIGIN_RESPONSE)

    def build_client_responses() -> None:
        for _ in range(n):
            client_response_head(resp, framing=b"content-length: 2\r\n", connection=b"")

    print(f"| step ({n} iterations, {sys.version.split()[0]}) | per request |")
    print("|---|---|")
    per_call("parse a browser-like GET (8 fields) into events", parse_requests, n)
    per_call("build the origin request head (+ X-Forwarded-*, RFC 9440 field)", build_origin_requests, n)
    per_call("parse a 6-field origin response", parse_responses, n)
    per_call("build the client response head", build_client_responses, n)


# --- the proxy process ----------------------------------------------------------------------------


def serve(port: int, origin: str) -> None:
    import uvloop

    host, oport = origin.rsplit(":", 1)
    target = OriginTarget("http", host, int(oport))
    extra = ((b"client-cert-status", b"none"),)
    done = [0]

    def on_done(result: ExchangeResult) -> None:
        done[0] += 1

    def decide(conn: ConnectionInfo, head: RequestHead) -> Decision:
        return Forward(target, extra, on_done)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        factory = make_protocol_factory(decide, ProxySettings(), OriginPool())
        server = await loop.create_server(factory, "127.0.0.1", port, backlog=4096, reuse_address=True)
        print("listening", port, flush=True)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


# --- the comparison ---------------------------------------------------------------------------------

ORIGIN_CONF = """worker_processes 1; worker_cpu_affinity 01; daemon off; pid {d}/origin.pid;
error_log {d}/origin-error.log warn;
events {{ worker_connections 20000; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ return 200 "ok"; }} }} }}
"""
PROXY_CONF = """worker_processes 1; worker_cpu_affinity 01; daemon off; pid {d}/proxy.pid;
error_log {d}/proxy-error.log warn;
events {{ worker_connections 20000; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 128; }}
  server {{ listen 127.0.0.1:{port} backlog=4096;
    location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto http;
      proxy_set_header Client-Cert-Status none; }} }} }}
"""


def _wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _wrk(port: int, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def lat(q: str) -> float:
        m = re.search(rf"{q}%\s+([\d.]+)(us|ms|s)\b", out)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert m, out
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if non2xx or errors:
        print(
            "  wrk reported problems:", non2xx.group(0) if non2xx else "", errors.group(0) if errors else ""
        )
    return {"rps": float(m.group(1)), "p50": lat("50"), "p99": lat("99")}


def compare(rounds: int, duration: int, connections: int, reference: str | None = None) -> None:
    if not shutil.which("wrk") or not shutil.which("nginx"):
        sys.exit("needs wrk and nginx (apt-get install -y wrk nginx-light)")
    ports = {"origin": 19000, "nginx": 19443, "certgate": 19444}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as d:
        try:
            for name, conf in (("origin", ORIGIN_CONF), ("proxy", PROXY_CONF)):
                path = Path(d) / f"{name}.conf"
                path.write_text(
                    conf.format(
                        d=d, port=ports["origin" if name == "origin" else "nginx"], origin=ports["origin"]
                    )
                )
                procs.append(subprocess.Popen(["nginx", "-c", str(path), "-p", d], stderr=subprocess.DEVNULL))
            procs.append(
                subprocess.Popen(
                    [
                        "taskset",
                        "-c",
                        "0",
                        sys.executable,
                        __file__,
                        "--serve",
                        str(ports["certgate"]),
                        "--origin",
                        f"127.0.0.1:{ports['origin']}",
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
            targets = {
                "origin (direct)": ports["origin"],
                "nginx": ports["nginx"],
                "certgate": ports["certgate"],
            }
            if reference:
                # Another Python proxy for a same-run comparison: REFERENCE PORT ORIGIN_PORT is run.
                targets["reference"] = ports["certgate"] + 1
                procs.append(
                    subprocess.Popen(
                        [
                            "taskset",
                            "-c",
                            "0",
                            sys.executable,
                            reference,
                            str(targets["reference"]),
                            str(ports["origin"]),
                        ]
                    )
                )
            for port in targets.values():
                _wait_port(port)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            _wrk(ports["certgate"], 1, connections)  # warm-up
            _wrk(ports["nginx"], 1, connections)
            for r in range(rounds):
                for name, port in targets.items():
                    res = _wrk(port, duration, connections)
                    results[name].append(res)
                    print(
                        f"round {r} {name}: {res['rps']:.0f} req/s "
                        f"p50 {res['p50']:.2f} ms p99 {res['p99']:.2f} ms",
                        flush=True,
                    )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(5)
    print(
        f"\nkeep-alive, wrk -t1 -c{connections} -d{duration}s on core 1; servers and origin on core 0; "
        f"{rounds} interleaved rounds; Python {sys.version.split()[0]}, uvloop\n"
    )
    print("| target | req/s median (runs) | x nginx (median of per-round ratios) | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        ratios = [x["rps"] / b["rps"] for x, b in zip(runs, results["nginx"], strict=True)]
        rps = statistics.median(x["rps"] for x in runs)
        each = ", ".join(f"{x['rps']:.0f}" for x in runs)
        p50 = statistics.median(x["p50"] for x in runs)
        p99 = statistics.median(x["p99"] for x in runs)
        print(f"| {name} | {rps:,.0f} ({each}) | {statistics.median(ratios):.2f} | {p50:.2f} | {p99:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--micro", action="store_true", help="time the sans-IO parts only")
    ap.add_argument("--serve", type=int, metavar="PORT", help="run the proxy on PORT (uvloop)")
    ap.add_argument("--origin", default="127.0.0.1:19000", help="origin for --serve")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument(
        "--reference", metavar="SCRIPT", help="also measure SCRIPT PORT ORIGIN_PORT (another proxy)"
    )
    args = ap.parse_args()
    if args.micro:
        micro()
    elif args.serve:
        serve(args.serve, args.origin)
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        compare(args.rounds, args.duration, args.connections, args.reference)


if __name__ == "__main__":
    main()
