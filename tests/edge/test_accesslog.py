"""certgate.edge.accesslog: the JSON line of a request, and the off-loop writer."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from certgate.edge.accesslog import CERT_FIELDS, AccessLog, encode_entry, entry, rejected_entry, utc_iso
from certgate.edge.clientauth import ClientAuth
from certgate.edge.decision import RequestRecord
from certgate.edge.http1 import RequestError, RequestHead, RequestReader
from certgate.edge.proxy import ConnectionInfo, ExchangeResult
from certgate.edge.upstream import OriginTarget
from certgate.rules.edge_scheme import CLIENT_AUTH_PREFIX, EDGE_SCHEME


def _conn() -> ConnectionInfo:
    c = ConnectionInfo(
        id=7, peer_ip="192.0.2.1", peer_port=4000, tls=True, ssl_object=None, sni="a.test", opened_at=0
    )
    c.state["tls_version"] = "TLSv1.3"
    return c


def _head() -> RequestHead:
    (head, *_) = RequestReader().feed(b"GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: ua\r\n\r\n")
    assert isinstance(head, RequestHead)
    return head


def test_utc_iso() -> None:
    assert utc_iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso(1_780_000_000.5) == "2026-05-28T20:26:40.500Z"
    # the same millisecond again, then the same millisecond of the next second and day
    assert utc_iso(1_780_000_000.5004) == "2026-05-28T20:26:40.500Z"
    assert utc_iso(1_780_000_001.5) == "2026-05-28T20:26:41.500Z"
    assert utc_iso(1_780_086_401.5) == "2026-05-29T20:26:41.500Z"
    assert utc_iso(1_780_000_000.999) == "2026-05-28T20:26:40.999Z"


def test_entry_has_every_client_certificate_field() -> None:
    # Every tls.client_auth.* field of the rule scheme is logged under its short name.
    scheme_fields = {
        n.removeprefix(CLIENT_AUTH_PREFIX)
        for n in EDGE_SCHEME.field_types
        if n.startswith(CLIENT_AUTH_PREFIX)
    }
    assert set(CERT_FIELDS) == scheme_fields
    auth = ClientAuth(
        cert_presented=True, cert_status="revoked", cert_revoked=True, cert_serial="0a", cert_not_after=9
    )
    record = RequestRecord(
        request_id="rid",
        host="a.test",
        known_host=True,
        outcome="waf_deny",
        auth=auth,
        rule_id=5,
        rule_action="deny",
        monitored=(4,),
        origin=OriginTarget("http", "10.0.0.1", 8080),
        snapshot_version=12,
    )
    result = ExchangeResult(status=403, bytes_out=10, started=1.0, finished=1.25, upstream_connect=0.001)
    line = entry(_conn(), _head(), record, result, worker=2, received_at=0.0)
    assert line["cert_status"] == "revoked" and line["cert_revoked"] is True and line["cert_serial"] == "0a"
    assert line["cert_not_after"] == 9 and line["cert_verified"] is False
    assert (line["rule_id"], line["rule_action"], line["monitor_rules"]) == (5, "deny", [4])
    assert (line["status"], line["duration_ms"], line["upstream_connect_ms"]) == (403, 250.0, 1.0)
    assert line["upstream"] == "http://10.0.0.1:8080" and line["snapshot_version"] == 12
    assert (line["worker"], line["connection"], line["tls_version"], line["sni"]) == (
        2,
        7,
        "TLSv1.3",
        "a.test",
    )
    assert (line["method"], line["uri"], line["user_agent"]) == ("GET", "/p?q=1", "ua")
    json.dumps(line)  # serialisable as it is


def test_encoded_line_is_the_entry_also_when_the_verdict_changes_on_a_connection() -> None:
    conn = _conn()
    head = _head()
    valid = ClientAuth(
        cert_presented=True, cert_verified=True, cert_status="valid", cert_subject_dn='CN="q"\\é'
    )
    revoked = ClientAuth(cert_presented=True, cert_revoked=True, cert_status="revoked")
    for auth, origin in ((valid, OriginTarget("https", "o.test", 443)), (valid, None), (revoked, None)):
        record = RequestRecord(request_id="r", host="a.test", auth=auth, origin=origin, monitored=(1, 2))
        result = ExchangeResult(status=200, started=1.0, finished=1.5, error="reset")
        line = encode_entry(conn, head, record, result, worker=1, received_at=5.0)
        assert "\n" not in line
        assert json.loads(line) == entry(conn, head, record, result, worker=1, received_at=5.0)


def test_encoded_milliseconds_have_the_values_of_the_entry() -> None:
    # Written with three decimals ("1.500"), they must be the numbers entry() rounds to.
    conn, head = _conn(), _head()
    seconds = [0.0, 1e-9, 0.0004999, 0.0005, 0.0015, 0.0025, 0.1234565, 1 / 3, 2 / 3, 12.3456789, 86400.0001]
    seconds += [k / 2_000_000 for k in range(0, 4000, 7)]
    for i, d in enumerate(seconds):
        record = RequestRecord(request_id="r", host="a.test")
        result = ExchangeResult(
            status=200,
            started=100.0,
            finished=100.0 + d,
            upstream_connect=d / 3 if i % 2 else None,
            upstream_response=d / 7,
        )
        line = json.loads(encode_entry(conn, head, record, result, worker=1, received_at=5.0))
        expected = entry(conn, head, record, result, worker=1, received_at=5.0)
        for key in ("duration_ms", "upstream_connect_ms", "upstream_response_ms"):
            assert line[key] == expected[key], (key, d)


def test_encoded_lines_follow_every_change_between_requests_of_a_connection() -> None:
    # The part a connection usually repeats is kept on the connection: each of its inputs
    # changing from one request to the next must show in that request's line.
    conn = _conn()
    reader = RequestReader()
    raws = [
        b"GET /1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: ua\r\n\r\n",
        b"GET /2 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: ua\r\n\r\n",
        b'GET /3 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: other "one"\r\n\r\n',
        b"POST /4 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: other\r\nContent-Length: 0\r\n\r\n",
        b"GET /5 HTTP/1.1\r\nHost: b.test\r\n\r\n",
        # another field block with the same User-Agent, then only the User-Agent changes
        b"GET /6 HTTP/1.1\r\nHost: b.test\r\nUser-Agent: ua\r\nCookie: a=1\r\n\r\n",
        b"GET /7 HTTP/1.1\r\nHost: b.test\r\nUser-Agent: ua\r\nCookie: a=2\r\n\r\n",
        b"GET /8 HTTP/1.1\r\nHost: b.test\r\nUser-Agent: ub\r\nCookie: a=2\r\n\r\n",
        b"GET /9 HTTP/1.1\r\nHost: b.test\r\nCookie: a=2\r\nUser-Agent: ua\r\n\r\n",
    ]
    heads = [e for raw in raws for e in reader.feed(raw) if isinstance(e, RequestHead)]
    valid = ClientAuth(cert_presented=True, cert_verified=True, cert_status="valid")
    revoked = ClientAuth(cert_presented=True, cert_revoked=True, cert_status="revoked")
    records = [
        RequestRecord("r1", host="a.test", auth=valid, outcome="forward", snapshot_version=1),
        RequestRecord("r2", host="a.test", auth=valid, outcome="forward", snapshot_version=1),
        RequestRecord("r3", host="a.test", auth=revoked, outcome="waf_deny", rule_id=3, rule_action="deny"),
        RequestRecord("r4", host="a.test", auth=revoked, outcome="waf_deny", rule_id=3, monitored=(1,)),
        RequestRecord("r5", host="b.test", outcome="forward", origin=OriginTarget("http", "o", 80)),
        *(
            RequestRecord(f"r{i}", host="b.test", outcome="forward", origin=OriginTarget("http", "o", 80))
            for i in range(6, 10)
        ),
    ]
    lines = []
    for i, (head, record) in enumerate(zip(heads, records, strict=True)):
        result = ExchangeResult(status=200 + i, bytes_in=i, started=1.0, finished=1.0 + i / 7)
        line = encode_entry(conn, head, record, result, worker=1, received_at=5.0 + i)
        assert json.loads(line) == entry(conn, head, record, result, worker=1, received_at=5.0 + i)
        lines.append(json.loads(line))
    agents = ["ua", "ua", 'other "one"', "other", "", "ua", "ua", "ub", "ua"]
    assert [x["user_agent"] for x in lines] == agents
    assert [x["cert_status"] for x in lines] == ["valid", "valid", "revoked", "revoked"] + ["none"] * 5


def test_rejected_entry() -> None:
    line = rejected_entry(
        _conn(),
        RequestError(431, "http.head_too_large"),
        request_id="r",
        worker=0,
        received_at=0,
        snapshot_version=3,
    )
    assert (line["status"], line["outcome"], line["error"], line["snapshot_version"]) == (
        431,
        "rejected",
        "http.head_too_large",
        3,
    )


async def test_lines_are_batched_and_written_in_order(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), batch_lines=3, flush_interval=0.01)
    for i in range(7):
        log.write({"n": i, "text": 'é\n"x"'})
    await asyncio.sleep(0.05)  # the timer flushes the last partial batch
    log.close()
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [x["n"] for x in lines] == list(range(7))
    assert lines[0]["text"] == 'é\n"x"'
    assert (log.written, log.dropped) == (7, 0)
    assert oct(path.stat().st_mode & 0o777) == oct(0o640 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


async def test_a_stalled_destination_drops_lines_instead_of_growing(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()  # nobody reads: the writer thread blocks once the pipe is full
    os.set_blocking(write_end, True)
    log = AccessLog(write_end, batch_lines=1, max_pending_bytes=200_000)
    try:
        for i in range(5000):
            log.write({"n": i, "pad": "x" * 100})
        assert log.dropped > 0
        assert log.written + log.dropped == 5000
    finally:
        os.close(read_end)  # the blocked write fails with EPIPE; the thread goes on
        log.close(timeout=5)
        os.close(write_end)
    assert log.write_errors >= 1


def test_disabled_log_writes_nothing() -> None:
    log = AccessLog(None)
    assert not log.enabled
    log.write({"n": 1})
    log.close()
    assert log.written == 0
