"""What the edge does with one request: answer it itself, or forward it to which origin.

Sans-IO: (connection facts, request head, the `EdgeState` in force, a client-certificate
authenticator, the time) → `Respond` or `Forward`, plus a `RequestRecord` of what was learned
for the access log and metrics. No socket, no event loop, no clock of its own.

The order of checks, each one a security property:

1. No state yet (the edge has never had a snapshot): 503, never an origin.
2. Host and SNI (both lowercase, no port, no trailing dot): if they differ and *either* names an
   mTLS hostname, 421. A client cannot get a certificate-less connection on one hostname and use
   it for an mTLS one, nor the other way round. A request without Host (HTTP/1.0) uses the SNI.
3. Unknown hostname: 404 page, never an origin.
4. A host whose site has a ``deny`` or origin rule that did not compile: 503 (fail closed, see
   `DecisionSettings.fail_closed_on_rule_errors`). Running without a deny rule would let through
   exactly what it was written to block; running without an origin rule would send traffic to an
   origin the owner moved it away from. A ``monitor`` rule that does not compile only logs.
5. The client-certificate verdict, computed per request from the connection's cached
   certificate bytes (a revocation hits keep-alive connections on their next request).
6. WAF ``http_custom`` rules in position order: the first ``deny`` that matches answers 403
   (HTML, or JSON when ``Accept`` prefers it, with the request id); ``monitor`` matches are
   recorded and evaluation goes on.
7. Origin rules, in sequence order: every matching rule applies and later ones override earlier
   ones field by field (Cloudflare's origin-rule semantics); ``follow`` uses the client's scheme.
8. `Forward` with the RFC 9440 ``Client-Cert``/``Client-Cert-Chain`` and ``Client-Cert-Status``
   (the proxy strips client-sent copies and adds ``X-Forwarded-For``/``-Proto`` itself).

The rule context is lazy: only fields a rule reads are computed, each at most once.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol
from urllib.parse import parse_qs

from certgate.edge.clientauth import NO_CERTIFICATE, ClientAuth, rfc9440_headers
from certgate.edge.http1 import RequestHead
from certgate.edge.pages import render
from certgate.edge.proxy import ConnectionInfo, Forward, OnDone, Respond
from certgate.edge.state import EdgeState, HostState
from certgate.edge.upstream import OriginTarget
from certgate.rules import EDGE_SCHEME, ExecutionContext, Filter, FilterSet, compile_filters
from certgate.rules.edge_scheme import CLIENT_AUTH_PREFIX
from certgate.snapshot.format import OriginRuleSpec, WafRuleSpec

__all__ = [
    "PEER_CERTIFICATES",
    "Authenticator",
    "Decider",
    "DecisionSettings",
    "Outcome",
    "RequestRecord",
    "field_getters",
]

PEER_CERTIFICATES: Final = "peer_certificates"
"""Key in `ConnectionInfo.state`: ``(leaf DER | None, intermediates DER)`` read once per connection."""

_NO_PEER: Final[tuple[bytes | None, tuple[bytes, ...]]] = (None, ())
_AUTH_MEMO: Final = "_auth_memo"
"""Key in `ConnectionInfo.state`: (state, host state, lo, hi, verdict) of the last request."""
_AuthMemo = tuple[EdgeState, HostState, float, float, ClientAuth]

_RFC9440_CACHE: Final[dict[int, tuple[ClientAuth, tuple[tuple[bytes, bytes], ...]]]] = {}


def _rfc9440(auth: ClientAuth) -> tuple[tuple[bytes, bytes], ...]:
    """`rfc9440_headers` as one shared tuple per verdict object (verdicts are long-lived shared
    immutables), so the proxy encodes and checks it once, not on every request."""
    cached = _RFC9440_CACHE.get(id(auth))
    if cached is not None and cached[0] is auth:
        return cached[1]
    headers = tuple(rfc9440_headers(auth))
    if len(_RFC9440_CACHE) >= 1024:
        _RFC9440_CACHE.clear()
    _RFC9440_CACHE[id(auth)] = (auth, headers)  # the entry keeps `auth` alive: its id stays its own
    return headers


Outcome = Literal[
    "forward",  # sent to the origin
    "unknown_host",  # 404
    "misdirected",  # 421
    "waf_deny",  # 403 by a rule
    "rule_error",  # 503 (fail closed) or 500 (a rule raised while running)
    "not_configured",  # 503, no snapshot yet
]


class Authenticator(Protocol):
    """What the decision needs from `clientauth.ClientAuthenticator`."""

    def authenticate(
        self,
        state: EdgeState,
        host: HostState,
        leaf_der: bytes | None,
        intermediates_der: Sequence[bytes] = (),
        *,
        now: dt.datetime,
    ) -> ClientAuth: ...


@dataclass(frozen=True, slots=True)
class DecisionSettings:
    origin_connect_timeout: float = 5.0
    origin_read_timeout: float = 30.0
    """Default for origins without an origin rule's ``read_timeout``."""
    verify_origin_tls: bool = True
    fail_closed_on_rule_errors: bool = True
    """503 for hosts whose deny or origin rule did not compile (see the module docstring)."""


@dataclass(slots=True, eq=False)
class RequestRecord:
    """What the decision learned about one request (filled in by `Decider.decide`)."""

    request_id: str
    host: str = ""
    """The request's hostname (Host without port, lowercase; the SNI when there is no Host)."""
    known_host: bool = False
    """The hostname is served by the snapshot in force (metrics label it; others are "unknown")."""
    outcome: Outcome | Literal[""] = ""
    auth: ClientAuth = NO_CERTIFICATE
    rule_id: int | None = None
    """The deny rule that answered 403, or the rule whose problem failed the host closed."""
    rule_action: str = ""
    monitored: tuple[int, ...] = ()
    """Monitor rules that matched, in order."""
    origin: OriginTarget | None = None
    snapshot_version: int = 0
    error: str = ""
    """Why a rule failed (compile problem or runtime error), for the log."""


# --------------------------------------------------------------------------------------------
# Rule fields


class _RequestView:
    """The values of one request, computed on demand for the lazy rule context (one per
    connection, plan, verdict and hostname: `head` is the request being decided).

    It copies the connection facts it needs rather than holding the `ConnectionInfo`: it is
    kept in the connection's own state, and a reference back would make a cycle that keeps a
    closed connection (and its TLS object) alive until the cyclic garbage collector runs."""

    __slots__ = ("auth", "head", "host", "peer_ip", "tls")

    def __init__(self, conn: ConnectionInfo, head: RequestHead, host: str, auth: ClientAuth) -> None:
        self.peer_ip = conn.peer_ip
        self.tls = conn.tls
        self.head = head
        self.host = host
        self.auth = auth

    def get(self, name: str) -> object:
        getter = _GETTERS.get(name)
        return getter(self) if getter is not None else None


def _text(value: bytes) -> str:
    # Header bytes are opaque octets; latin-1 maps each to one character, so nothing is lost
    # and nothing can fail to decode (rules compare ASCII in practice).
    return value.decode("latin-1")


def _path(v: _RequestView) -> str:
    return _text(v.head.target.partition(b"?")[0])


def _query(v: _RequestView) -> str:
    return _text(v.head.target.partition(b"?")[2])


def _args(v: _RequestView) -> dict[str, list[str]]:
    query = v.head.target.partition(b"?")[2]
    if not query:
        return {}
    return parse_qs(_text(query), keep_blank_values=True, encoding="latin-1")


def _header(name: bytes) -> Callable[[_RequestView], str]:
    def get(v: _RequestView) -> str:
        value = v.head.header(name)
        return _text(value) if value is not None else ""

    return get


def _cookie(v: _RequestView) -> str:
    return "; ".join(_text(value) for n, value in v.head.headers if n == b"cookie")


def _headers(v: _RequestView) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in v.head.headers:
        out.setdefault(_text(name), []).append(_text(value))
    return out


def _ip(v: _RequestView) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # (a connection field: read once per connection, verdict, hostname and plan)
    try:
        return ipaddress.ip_address(v.peer_ip.partition("%")[0])
    except ValueError:
        return None  # a Unix socket or something stranger: missing, every comparison false


def _full_uri(v: _RequestView) -> str:
    return ("https://" if v.tls else "http://") + v.host + _text(v.head.target)


def _client_auth(attribute: str) -> Callable[[_RequestView], object]:
    def get(v: _RequestView) -> object:
        return getattr(v.auth, attribute)

    return get


_GETTERS: Final[dict[str, Callable[[_RequestView], object]]] = {
    "http.host": lambda v: v.host,
    "http.request.method": lambda v: v.head.method.decode("ascii"),
    "http.request.uri": lambda v: _text(v.head.target),
    "http.request.uri.path": _path,
    "http.request.uri.query": _query,
    "http.request.uri.args": _args,
    "http.request.full_uri": _full_uri,
    "http.user_agent": _header(b"user-agent"),
    "http.referer": _header(b"referer"),
    "http.cookie": _cookie,
    "http.request.headers": _headers,
    "ip.src": _ip,
    "ssl": lambda v: v.tls,
}
for _name in EDGE_SCHEME.field_types:
    if _name.startswith(CLIENT_AUTH_PREFIX):
        _GETTERS[_name] = _client_auth(_name.removeprefix(CLIENT_AUTH_PREFIX))


def field_getters() -> Mapping[str, Callable[..., object]]:
    """Canonical field name → getter (for tests proving every scheme field is answered)."""
    return dict(_GETTERS)


# --------------------------------------------------------------------------------------------
# Per-host plans (built on first use per state, reused across states by content)


_RuleResult = tuple[int, tuple[int, ...], tuple[int, ...]]
"""(index of the deny rule that matched or -1, ids of the monitor rules that matched before it,
indexes of the origin rules that matched: none after a deny)."""


@dataclass(slots=True, eq=False)
class _HostPlan:
    host: HostState
    fail_closed: str
    """Why this host answers 503 ("" when it serves)."""
    fail_rule_id: int | None
    waf: FilterSet | None
    waf_specs: tuple[WafRuleSpec, ...]
    origin: FilterSet | None
    origin_specs: tuple[OriginRuleSpec, ...]
    connection_fields: tuple[str, ...]
    """The fields the host's rules read whose values are facts of the connection (see
    `_CONNECTION_FIELDS`)."""
    connection_only: bool
    """Every rule of the host reads only such fields: their outcome is one per connection,
    verdict and hostname (the rule language has no clock and no randomness)."""
    targets: dict[tuple[str, bool, tuple[int, ...]], OriginTarget] = field(default_factory=dict)
    results: dict[tuple[int, str, str, bool], tuple[ClientAuth, _RuleResult]] = field(default_factory=dict)
    """With `connection_only` rules: (verdict id, hostname, client address if a rule reads
    ``ip.src``, TLS if one reads ``ssl``) → (the verdict, the result): what a connection's
    first request finds already judged by another connection with the same facts."""


_MAX_TARGETS_PER_HOST: Final = 256  # wildcard hosts see many names; keep the cache bounded
_MAX_SHARED_RESULTS: Final = 1024

_CONNECTION_FIELDS: Final = frozenset(
    {"http.host", "ip.src", "ssl", *(n for n in EDGE_SCHEME.field_types if n.startswith(CLIENT_AUTH_PREFIX))}
)
"""Fields whose value depends only on the connection, its certificate verdict and the request's
hostname (the key of a connection's `_RulesMemo`), never on the rest of the request."""

_RULES_MEMO: Final = "_rules_memo"
"""Key in `ConnectionInfo.state`: the `_ConnectionRules` of the connection's last request."""


class _ConnectionRules:
    """A connection's rule context, valid while the plan (a new snapshot makes new plans), the
    verdict and the hostname are the same: the values of the connection fields the rules read
    are fetched once, and when the rules read nothing else their result is kept too."""

    __slots__ = ("auth", "ctx", "host", "known", "plan", "result", "view")

    def __init__(self, plan: _HostPlan, auth: ClientAuth, host: str, view: _RequestView) -> None:
        self.plan = plan
        self.auth = auth
        self.host = host
        self.view = view
        self.ctx: ExecutionContext = EDGE_SCHEME.context(view.get)
        self.known: dict[str, object] = _connection_values(self.ctx, plan)
        self.result: _RuleResult | None = None


def _rule_fields(*sets: FilterSet | None) -> tuple[tuple[str, ...], bool]:
    """The connection fields the rules read, and whether they read nothing else."""
    names: set[str] = set()
    for fs in sets:
        if fs is not None:
            for flt in fs.filters:
                names.update(flt.fields)
    return tuple(sorted(names & _CONNECTION_FIELDS)), names <= _CONNECTION_FIELDS


def _evaluate(plan: _HostPlan, ctx: ExecutionContext) -> _RuleResult:
    """WAF rules in position order up to the first deny (monitor matches collected on the way),
    then, without a deny, every origin rule that matches."""
    monitored: list[int] = []
    waf = plan.waf
    if waf is not None:
        index = waf.first_match(ctx, 0)
        while index >= 0:
            spec = plan.waf_specs[index]
            if spec.action == "deny":
                return index, tuple(monitored), ()
            monitored.append(spec.id)
            index = waf.first_match(ctx, index + 1)
    matched = tuple(plan.origin.matching(ctx)) if plan.origin is not None else ()
    return -1, tuple(monitored), matched


def _fail_closed(host: HostState) -> tuple[str, int | None]:
    """Whether a rule of this host's site that matters for safety failed to compile."""
    compiled = {r.spec.id for r in host.waf_rules}
    for spec in host.site.waf_rules:
        if spec.action == "deny" and spec.id not in compiled:
            return f"deny rule {spec.id} did not compile", spec.id
    compiled_origin = {r.spec.id for r in host.origin_rules}
    for ospec in host.site.origin_rules:
        if ospec.id not in compiled_origin:
            return f"origin rule {ospec.id} did not compile", ospec.id
    return "", None


# --------------------------------------------------------------------------------------------
# The decider


class Decider:
    """Holds the state in force and decides requests against it. One per event loop.

    `set_state` swaps the configuration (one reference; a request in progress keeps the state it
    started with because `decide` reads the reference once).
    """

    def __init__(self, authenticator: Authenticator, settings: DecisionSettings | None = None) -> None:
        self.authenticator = authenticator
        self.settings = settings or DecisionSettings()
        self.state: EdgeState | None = None
        # `ClientAuthenticator.authenticate_window` when the authenticator has it (per-connection reuse).
        self._authenticate_window: Callable[..., tuple[ClientAuth, float, float]] | None = getattr(
            authenticator, "authenticate_window", None
        )
        self._plans: dict[HostState, _HostPlan] = {}
        # Compiled rule lists by expression content, carried from one state to the next so a
        # revocation-only snapshot compiles nothing.
        self._filter_sets: dict[tuple[str, ...], FilterSet] = {}
        self._old_filter_sets: dict[tuple[str, ...], FilterSet] = {}

    def set_state(self, state: EdgeState) -> None:
        self._old_filter_sets = {**self._old_filter_sets, **self._filter_sets}
        if len(self._old_filter_sets) > 4096:
            self._old_filter_sets = dict(self._filter_sets)
        self._filter_sets = {}
        self._plans = {}
        self.state = state

    # -- plans ------------------------------------------------------------------------------------

    def _filter_set(self, expressions: tuple[str, ...], filters: Sequence[Filter]) -> FilterSet:
        fs = self._filter_sets.get(expressions) or self._old_filter_sets.get(expressions)
        if fs is None:
            fs = compile_filters([f.ast for f in filters])
        self._filter_sets[expressions] = fs
        return fs

    def _plan(self, host: HostState) -> _HostPlan:
        plan = self._plans.get(host)
        if plan is None:
            reason, rule_id = _fail_closed(host) if self.settings.fail_closed_on_rule_errors else ("", None)
            waf_specs = tuple(r.spec for r in host.waf_rules)
            origin_specs = tuple(r.spec for r in host.origin_rules)
            waf: FilterSet | None = (
                self._filter_set(tuple(s.expression for s in waf_specs), [r.filter for r in host.waf_rules])
                if waf_specs
                else None
            )
            origin = (
                self._filter_set(
                    tuple(s.expression for s in origin_specs), [r.filter for r in host.origin_rules]
                )
                if origin_specs
                else None
            )
            connection_fields, connection_only = _rule_fields(waf, origin)
            plan = _HostPlan(
                host=host,
                fail_closed=reason,
                fail_rule_id=rule_id,
                waf=waf,
                waf_specs=waf_specs,
                origin=origin,
                origin_specs=origin_specs,
                connection_fields=connection_fields,
                connection_only=connection_only,
            )
            self._plans[host] = plan
        return plan

    def _target(self, plan: _HostPlan, name: str, tls: bool, matched: tuple[int, ...]) -> OriginTarget:
        key = (name, tls, matched)
        target = plan.targets.get(key)
        if target is not None:
            return target
        origin = plan.host.policy.origin
        scheme = origin.scheme
        address = origin.address
        http_port, https_port = origin.http_port, origin.https_port
        host_header: str | None = None
        sni: str | None = None
        read_timeout: float = self.settings.origin_read_timeout
        for index in matched:
            rule = plan.origin_specs[index]
            scheme = rule.scheme or scheme
            http_port = rule.http_port or http_port
            https_port = rule.https_port or https_port
            address = rule.address or address
            host_header = rule.host or host_header
            sni = rule.sni or sni
            if rule.read_timeout:
                read_timeout = float(rule.read_timeout)
        if scheme == "follow":
            scheme = "https" if tls else "http"
        final_scheme: Literal["http", "https"] = "https" if scheme == "https" else "http"
        target = OriginTarget(
            scheme=final_scheme,
            host=address,
            port=https_port if final_scheme == "https" else http_port,
            # The origin is asked for the name the client asked for, unless a rule says otherwise.
            sni=(sni or host_header or name) if final_scheme == "https" else None,
            connect_timeout=self.settings.origin_connect_timeout,
            read_timeout=read_timeout,
            host_header=host_header.encode("idna") if host_header else None,
            verify_tls=self.settings.verify_origin_tls,
        )
        if len(plan.targets) >= _MAX_TARGETS_PER_HOST:
            plan.targets.clear()
        plan.targets[key] = target
        return target

    # -- the decision -----------------------------------------------------------------------------

    def decide(
        self,
        conn: ConnectionInfo,
        head: RequestHead,
        record: RequestRecord,
        *,
        now: dt.datetime | float,
        on_done: OnDone | None = None,
    ) -> Respond | Forward:
        """Decide one request; fills ``record`` as it goes. ``now``: an aware datetime, or Unix
        seconds (the edge's own clock; a datetime is made only when a verdict is computed)."""
        state = self.state
        host = head.host.rstrip(".") if head.host else (conn.sni or "")
        record.host = host
        if state is None:
            record.outcome = "not_configured"
            return self._respond(503, record, head, on_done)
        record.snapshot_version = state.version
        host_state = state.host(host) if host else None
        sni = conn.sni
        if sni != host and conn.tls:
            sni_state = state.host(sni) if sni else None
            if (host_state is not None and host_state.mtls) or (sni_state is not None and sni_state.mtls):
                record.known_host = host_state is not None
                record.outcome = "misdirected"
                return self._respond(421, record, head, on_done)
        elif not conn.tls and host_state is not None and host_state.mtls:
            # Plain HTTP cannot carry a client certificate; an mTLS hostname needs TLS.
            record.known_host = True
            record.outcome = "misdirected"
            return self._respond(421, record, head, on_done)
        if host_state is None:
            record.outcome = "unknown_host"
            return self._respond(404, record, head, on_done, show_host=True)
        record.known_host = True
        plan = self._plan(host_state)
        if plan.fail_closed:
            record.outcome = "rule_error"
            record.rule_id = plan.fail_rule_id
            record.error = plan.fail_closed
            return self._respond(503, record, head, on_done)

        # The verdict of the connection's certificate, reused by its next requests while the
        # state and host are the same objects (a new snapshot, e.g. a revocation, is a new
        # state) and the time stays inside the window in which the verdict cannot change.
        cstate = conn.state
        at = now if isinstance(now, float) else now.timestamp()
        memo: _AuthMemo | None = cstate.get(_AUTH_MEMO)
        if memo is not None and memo[0] is state and memo[1] is host_state and memo[2] < at < memo[3]:
            auth = memo[4]
        else:
            leaf, intermediates = cstate.get(PEER_CERTIFICATES, _NO_PEER)
            when = dt.datetime.fromtimestamp(now, dt.UTC) if isinstance(now, float) else now
            if self._authenticate_window is not None:
                auth, lo, hi = self._authenticate_window(state, host_state, leaf, intermediates, now=when)
                cstate[_AUTH_MEMO] = (state, host_state, lo, hi, auth)
            else:
                auth = self.authenticator.authenticate(state, host_state, leaf, intermediates, now=when)
        record.auth = auth

        matched: tuple[int, ...] = ()
        if plan.waf is not None or plan.origin is not None:
            result: _RuleResult | None = None
            shared_key: tuple[int, str, str, bool] | None = None
            rules: _ConnectionRules | None = cstate.get(_RULES_MEMO)
            if rules is not None and rules.plan is plan and rules.auth is auth and rules.host == host:
                result = rules.result
                if result is None:
                    rules.view.head = head
                    rules.ctx.reset(rules.known)
                ctx = rules.ctx
            elif rules is not None or _RULES_MEMO in cstate:
                rules = _ConnectionRules(plan, auth, host, _RequestView(conn, head, host, auth))
                cstate[_RULES_MEMO] = rules
                ctx = rules.ctx
            else:
                # The connection's first decision: a context for this request only (a connection
                # that carries one request would gain nothing from keeping one); the next
                # request makes the connection's. Rules that read only connection facts may
                # have judged the same facts on another connection already.
                cstate[_RULES_MEMO] = None
                ctx = None
                if plan.connection_only:
                    shared_key = (
                        id(auth),
                        host,
                        conn.peer_ip if "ip.src" in plan.connection_fields else "",
                        conn.tls and "ssl" in plan.connection_fields,
                    )
                    shared = plan.results.get(shared_key)
                    if shared is not None and shared[0] is auth:
                        result = shared[1]
            if result is None:
                if ctx is None:
                    ctx = EDGE_SCHEME.context(_RequestView(conn, head, host, auth).get)
                try:
                    result = _evaluate(plan, ctx)
                except Exception as exc:  # a rule that raises must not let the request through
                    record.outcome = "rule_error"
                    record.error = f"rule evaluation failed: {type(exc).__name__}: {exc}"
                    return self._respond(500, record, head, on_done)
                if rules is not None and plan.connection_only:
                    rules.result = result
                elif shared_key is not None:
                    if len(plan.results) >= _MAX_SHARED_RESULTS:
                        plan.results.clear()
                    plan.results[shared_key] = (auth, result)  # (keeps `auth` alive: its id stays its own)
            deny, monitored, matched = result
            if deny >= 0:
                record.monitored = monitored
                record.outcome = "waf_deny"
                record.rule_id = plan.waf_specs[deny].id
                record.rule_action = "deny"
                return self._respond(403, record, head, on_done)
            if monitored:
                record.monitored = monitored
                record.rule_id = monitored[0]
                record.rule_action = "monitor"

        target = self._target(plan, host, conn.tls, matched)
        record.origin = target
        record.outcome = "forward"
        return Forward(origin=target, extra_headers=_rfc9440(auth), on_done=on_done)

    def _respond(
        self,
        status: int,
        record: RequestRecord,
        head: RequestHead,
        on_done: OnDone | None,
        *,
        show_host: bool = False,
    ) -> Respond:
        # Accept is looked up only here: a forwarded request never needs it.
        headers, body = render(
            status,
            request_id=record.request_id,
            accept=head.header(b"accept"),
            host=record.host if show_host else "",
        )
        return Respond(status=status, headers=headers, body=body, on_done=on_done)


def _connection_values(ctx: ExecutionContext, plan: _HostPlan) -> dict[str, object]:
    """Fetch the connection fields the plan's rules read, as the rules would (the getters of
    these fields have no effects). A field whose getter raises, or whose value the
    scheme refuses, is left out: a rule reading it fails when and as it did without this."""
    for name in plan.connection_fields:
        try:
            ctx.get(name)
        except Exception:  # left to the lazy fetch (see above)
            pass
    return ctx.loaded
