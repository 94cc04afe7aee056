"""Edge settings: declared once, typed, with their defaults; read only by entry points.

``certgate edge`` builds an `EdgeSettings` from its flags (and ``CERTGATE_EDGE_TOKEN``); ``certgate
up`` and tests build one directly. Everything below is passed down from here; no module of the
edge reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from certgate.edge.proxy import ProxySettings
from certgate.edge.tls import TLSSettings
from certgate.edge.upstream import PoolSettings
from certgate.errors import InvalidArgument

__all__ = ["EdgeSettings", "parse_host_port"]


def parse_host_port(value: str, what: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (all interfaces) → (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InvalidArgument(f"{what} must be HOST:PORT, not {value!r}", reason="edge.listen")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    control_plane: str
    """Base URL of the control plane, e.g. ``http://127.0.0.1:8080`` (``/edge/v1/snapshot`` is added)."""

    token: str = field(repr=False)
    """The installation's edge token (``DATA_DIR/edge-token`` on the control plane)."""

    listen: str = "0.0.0.0:8443"
    """``HOST:PORT`` of the TLS listener. Port 0 picks a free port (tests); every worker shares it."""

    workers: int = 0
    """Worker processes sharing the port with SO_REUSEPORT; 0 means one per CPU. 1 runs in-process."""

    state_dir: Path = Path("certgate-edge")
    """Holds ``snapshot.json``, the last good snapshot (0600: it contains edge private keys)."""

    metrics_listen: str | None = None
    """``HOST:PORT`` for Prometheus metrics; worker *i* serves on PORT + *i*. None: no metrics port."""

    access_log: str | None = "-"
    """``-`` for stdout, a file path (appended), or None for no access log."""

    # --- snapshot sync ---------------------------------------------------------------------------
    poll_wait_seconds: float = 25.0
    """How long each long-poll asks the control plane to hold the request (it caps this at 30 s)."""
    sync_connect_timeout: float = 5.0
    """Connect timeout towards the control plane."""
    backoff_initial_seconds: float = 0.5
    """First retry delay after a failed poll; doubled per failure (with jitter) up to the max."""
    backoff_max_seconds: float = 30.0

    # --- requests and origins ----------------------------------------------------------------------
    origin_connect_timeout: float = 5.0
    """Seconds to open an origin connection (502/504 beyond)."""
    origin_read_timeout: float = 30.0
    """Default wait for the origin's next byte (504 beyond); origin rules may set their own."""
    verify_origin_tls: bool = True
    """Verify https origins' certificates against the system trust store and the origin SNI."""
    fail_closed_on_rule_errors: bool = True
    """A host whose deny or origin rule did not compile answers 503 rather than run without it."""
    unknown_sni: Literal["default", "alert"] = "default"
    """Unknown SNI: serve the placeholder certificate (then 404/421) or fail the handshake."""
    client_auth_cache_size: int = 4096
    """Chain verdicts kept per worker (LRU), keyed by certificate, intermediates and trust set."""

    shutdown_grace_seconds: float = 10.0
    """On SIGTERM/SIGINT: how long in-flight requests may finish before connections are aborted."""
    ssl_handshake_timeout: float = 10.0
    """A client that does not finish its TLS handshake within this is disconnected."""
    ssl_shutdown_timeout: float = 5.0
    """How long a closing TLS connection waits for the client's close_notify before it is dropped."""
    backlog: int = 1024
    """Listen backlog of each worker's socket."""

    proxy: ProxySettings = field(default_factory=ProxySettings)
    pool: PoolSettings = field(default_factory=PoolSettings)
    tls: TLSSettings = field(default_factory=TLSSettings)

    log_level: str = "info"

    def __post_init__(self) -> None:
        if not self.control_plane.startswith(("http://", "https://")):
            raise InvalidArgument(
                f"--control-plane must be an http(s) URL, not {self.control_plane!r}",
                reason="edge.control_plane",
            )
        if not self.token:
            raise InvalidArgument("the edge token must not be empty", reason="edge.token")
        parse_host_port(self.listen)
        if self.metrics_listen is not None:
            parse_host_port(self.metrics_listen, "--metrics-listen")
        if self.workers < 0:
            raise InvalidArgument("--workers must be 0 (one per CPU) or more", reason="edge.workers")
        for name in (
            "poll_wait_seconds",
            "sync_connect_timeout",
            "backoff_initial_seconds",
            "backoff_max_seconds",
            "origin_connect_timeout",
            "origin_read_timeout",
            "ssl_handshake_timeout",
            "ssl_shutdown_timeout",
        ):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"{name} must be positive", reason="edge.settings")
        if self.shutdown_grace_seconds < 0 or self.client_auth_cache_size < 1 or self.backlog < 1:
            raise InvalidArgument(
                "shutdown grace, cache size and backlog out of range", reason="edge.settings"
            )

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_host_port(self.listen)

    @property
    def snapshot_path(self) -> Path:
        return self.state_dir / "snapshot.json"

    def metrics_address(self, worker: int) -> tuple[str, int] | None:
        """Where worker ``worker`` serves metrics (PORT + worker index), or None."""
        if self.metrics_listen is None:
            return None
        host, port = parse_host_port(self.metrics_listen, "--metrics-listen")
        return host, (port + worker if port else 0)
