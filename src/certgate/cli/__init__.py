"""The ``certgate`` command line: ``admin`` works on a data directory; ``api``, ``edge`` and ``up``
run services; resource commands (sites, certs, ...) call the API like an SDK does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from certgate.cli import admin, edge, resources, serve, up
from certgate.cli.resources import CommandParser
from certgate.errors import CertGateError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certgate",
        description="Self-hostable mTLS client-certificate edge with an ESA-compatible control plane.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for module in (up, admin, serve, edge, resources):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except CertGateError as exc:
        print(f"certgate: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
