"""Edge metrics in the Prometheus text format (0.0.4), one registry per worker process.

Counting is plain integer arithmetic on the event loop (a dict increment per request); the text
is rendered only when scraped. Each worker serves its own numbers on ``--metrics-listen`` PORT +
worker index, labelled ``worker="i"``: no shared memory, no locks, and a dead worker's numbers
die with it, as they should. Aggregate in PromQL (``sum without (worker) (...)``).

Label values are bounded: ``host`` is a hostname of the snapshot in force, or ``unknown`` for
anything else a client may put in a Host header (otherwise a scanner could create unbounded
series); ``status`` and ``cert_status`` are small closed sets.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["DURATION_BUCKETS", "EdgeMetrics", "Gauges"]

DURATION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the request-duration histogram."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, object]]) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs)
    return "{" + inner + "}"


@dataclass(slots=True)
class Gauges:
    """Point-in-time values the owner supplies at scrape time."""

    snapshot_version: int = 0
    snapshot_generated_at: float = 0.0
    """Unix seconds the control plane built the snapshot in force (0: none)."""
    snapshot_applied_at: float = 0.0
    open_connections: int = 0
    idle_origin_connections: int = 0
    client_auth_cache_entries: int = 0
    client_auth_cache_hits: int = 0
    client_auth_cache_misses: int = 0
    access_log_written: int = 0
    access_log_dropped: int = 0


@dataclass(slots=True)
class EdgeMetrics:
    """Counters of one worker. Not thread-safe: use from the event loop."""

    worker: int = 0
    requests: dict[tuple[str, int, str], int] = field(default_factory=dict)
    """(host, status, cert_status) → requests."""
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    """(host, outcome) → requests (forward, waf_deny, misdirected, unknown_host, rejected, ...)."""
    monitor_matches: dict[str, int] = field(default_factory=dict)
    origin_errors: dict[str, int] = field(default_factory=dict)
    """Origin error kind (refused, reset, timeout, tls, protocol) → requests."""
    tls_handshakes_started: int = 0
    tls_handshakes_completed: int = 0
    snapshot_updates: int = 0
    snapshot_failures: dict[str, int] = field(default_factory=dict)
    """Why a poll or an update failed (transport, status, decode, build) → count."""
    duration_buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    duration_count: int = 0

    def request(self, host: str, status: int, cert_status: str, outcome: str, duration: float) -> None:
        key = (host, status, cert_status)
        self.requests[key] = self.requests.get(key, 0) + 1
        okey = (host, outcome)
        self.outcomes[okey] = self.outcomes.get(okey, 0) + 1
        self.duration_buckets[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration
        self.duration_count += 1

    def monitor(self, host: str) -> None:
        self.monitor_matches[host] = self.monitor_matches.get(host, 0) + 1

    def origin_error(self, kind: str) -> None:
        self.origin_errors[kind] = self.origin_errors.get(kind, 0) + 1

    def snapshot_failure(self, why: str) -> None:
        self.snapshot_failures[why] = self.snapshot_failures.get(why, 0) + 1

    def render(self, gauges: Gauges, *, now: float) -> bytes:
        """The exposition text of this worker."""
        w = ("worker", self.worker)
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP certgate_edge_{name} {help_text}")
            lines.append(f"# TYPE certgate_edge_{name} {kind}")

        def sample(name: str, value: object, *labels: tuple[str, object]) -> None:
            lines.append(f"certgate_edge_{name}{_labels((w, *labels))} {value}")

        family("requests_total", "counter", "Requests by host, status and client-cert status.")
        for (host, status, cert), n in sorted(self.requests.items()):
            sample("requests_total", n, ("host", host), ("status", status), ("cert_status", cert))
        family("request_outcomes_total", "counter", "Requests by host and edge outcome.")
        for (host, outcome), n in sorted(self.outcomes.items()):
            sample("request_outcomes_total", n, ("host", host), ("outcome", outcome))
        family("monitor_matches_total", "counter", "Requests matched by monitor rules.")
        for host, n in sorted(self.monitor_matches.items()):
            sample("monitor_matches_total", n, ("host", host))
        family(
            "request_duration_seconds",
            "histogram",
            "Time from a complete request head to the end of the response.",
        )
        cumulative = 0
        for bound, n in zip(DURATION_BUCKETS, self.duration_buckets, strict=False):
            cumulative += n
            sample("request_duration_seconds_bucket", cumulative, ("le", bound))
        sample("request_duration_seconds_bucket", self.duration_count, ("le", "+Inf"))
        sample("request_duration_seconds_sum", f"{self.duration_sum:.6f}")
        sample("request_duration_seconds_count", self.duration_count)
        family("origin_errors_total", "counter", "Failed origin exchanges by kind.")
        for kind, n in sorted(self.origin_errors.items()):
            sample("origin_errors_total", n, ("kind", kind))
        family(
            "tls_handshakes_started_total", "counter", "TLS ClientHellos processed (the SNI callback ran)."
        )
        sample("tls_handshakes_started_total", self.tls_handshakes_started)
        family("tls_handshakes_total", "counter", "TLS handshakes completed (connections).")
        sample("tls_handshakes_total", self.tls_handshakes_completed)
        family(
            "tls_handshakes_failed_total",
            "counter",
            "Handshakes started but not completed (failed, timed out or still in progress).",
        )
        sample(
            "tls_handshakes_failed_total", max(0, self.tls_handshakes_started - self.tls_handshakes_completed)
        )
        family("open_connections", "gauge", "Client connections open now.")
        sample("open_connections", gauges.open_connections)
        family("origin_idle_connections", "gauge", "Idle pooled origin connections.")
        sample("origin_idle_connections", gauges.idle_origin_connections)
        family("snapshot_version", "gauge", "Configuration version in force (0: none).")
        sample("snapshot_version", gauges.snapshot_version)
        family(
            "snapshot_age_seconds",
            "gauge",
            "Seconds since the control plane built the snapshot in force (-1: none).",
        )
        age = now - gauges.snapshot_generated_at if gauges.snapshot_generated_at else -1
        sample("snapshot_age_seconds", f"{age:.3f}")
        family(
            "snapshot_applied_timestamp_seconds",
            "gauge",
            "Unix time this worker applied the snapshot in force.",
        )
        sample("snapshot_applied_timestamp_seconds", f"{gauges.snapshot_applied_at:.3f}")
        family("snapshot_updates_total", "counter", "Snapshots applied.")
        sample("snapshot_updates_total", self.snapshot_updates)
        family("snapshot_failures_total", "counter", "Failed snapshot polls or updates by reason.")
        for why, n in sorted(self.snapshot_failures.items()):
            sample("snapshot_failures_total", n, ("reason", why))
        family("client_auth_cache_entries", "gauge", "Cached client-certificate chain verdicts.")
        sample("client_auth_cache_entries", gauges.client_auth_cache_entries)
        family("client_auth_cache_lookups_total", "counter", "Chain-verdict cache lookups.")
        sample("client_auth_cache_lookups_total", gauges.client_auth_cache_hits, ("result", "hit"))
        sample("client_auth_cache_lookups_total", gauges.client_auth_cache_misses, ("result", "miss"))
        family("access_log_lines_total", "counter", "Access-log lines written or dropped.")
        sample("access_log_lines_total", gauges.access_log_written, ("result", "written"))
        sample("access_log_lines_total", gauges.access_log_dropped, ("result", "dropped"))
        return ("\n".join(lines) + "\n").encode()
