"""Per-request bookkeeping of one edge worker, around the decision.

For every request the proxy hands over, `RequestLedger` gives it an id, asks the `Decider`, and
when the exchange ends counts it in the metrics and writes its access-log line. It also answers
for requests refused before any decision (400, 408, 431, ...) and renders the edge's own error
pages with the right request id. This runs once or twice per request, so it lives in a module
the production build compiles (`certgate.edge.compiled`); `EdgeWorker` wires it in.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from functools import partial
from typing import Any, Final

from certgate.clock import Clock
from certgate.edge import pages
from certgate.edge.accesslog import AccessLog, encode_entry, rejected_entry
from certgate.edge.decision import Decider, RequestRecord
from certgate.edge.http1 import RequestError, RequestHead
from certgate.edge.metrics import EdgeMetrics
from certgate.edge.proxy import ConnectionInfo, ExchangeResult, Forward, Respond

__all__ = ["RequestLedger"]

log = logging.getLogger("certgate.edge.server")

_ORIGIN_ERRORS: Final = frozenset({"refused", "reset", "timeout", "tls", "protocol"})


class RequestLedger:
    """Request ids, the requests in progress, metrics and access-log lines of one worker.

    Loop-thread only. ``access_log`` is set by the worker when it starts (None: no log).
    """

    def __init__(
        self, decider: Decider, metrics: EdgeMetrics, *, worker_id: int = 0, clock: Clock | None = None
    ) -> None:
        self.decider = decider
        self.metrics = metrics
        self.worker_id = worker_id
        self.access_log: AccessLog | None = None
        self._clock = clock
        self._rid_prefix = secrets.token_hex(4)
        self._rid_counter = itertools.count(1)
        self._rids: dict[int, str] = {}  # id(RequestHead) → request id, while the request runs
        self._active: set[int] = set()  # ids of connections with a request in progress
        self._rejected_rid = ""

    def request_id(self) -> str:
        return f"{self._rid_prefix}{next(self._rid_counter):08x}"

    def decide(self, conn: ConnectionInfo, head: RequestHead) -> Respond | Forward:
        """The proxy's ``decide`` hook: what to do with ``head``; `done` runs when it ends."""
        received_at = time.time()
        rid = f"{self._rid_prefix}{next(self._rid_counter):08x}"  # request_id(), inlined (hot path)
        record = RequestRecord(rid)
        key = id(head)
        self._rids[key] = rid
        self._active.add(conn.id)
        # A partial of the bound method: one frame per completion instead of a closure's two.
        done = partial(self.done, conn, head, record, received_at)
        clock = self._clock
        try:
            return self.decider.decide(
                conn,
                head,
                record,
                now=clock.now() if clock is not None else received_at,
                on_done=done,
            )
        except BaseException:  # the proxy answers 500 and will not call `done`
            del self._rids[key]
            self._active.discard(conn.id)
            raise

    def done(
        self,
        conn: ConnectionInfo,
        head: RequestHead,
        record: RequestRecord,
        received_at: float,
        result: ExchangeResult,
    ) -> None:
        """The exchange of ``head`` ended: count it and write its access-log line."""
        self._rids.pop(id(head), None)
        self._active.discard(conn.id)
        host = record.host if record.known_host else "unknown"
        metrics = self.metrics
        metrics.request(host, result.status, record.auth.cert_status, record.outcome, result.duration)
        if record.monitored:
            metrics.monitor(host)
        if result.error in _ORIGIN_ERRORS:
            metrics.origin_error(result.error)
        if record.error and record.outcome == "rule_error":
            log.error("request %s on %s: %s", record.request_id, record.host, record.error)
        access_log = self.access_log
        if access_log is not None and access_log.enabled:
            access_log.write_line(
                encode_entry(conn, head, record, result, worker=self.worker_id, received_at=received_at)
            )

    def rejected(self, conn: ConnectionInfo, error: RequestError) -> None:
        """The proxy's ``on_rejected`` hook: a request refused before any decision."""
        if conn.id in self._active:
            return  # the body of a decided request went bad: that request's own line reports it
        rid = self._rejected_rid = self.request_id()
        self.metrics.request("unknown", error.status, "none", "rejected", 0.0)
        access_log = self.access_log
        if access_log is not None and access_log.enabled:
            state = self.decider.state
            access_log.write(
                rejected_entry(
                    conn,
                    error,
                    request_id=rid,
                    worker=self.worker_id,
                    received_at=time.time(),
                    snapshot_version=state.version if state is not None else 0,
                )
            )

    def error_page(self, status: int, head: RequestHead | None) -> tuple[Any, bytes]:
        """The proxy's ``error_page`` hook: the edge's own page, with the request's id."""
        if head is None:
            rid, self._rejected_rid = self._rejected_rid or self.request_id(), ""
            return pages.render(status, request_id=rid)
        rid = self._rids.get(id(head)) or self.request_id()
        return pages.render(status, request_id=rid, accept=head.header(b"accept"))
