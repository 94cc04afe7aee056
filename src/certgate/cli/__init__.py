"""The ``certgate`` command line: ``admin`` works on a data directory; ``api``, ``edge`` and ``up``
run services; resource commands (sites, certs, ...) call the API like an SDK does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from certgate.cli import admin
from certgate.errors import CertGateError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certgate",
        description="Self-hostable mTLS client-certificate edge with an ESA-compatible control plane.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    admin.register(sub)
    for module in _optional_modules():
        module.register(sub)
    return parser


def _optional_modules() -> list[object]:
    """Command groups that live in their own modules (registered when present)."""
    import importlib

    found = []
    for name in ("certgate.cli.serve", "certgate.cli.resources"):
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return found


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
