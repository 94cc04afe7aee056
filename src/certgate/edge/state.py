"""The edge's working configuration: a Snapshot compiled into what each request needs.

``EdgeState.from_snapshot`` builds, per served hostname, its TLS context, the verifier of its trust
set, its compiled WAF and origin rules, and the revoked serials of every anchor. A state is
immutable: the server builds the next one completely, then swaps one reference, so a request
always sees one whole snapshot.

Building is cheap. An ``SSLContext`` costs ~1.5 ms of OpenSSL 3.0 time, so contexts are made on
first use (the first handshake naming the hostname, or :meth:`EdgeState.warm_tls_contexts`);
the build only checks, with ``cryptography`` (~0.1 ms), that each certificate and key load.
Passing ``previous=`` reuses contexts, verifiers, parsed anchors, compiled rules and
revoked-serial sets whose inputs are identical (keyed by content, not by snapshot version), so
a revocation-only snapshot rebuilds no ``SSLContext`` and no verifier.

Bad pieces never crash the edge: an anchor that does not parse trusts nothing, a rule that
does not compile is skipped, a hostname whose certificate does not load is not served; each is
listed in ``problems`` (and a host's own rule failures in ``HostState.rule_problems``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from certgate.edge.tls import ServerContext, TLSContextError, TLSContextFactory, client_ca_names_of
from certgate.pki.verify import ClientVerifier
from certgate.rules import EDGE_SCHEME, Filter, RuleError, RuleParseError, compile_filter, parse
from certgate.snapshot.format import (
    EdgeTLSCertificate,
    HostPolicy,
    OriginRuleSpec,
    SitePolicy,
    Snapshot,
    TrustAnchor,
    WafRuleSpec,
)

_EMPTY_SERIALS: Final[frozenset[int]] = frozenset()

ProblemKind = Literal["anchor", "revoked_serial", "waf_rule", "origin_rule", "host"]


@dataclasses.dataclass(frozen=True, slots=True)
class StateProblem:
    """Something in the snapshot this edge could not use, and what it did instead."""

    kind: ProblemKind
    subject: str  # "anchor <id>", "site <id> rule <id>", "host <name>"
    message: str


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class TrustSet:
    """The anchors bound to a hostname, with the verifier for them (shared by equal trust sets)."""

    key: bytes  # sha256 over the sorted (anchor id, anchor DER) pairs
    anchors: tuple[tuple[str, x509.Certificate], ...]  # usable anchors only, (id, certificate)
    verifier: ClientVerifier | None  # None when no bound anchor is usable: nothing verifies
    ca_names: tuple[bytes, ...]  # DER subjects sent in CertificateRequest
    _ids_by_der: Mapping[bytes, tuple[str, ...]] = dataclasses.field(repr=False)

    def anchor_ids(self, anchor: x509.Certificate) -> tuple[str, ...]:
        """Ids of the bound anchors that are this certificate (usually one)."""
        return self._ids_by_der.get(anchor.public_bytes(serialization.Encoding.DER), ())


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledWafRule:
    spec: WafRuleSpec
    filter: Filter


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledOriginRule:
    spec: OriginRuleSpec
    filter: Filter


class _ContextSlot:
    """One TLS context, made on first use; shared by every hostname and state with equal inputs."""

    __slots__ = ("_certificate", "_context", "_error", "_factory", "_names")

    def __init__(
        self, factory: TLSContextFactory, certificate: EdgeTLSCertificate, names: tuple[bytes, ...] | None
    ) -> None:
        self._factory = factory
        self._certificate = certificate
        self._names = names
        self._context: ServerContext | None = None
        self._error: TLSContextError | None = None

    def get(self) -> ServerContext:
        context = self._context
        if context is None:
            if self._error is not None:  # never retry a failed build on every handshake
                raise self._error
            try:
                context = self._factory.host_context(self._certificate, self._names)
            except TLSContextError as exc:
                self._error = exc
                raise
            self._context = context
        return context


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class HostState:
    """Everything the edge needs per request for one served hostname."""

    hostname: str
    policy: HostPolicy
    site: SitePolicy
    _tls: _ContextSlot = dataclasses.field(repr=False)
    trust: TrustSet | None  # None: not an mTLS hostname
    waf_rules: tuple[CompiledWafRule, ...]  # http_custom, position order, compiled ones only
    origin_rules: tuple[CompiledOriginRule, ...]  # sequence order, compiled ones only
    rule_problems: tuple[StateProblem, ...]  # this host's rules that were skipped

    @property
    def mtls(self) -> bool:
        return self.policy.mtls

    @property
    def tls_context(self) -> ServerContext:
        """This hostname's server context (made now if this is its first use).

        Raises ``TLSContextError`` if OpenSSL refuses what ``cryptography`` accepted at build.
        """
        return self._tls.get()


class _LazyContexts(Mapping[str, ServerContext]):
    """hostname → context, building each context when it is first looked up."""

    __slots__ = ("_hosts",)

    def __init__(self, hosts: Mapping[str, HostState]) -> None:
        self._hosts = hosts

    def __getitem__(self, name: str) -> ServerContext:
        return self._hosts[name].tls_context

    def __iter__(self) -> Iterator[str]:
        return iter(self._hosts)

    def __len__(self) -> int:
        return len(self._hosts)


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled:
    filter: Filter | None
    error: str


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class EdgeState:
    """One snapshot, ready to serve. Build with :meth:`from_snapshot`; never mutated."""

    snapshot: Snapshot
    built_at: dt.datetime
    hosts: Mapping[str, HostState]
    problems: tuple[StateProblem, ...]
    revoked: Mapping[str, frozenset[int]]  # anchor id → revoked serial numbers
    # reuse caches handed to the next build (content-keyed)
    _anchors_by_pem: Mapping[str, x509.Certificate | None] = dataclasses.field(repr=False)
    _trust_sets: Mapping[bytes, TrustSet] = dataclasses.field(repr=False)
    _context_slots: Mapping[bytes, _ContextSlot] = dataclasses.field(repr=False)
    _certificate_checks: Mapping[bytes, str] = dataclasses.field(repr=False)  # key → error ("" = ok)
    _compiled: Mapping[str, _Compiled] = dataclasses.field(repr=False)
    _revoked_sources: Mapping[str, tuple[str, ...]] = dataclasses.field(repr=False)
    tls_factory: TLSContextFactory = dataclasses.field(repr=False)

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def tls_contexts(self) -> Mapping[str, ServerContext]:
        """hostname → server context, for ``SNIRouter.replace``; contexts are made on lookup."""
        return _LazyContexts(self.hosts)

    def warm_tls_contexts(self) -> list[StateProblem]:
        """Make every context now (e.g. in a worker thread after a large change); report failures."""
        failures = []
        for name, host in self.hosts.items():
            try:
                _ = host.tls_context
            except TLSContextError as exc:
                failures.append(StateProblem("host", f"host {name}", exc.message))
        return failures

    def host(self, name: str) -> HostState | None:
        """The served hostname ``name`` (already lowercased): exact match, then ``*.`` wildcard."""
        state = self.hosts.get(name)
        if state is None and "." in name:
            state = self.hosts.get("*." + name.split(".", 1)[1])
        return state

    def is_revoked(self, anchor_id: str, serial: int) -> bool:
        """O(1): is the certificate with ``serial`` issued by anchor ``anchor_id`` revoked?"""
        return serial in self.revoked.get(anchor_id, _EMPTY_SERIALS)

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Snapshot,
        *,
        now: dt.datetime,
        previous: EdgeState | None = None,
        tls_factory: TLSContextFactory | None = None,
    ) -> EdgeState:
        """Compile ``snapshot``; ``previous`` lends every piece whose inputs did not change.

        ``tls_factory`` defaults to the previous state's (or a default one); pass a new factory
        to change TLS settings, which also invalidates every reused context.
        """
        return _Builder(snapshot, now, previous, tls_factory).build()


def _parse_serial(text: str) -> int:
    cleaned = text.replace(":", "").strip().lower()
    if not cleaned or len(cleaned) > 64:
        raise ValueError(f"not a serial number: {text!r}")
    return int(cleaned, 16)


_SPKI: Final = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_certificate(certificate: EdgeTLSCertificate) -> str:
    """Why OpenSSL would refuse this edge certificate and key ("" if it would not), in ~0.1 ms."""
    try:
        chain = x509.load_pem_x509_certificates(certificate.chain_pem.encode())
    except ValueError:
        return "edge certificate chain does not parse"
    try:
        key = serialization.load_pem_private_key(certificate.key_pem.encode(), None)
    except TypeError:
        return "edge private key is encrypted"
    except (ValueError, UnsupportedAlgorithm):
        return "edge private key does not parse"
    if key.public_key().public_bytes(*_SPKI) != chain[0].public_key().public_bytes(*_SPKI):
        return "edge private key does not match the certificate"
    return ""


class _Builder:
    """One build of an EdgeState; keeps the bookkeeping out of the dataclass."""

    def __init__(
        self,
        snapshot: Snapshot,
        now: dt.datetime,
        previous: EdgeState | None,
        tls_factory: TLSContextFactory | None,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be a timezone-aware datetime")
        self.snapshot = snapshot
        self.now = now
        self.factory = tls_factory or (previous.tls_factory if previous else TLSContextFactory())
        same_factory = previous is not None and previous.tls_factory is self.factory
        self.old_anchors = previous._anchors_by_pem if previous else {}
        self.old_trust = previous._trust_sets if previous else {}
        self.old_slots = previous._context_slots if same_factory and previous else {}
        self.old_checks = previous._certificate_checks if same_factory and previous else {}
        self.old_compiled = previous._compiled if previous else {}
        self.old_revoked = previous.revoked if previous else {}
        self.old_revoked_sources = previous._revoked_sources if previous else {}
        self.problems: list[StateProblem] = []
        self.anchors_by_pem: dict[str, x509.Certificate | None] = {}
        self.trust_sets: dict[bytes, TrustSet] = {}
        self.slots: dict[bytes, _ContextSlot] = {}
        self.trust_by_ids: dict[frozenset[str], TrustSet] = {}
        self.checks: dict[bytes, str] = {}
        self.compiled: dict[str, _Compiled] = {}

    def build(self) -> EdgeState:
        anchors = {aid: self._anchor(anchor) for aid, anchor in self.snapshot.anchors.items()}
        revoked, revoked_sources = self._revoked()
        site_rules = {site_id: self._site_rules(site) for site_id, site in self.snapshot.sites.items()}
        hosts: dict[str, HostState] = {}
        for name, policy in self.snapshot.hosts.items():
            site = self.snapshot.sites.get(policy.site_id)
            if site is None:
                self._problem("host", f"host {name}", "names an unknown site; not served")
                continue
            trust = self._trust_set(policy, anchors) if policy.mtls else None
            slot = self._context_slot(policy, trust)
            if slot is None:
                continue
            waf, origin, rule_problems = site_rules[site.id]
            hosts[name] = HostState(
                hostname=name,
                policy=policy,
                site=site,
                _tls=slot,
                trust=trust,
                waf_rules=waf,
                origin_rules=origin,
                rule_problems=rule_problems,
            )
        return EdgeState(
            snapshot=self.snapshot,
            built_at=self.now,
            hosts=hosts,
            problems=tuple(self.problems),
            revoked=revoked,
            _anchors_by_pem=self.anchors_by_pem,
            _trust_sets=self.trust_sets,
            _context_slots=self.slots,
            _certificate_checks=self.checks,
            _compiled=self.compiled,
            _revoked_sources=revoked_sources,
            tls_factory=self.factory,
        )

    def _problem(self, kind: ProblemKind, subject: str, message: str) -> StateProblem:
        problem = StateProblem(kind=kind, subject=subject, message=message)
        self.problems.append(problem)
        return problem

    # -- anchors, trust sets, revocation ---------------------------------------------------------

    def _anchor(self, anchor: TrustAnchor) -> x509.Certificate | None:
        pem = anchor.certificate_pem
        if pem in self.anchors_by_pem:
            certificate = self.anchors_by_pem[pem]
        elif pem in self.old_anchors:
            certificate = self.anchors_by_pem[pem] = self.old_anchors[pem]
        else:
            try:
                certificate = x509.load_pem_x509_certificate(pem.encode())
            except ValueError:
                certificate = None
            self.anchors_by_pem[pem] = certificate
        if certificate is None:
            self._problem("anchor", f"anchor {anchor.id}", "certificate does not parse; it trusts nothing")
        elif certificate.not_valid_after_utc < self.now:
            self._problem("anchor", f"anchor {anchor.id}", "certificate has expired; nothing chains to it")
        return certificate

    def _trust_set(self, policy: HostPolicy, anchors: Mapping[str, x509.Certificate | None]) -> TrustSet:
        bound = frozenset(policy.trust)
        trust = self.trust_by_ids.get(bound)  # most hostnames share a few trust sets
        if trust is None:
            trust = self.trust_by_ids[bound] = self._new_trust_set(bound, anchors)
        return trust

    def _new_trust_set(
        self, bound: frozenset[str], anchors: Mapping[str, x509.Certificate | None]
    ) -> TrustSet:
        usable = sorted(
            (aid, cert.public_bytes(serialization.Encoding.DER), cert)
            for aid in bound
            if (cert := anchors.get(aid)) is not None
        )
        digest = hashlib.sha256()
        for aid, der, _ in usable:
            digest.update(len(aid).to_bytes(4, "big") + aid.encode() + len(der).to_bytes(4, "big") + der)
        key = digest.digest()
        trust = self.trust_sets.get(key) or self.old_trust.get(key)
        if trust is None:
            ids_by_der: dict[bytes, tuple[str, ...]] = {}
            for aid, der, _ in usable:
                ids_by_der[der] = (*ids_by_der.get(der, ()), aid)
            certificates = [cert for _, _, cert in usable]
            trust = TrustSet(
                key=key,
                anchors=tuple((aid, cert) for aid, _, cert in usable),
                verifier=ClientVerifier(certificates) if certificates else None,
                ca_names=client_ca_names_of(certificates),
                _ids_by_der=ids_by_der,
            )
        self.trust_sets[key] = trust
        return trust

    def _revoked(self) -> tuple[dict[str, frozenset[int]], dict[str, tuple[str, ...]]]:
        revoked: dict[str, frozenset[int]] = {}
        sources: dict[str, tuple[str, ...]] = {}
        for aid, anchor in self.snapshot.anchors.items():
            listed = anchor.revoked_serials
            if not listed:
                continue
            sources[aid] = listed
            if self.old_revoked_sources.get(aid) == listed and aid in self.old_revoked:
                revoked[aid] = self.old_revoked[aid]
                continue
            try:  # fast path: the control plane writes plain hex
                revoked[aid] = frozenset(int(text, 16) for text in listed if len(text) <= 64)
                if len(revoked[aid]) == len(set(listed)):
                    continue
            except ValueError:
                pass
            serials: set[int] = set()
            for text in listed:
                try:
                    serials.add(_parse_serial(text))
                except ValueError:
                    self._problem(
                        "revoked_serial", f"anchor {aid}", f"ignored malformed serial {text[:80]!r}"
                    )
            revoked[aid] = frozenset(serials)
        return revoked, sources

    # -- TLS --------------------------------------------------------------------------------------

    def _context_slot(self, policy: HostPolicy, trust: TrustSet | None) -> _ContextSlot | None:
        names = trust.ca_names if trust is not None else None
        key = self.factory.context_key(policy.certificate, names)
        slot = self.slots.get(key)
        if slot is None:
            error = self.checks.get(key)
            if error is None:
                error = self.old_checks.get(key)
            if error is None:
                error = _check_certificate(policy.certificate)
            self.checks[key] = error
            if error:
                self._problem("host", f"host {policy.hostname}", f"{error}; not served")
                return None
            slot = self.old_slots.get(key) or _ContextSlot(self.factory, policy.certificate, names)
            self.slots[key] = slot
        return slot

    # -- rules ------------------------------------------------------------------------------------

    def _compile(self, expression: str) -> _Compiled:
        compiled = self.compiled.get(expression) or self.old_compiled.get(expression)
        if compiled is None:
            try:
                compiled = _Compiled(filter=compile_filter(parse(expression, EDGE_SCHEME)), error="")
            except RuleParseError as exc:
                compiled = _Compiled(
                    filter=None, error=f"{exc.message} (line {exc.line}, column {exc.column})"
                )
            except RuleError as exc:
                compiled = _Compiled(filter=None, error=exc.message)
            except Exception as exc:  # a compiler bug must cost one rule, not the edge
                compiled = _Compiled(filter=None, error=f"{type(exc).__name__}: {exc}")
        self.compiled[expression] = compiled
        return compiled

    def _site_rules(
        self, site: SitePolicy
    ) -> tuple[tuple[CompiledWafRule, ...], tuple[CompiledOriginRule, ...], tuple[StateProblem, ...]]:
        problems: list[StateProblem] = []
        waf: list[CompiledWafRule] = []
        # The snapshot lists them in position order already; sorting again costs nothing and
        # makes the order a property of this module rather than of the builder.
        for spec in sorted(site.waf_rules, key=lambda r: (r.position, r.id)):
            compiled = self._compile(spec.expression)
            if compiled.filter is None:
                problems.append(
                    self._problem("waf_rule", f"site {site.id} rule {spec.id}", f"skipped: {compiled.error}")
                )
            else:
                waf.append(CompiledWafRule(spec=spec, filter=compiled.filter))
        origin: list[CompiledOriginRule] = []
        for ospec in sorted(site.origin_rules, key=lambda r: (r.sequence, r.id)):
            compiled = self._compile(ospec.expression)
            if compiled.filter is None:
                problems.append(
                    self._problem(
                        "origin_rule", f"site {site.id} origin rule {ospec.id}", f"skipped: {compiled.error}"
                    )
                )
            else:
                origin.append(CompiledOriginRule(spec=ospec, filter=compiled.filter))
        return tuple(waf), tuple(origin), tuple(problems)
