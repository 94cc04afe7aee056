"""Control-plane settings: declared once, typed, read only by entry points and passed down.

Environment variables (all optional) use the ``CERTGATE_`` prefix; command-line flags win.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from certgate.services.context import Limits


@dataclass(frozen=True, slots=True)
class ControlPlaneSettings:
    data_dir: Path
    """Holds ``certgate.db`` (SQLite), ``master.key`` and ``edge-token``, all private (0600)."""

    database_url: str | None = None
    """``sqlite:///…`` (default: DATA_DIR/certgate.db), ``postgresql://…`` or ``memory://``."""

    master_key_b64: str | None = None
    """The 32-byte master key as base64 or hex (``CERTGATE_MASTER_KEY``) instead of DATA_DIR/master.key."""

    signature_window_seconds: int = 15 * 60
    """Largest accepted difference between ``x-acs-date`` and the server clock (ESA: 15 minutes)."""

    snapshot_poll_max_seconds: float = 30.0
    """Longest an edge's long-poll waits for a newer snapshot before getting 304."""

    limits: Limits = field(default_factory=Limits)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'certgate.db'}"

    @property
    def master_key_path(self) -> Path:
        return self.data_dir / "master.key"

    @property
    def edge_token_path(self) -> Path:
        return self.data_dir / "edge-token"

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None, **overrides: object) -> ControlPlaneSettings:
        env = os.environ
        base = Path(data_dir or env.get("CERTGATE_DATA_DIR") or "certgate-data")
        values: dict[str, object] = {
            "data_dir": base,
            "database_url": env.get("CERTGATE_DATABASE_URL") or None,
            "master_key_b64": env.get("CERTGATE_MASTER_KEY") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
