"""``certgate up``: the whole system on one machine, on embedded SQLite.

One process tree: this process serves the control plane (ESA API, console, snapshot endpoint)
on a thread, and starts the edge as a child process (``certgate edge``) that pulls its
configuration from it. ``--demo`` adds an echo origin and a ready demo configuration, and prints
two curl commands: one with the demo client certificate (200) and one without (403).
Ctrl-C (or SIGTERM) stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from certgate.settings import ControlPlaneSettings

EDGE_READY_SECONDS = 30.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "up",
        help="run control plane, console and edge together on embedded SQLite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", default="certgate-data", help="data directory (default ./certgate-data)")
    p.add_argument(
        "--api-listen", default="127.0.0.1:8080", help="control plane HOST:PORT (default 127.0.0.1:8080)"
    )
    p.add_argument(
        "--edge-listen", default="127.0.0.1:8443", help="edge TLS HOST:PORT (default 127.0.0.1:8443)"
    )
    p.add_argument("--workers", type=int, default=1, help="edge worker processes (default 1)")
    p.add_argument("--demo", action="store_true", help="also start a demo origin and demo configuration")
    p.add_argument(
        "--demo-origin-listen", default="127.0.0.1:0", help="demo origin HOST:PORT (default: free port)"
    )
    p.set_defaults(handler=cmd_up)


def _wait_for_port(host: str, port: int, deadline: float, child: subprocess.Popen[bytes]) -> None:
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"certgate: error: the edge exited with status {child.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("certgate: error: the edge did not start listening in time")


def _edge_status(host: str, port: int, ca_file: Path, server_name: str) -> int | None:
    """Status of a certificate-less GET on the edge, or None when it cannot answer yet."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    try:
        with socket.create_connection((host, port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
                head = tls.recv(64)
        return int(head.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return None


def cmd_up(args: argparse.Namespace) -> int:
    from certgate import bootstrap, demo
    from certgate.api.app import create_app
    from certgate.api.server import BackgroundServer, console_routes, parse_listen
    from certgate.services import accounts

    settings = ControlPlaneSettings.from_env(args.data_dir)
    data_dir = settings.data_dir.resolve()
    ctx = bootstrap.initialize(settings)
    token = bootstrap.ensure_edge_token(settings)
    edge_ca = data_dir / "edge-ca.pem"
    edge_ca.write_text(accounts.ensure_edge_authority(ctx).certificate_pem)

    api_host, api_port = parse_listen(args.api_listen)
    edge_host, edge_port = parse_listen(args.edge_listen)
    servers: list[BackgroundServer] = []
    edge: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        app = create_app(ctx, settings, edge_token=token, extra_routes=console_routes(ctx, settings))
        api = BackgroundServer(app, host=api_host, port=api_port)
        api.start()
        servers.append(api)
        files = None
        if args.demo:
            origin_host, origin_port = parse_listen(args.demo_origin_listen)
            origin = BackgroundServer(demo.origin_app, host=origin_host, port=origin_port)
            origin.start()
            servers.append(origin)
            files = demo.set_up_demo(ctx, data_dir / "demo", origin_port=origin.port)
        edge = subprocess.Popen(
            [
                sys.executable, "-m", "certgate", "edge",
                "--control-plane", api.url,
                "--token-file", str(settings.edge_token_path),
                "--listen", args.edge_listen,
                "--workers", str(args.workers),
                "--state-dir", str(data_dir / "edge"),
                "--access-log", str(data_dir / "edge-access.log"),
            ],
            env=dict(os.environ),
        )  # fmt: skip
        deadline = time.monotonic() + EDGE_READY_SECONDS
        _wait_for_port(edge_host if edge_host != "0.0.0.0" else "127.0.0.1", edge_port, deadline, edge)
        if files is not None:  # wait until the edge enforces the demo configuration
            while _edge_status("127.0.0.1", edge_port, edge_ca, demo.DEMO_HOST) != 403:
                if time.monotonic() > deadline or edge.poll() is not None:
                    raise SystemExit("certgate: error: the edge did not load the demo configuration")
                time.sleep(0.2)
        _print_summary(args, data_dir, api.url, edge_ca, edge_port, files)
        while not stop.wait(0.5):
            if edge.poll() is not None:
                print(f"certgate: error: the edge exited with status {edge.returncode}", file=sys.stderr)
                return 1
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if edge is not None and edge.poll() is None:
            edge.send_signal(signal.SIGTERM)
            try:
                edge.wait(15)
            except subprocess.TimeoutExpired:
                edge.kill()
                edge.wait()
        for server in reversed(servers):
            server.stop()
        ctx.store.close()
        print("certgate: stopped", file=sys.stderr)


def _print_summary(
    args: argparse.Namespace, data_dir: Path, api_url: str, edge_ca: Path, edge_port: int, files: Any
) -> None:
    endpoint = api_url.removeprefix("http://")
    lines = [
        f"certgate is up — data in {data_dir}",
        f"  API (ESA OpenAPI 2024-09-10): {api_url}   (SDK: endpoint={endpoint!r}, protocol='http')",
        f"  Console:                      {api_url}/console/",
        f"  Edge (TLS 1.2/1.3):           {args.edge_listen}",
        f"  Edge CA (clients trust it):   {edge_ca}",
        f"  Create an account:            certgate admin create-account --data-dir {data_dir} --name NAME",
    ]
    if files is not None:
        from certgate.demo import DEMO_HOST

        base = (
            f"curl --cacert {edge_ca} --resolve {DEMO_HOST}:{edge_port}:127.0.0.1 "
            f"https://{DEMO_HOST}:{edge_port}/"
        )
        lines += [
            "",
            f"Demo: {DEMO_HOST} requires a client certificate (account and access key: {files.account}).",
            "  With the demo client certificate (200, the origin shows the Client-Cert header it got):",
            f"    {base} --cert {files.certificate} --key {files.private_key}",
            "  Without a certificate (403):",
            f"    {base}",
        ]
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)
