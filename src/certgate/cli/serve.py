"""``certgate api``, ``certgate edge`` and ``certgate up``: the long-running processes."""

from __future__ import annotations

import argparse
from typing import Any

from certgate.settings import ControlPlaneSettings


def register(sub: Any) -> None:
    p = sub.add_parser("api", help="run the control plane (ESA API, console, snapshot endpoint)")
    p.add_argument("--data-dir", help="data directory (default: $CERTGATE_DATA_DIR or ./certgate-data)")
    p.add_argument("--database-url", help="override the database (default: SQLite in the data dir)")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(handler=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    from certgate.api.server import run_api

    settings = ControlPlaneSettings.from_env(args.data_dir, database_url=args.database_url)
    run_api(settings, args.listen, log_level=args.log_level)
    return 0
