"""The composition root's building blocks: the only place adapters are wired to services.

``initialize`` prepares a data directory (idempotent); ``open_context`` gives the services
everything they need. Entry points (``__main__``, the API app, tests) call these two.
"""

from __future__ import annotations

import os
from pathlib import Path

from certgate import rules
from certgate.clock import Clock, SystemClock
from certgate.errors import InvalidArgument
from certgate.ids import IdFactory, RandomIdFactory
from certgate.services.accounts import ensure_edge_authority
from certgate.services.context import ServiceContext
from certgate.settings import ControlPlaneSettings
from certgate.storage import open_store
from certgate.storage.keystore import AESGCMSealer, load_or_create_master_key, master_key_from_env


class RuleLanguageValidator:
    """Fills the services' ExpressionValidator port with certgate.rules."""

    def __init__(self, settings: rules.ParserSettings | None = None) -> None:
        self._settings = settings or rules.ParserSettings()

    def validate(self, expression: str) -> None:
        try:
            rules.validate(expression, rules.EDGE_SCHEME, settings=self._settings)
        except rules.RuleParseError as exc:
            raise InvalidArgument(
                f"invalid expression at line {exc.line}, column {exc.column}: {exc.message}",
                reason="rule.parse_error",
                line=exc.line,
                column=exc.column,
                length=exc.length,
                kind=exc.kind,
                rendered=str(exc),
            ) from None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_edge_token(settings: ControlPlaneSettings) -> str:
    path = settings.edge_token_path
    if not path.exists():
        # Alphanumeric (never a leading "-"): `certgate edge --token "$(cat ...)"` must parse.
        _write_private(path, RandomIdFactory().token(32).encode())
    return path.read_text().strip()


def _master_key(settings: ControlPlaneSettings) -> bytes:
    if settings.master_key_b64:
        return master_key_from_env(settings.master_key_b64)
    return load_or_create_master_key(settings.master_key_path)


def open_context(
    settings: ControlPlaneSettings, *, clock: Clock | None = None, ids: IdFactory | None = None
) -> ServiceContext:
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return ServiceContext(
        store=open_store(settings.resolved_database_url),
        sealer=AESGCMSealer(_master_key(settings)),
        clock=clock or SystemClock(),
        ids=ids or RandomIdFactory(),
        expressions=RuleLanguageValidator(),
        limits=settings.limits,
    )


def initialize(settings: ControlPlaneSettings, *, clock: Clock | None = None) -> ServiceContext:
    """Create (or reuse) the data directory, master key, database, edge CA and edge token."""
    ctx = open_context(settings, clock=clock)
    ensure_edge_authority(ctx)
    ensure_edge_token(settings)
    return ctx
