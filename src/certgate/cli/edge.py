"""``certgate edge``: run the POP (TLS termination, per-request client-certificate checks, rules,
proxy to origins) against a control plane. The edge imports lazily so other commands start fast."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from certgate.errors import InvalidArgument

TOKEN_ENV = "CERTGATE_EDGE_TOKEN"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "edge",
        help="run the edge (POP): mTLS termination, rules and proxy, configured from a control plane",
        description=(
            "Serve TLS on --listen with --workers processes sharing the port, pulling configuration "
            "snapshots from --control-plane. The token is the control plane's DATA_DIR/edge-token "
            f"(`certgate admin edge-token`); prefer --token-file or ${TOKEN_ENV} to --token, which "
            "other local users can read in the process list."
        ),
    )
    p.add_argument("--control-plane", required=True, metavar="URL", help="e.g. http://127.0.0.1:8080")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token", metavar="T", help=f"the edge token (default: ${TOKEN_ENV})")
    token.add_argument("--token-file", metavar="PATH", help="read the edge token from this file")
    p.add_argument(
        "--listen", default="0.0.0.0:8443", metavar="HOST:PORT", help="TLS listener (default 0.0.0.0:8443)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="worker processes sharing the port (default: CPU count)",
    )
    p.add_argument(
        "--state-dir",
        default="certgate-edge",
        metavar="DIR",
        help="where the last good snapshot is kept, mode 0600 (default ./certgate-edge)",
    )
    p.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="Prometheus metrics; worker i serves on PORT+i (default: no metrics listener)",
    )
    p.add_argument(
        "--access-log",
        default="-",
        metavar="PATH|-",
        help="JSON access log: a file, '-' for stdout (default), or 'off'",
    )
    p.add_argument(
        "--origin-insecure",
        action="store_true",
        help="do not verify https origins' certificates (origins on a private network only)",
    )
    p.add_argument(
        "--tls-engine",
        default="auto",
        choices=["auto", "bundled", "stdlib"],
        help="bundled: TLS with the OpenSSL bundled in cryptography (fastest); stdlib: the ssl module "
        "(system OpenSSL) on uvloop; auto (default): bundled when cryptography's binding has what it needs",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=cmd_edge)


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            return Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise InvalidArgument(f"cannot read --token-file: {exc.strerror}", reason="edge.token") from None
    token: str = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise InvalidArgument(f"give --token, --token-file or ${TOKEN_ENV}", reason="edge.token")
    return token


def cmd_edge(args: argparse.Namespace) -> int:
    from certgate.edge.server import run_edge
    from certgate.edge.settings import EdgeSettings
    from certgate.edge.tls import TLSSettings

    settings = EdgeSettings(
        control_plane=args.control_plane,
        token=_token(args),
        listen=args.listen,
        workers=args.workers,
        state_dir=Path(args.state_dir),
        metrics_listen=args.metrics_listen,
        access_log=None if args.access_log == "off" else args.access_log,
        verify_origin_tls=not args.origin_insecure,
        log_level=args.log_level,
        tls=TLSSettings(engine=args.tls_engine),
    )
    return run_edge(settings)
