"""certgate.edge.metrics: counting and the Prometheus text exposition format."""

from __future__ import annotations

import re

from certgate.edge.metrics import DURATION_BUCKETS, EdgeMetrics, Gauges

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def _text(metrics: EdgeMetrics, gauges: Gauges | None = None, now: float = 1000.0) -> str:
    return metrics.render(gauges or Gauges(), now=now).decode()


def test_every_line_is_valid_exposition_format() -> None:
    m = EdgeMetrics(worker=1)
    m.request('we"ird\\host', 200, "valid", "forward", 0.003)
    m.monitor("a.test")
    m.origin_error("timeout")
    m.snapshot_failure("transport")
    for line in _text(m).splitlines():
        if line.startswith("# "):
            assert re.match(r"^# (HELP|TYPE) certgate_edge_[a-z_]+ .+$", line), line
        else:
            assert SAMPLE.match(line), line
    assert 'host="we\\"ird\\\\host"' in _text(m)


def test_requests_by_host_status_and_cert_status() -> None:
    m = EdgeMetrics()
    for _ in range(3):
        m.request("a.test", 403, "revoked", "waf_deny", 0.001)
    m.request("a.test", 200, "valid", "forward", 0.2)
    text = _text(m)
    assert (
        'certgate_edge_requests_total{worker="0",host="a.test",status="403",cert_status="revoked"} 3' in text
    )
    assert 'certgate_edge_requests_total{worker="0",host="a.test",status="200",cert_status="valid"} 1' in text
    assert 'certgate_edge_request_outcomes_total{worker="0",host="a.test",outcome="waf_deny"} 3' in text


def test_duration_histogram_is_cumulative() -> None:
    m = EdgeMetrics()
    for seconds in (0.0005, 0.001, 0.02, 100.0):
        m.request("a.test", 200, "none", "forward", seconds)
    lines = [
        x for x in _text(m).splitlines() if x.startswith("certgate_edge_request_duration_seconds_bucket")
    ]
    counts = [int(x.rsplit(" ", 1)[1]) for x in lines]
    assert len(counts) == len(DURATION_BUCKETS) + 1
    assert counts == sorted(counts) and counts[0] == 2 and counts[-2] == 3 and counts[-1] == 4
    assert 'certgate_edge_request_duration_seconds_count{worker="0"} 4' in _text(m)


def test_handshakes_and_snapshot_gauges() -> None:
    m = EdgeMetrics()
    m.tls_handshakes_started = 5
    m.tls_handshakes_completed = 3
    text = _text(m, Gauges(snapshot_version=7, snapshot_generated_at=990.0, open_connections=2), now=1000.0)
    assert 'certgate_edge_tls_handshakes_failed_total{worker="0"} 2' in text
    assert 'certgate_edge_snapshot_version{worker="0"} 7' in text
    assert 'certgate_edge_snapshot_age_seconds{worker="0"} 10.000' in text
    assert 'certgate_edge_open_connections{worker="0"} 2' in text
    assert 'certgate_edge_snapshot_age_seconds{worker="0"} -1' in _text(EdgeMetrics())


def test_origin_errors_by_kind() -> None:
    m = EdgeMetrics()
    m.origin_error("refused")
    m.origin_error("refused")
    m.origin_error("timeout")
    text = _text(m)
    assert 'certgate_edge_origin_errors_total{worker="0",kind="refused"} 2' in text
    assert 'certgate_edge_origin_errors_total{worker="0",kind="timeout"} 1' in text
