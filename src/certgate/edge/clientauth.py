"""Per-request client-certificate verdicts: the ``tls.client_auth.*`` fields and RFC 9440 headers.

The handshake accepted whatever the client sent (``tls``); here, on every request, the
certificate is judged against the hostname's trust set *in the current state*. Chain building
is the expensive part (~200 µs), so its result is cached; everything that can change while a
connection stays open is evaluated on every call from the cached facts, in O(1):

* validity: the leaf's notBefore/notAfter and the verified chain's window, against ``now``;
* revocation: the serial of the certificate the anchor issued, in the state's revoked set.

So a revocation, or a certificate expiring, hits keep-alive connections on their next request.

The cache key is (trust-set content hash, leaf DER, intermediates DER): a verdict can never be
reused under other anchors, and a snapshot that changes only revocations keeps the cache warm.
Negative chain verdicts are re-checked after ``negative_ttl`` seconds, because a CA that is not
valid yet can become valid; positive ones stay right as long as the window check passes.

Status precedence, first match wins: ``none`` (nothing sent) → ``invalid`` (cannot be parsed
or processed) → ``expired`` / ``not_yet_valid`` (the leaf's own dates, whatever its issuer; as
in ``pki.verify``) → ``untrusted`` (no path to a bound anchor, wrong EKU, an intermediate or
anchor outside its validity) → ``revoked`` → ``valid``. ``cert_revoked`` is reported for any
chained certificate whose serial is revoked, even when its status is ``expired``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Literal

from cryptography import x509

from certgate.edge.state import EdgeState, HostState, TrustSet
from certgate.pki.describe import describe_certificate
from certgate.pki.errors import ClientCertificateRejected

CertStatus = Literal["none", "valid", "untrusted", "expired", "not_yet_valid", "revoked", "invalid"]
CERT_STATUSES: Final[tuple[CertStatus, ...]] = (
    "none",
    "valid",
    "untrusted",
    "expired",
    "not_yet_valid",
    "revoked",
    "invalid",
)

#: Lowercase names of the RFC 9440 headers the edge sets; any client-sent copy must be removed.
RFC9440_HEADER_NAMES: Final = (b"client-cert", b"client-cert-chain", b"client-cert-status")

DEFAULT_CACHE_SIZE: Final = 4096
_NEG_INF: Final = float("-inf")
_POS_INF: Final = float("inf")
DEFAULT_NEGATIVE_TTL: Final = 60


@dataclasses.dataclass(frozen=True, slots=True)
class ClientAuth:
    """The verdict on one request's client certificate; fields named as in PRODUCT.md §4.

    Absent facts are empty strings and 0 (no certificate, or one that cannot be parsed).
    """

    cert_presented: bool = False
    cert_verified: bool = False
    cert_revoked: bool = False
    cert_status: CertStatus = "none"
    cert_fingerprint_sha256: str = ""
    cert_serial: str = ""
    cert_subject_dn: str = ""
    cert_issuer_dn: str = ""
    cert_ski: str = ""
    cert_issuer_ski: str = ""
    cert_not_before: int = 0  # Unix seconds
    cert_not_after: int = 0  # Unix seconds
    anchor_id: str = ""  # the bound anchor the chain ends at, when it chains to one
    client_cert: bytes = b""  # RFC 9440 Client-Cert value, b"" when no certificate was sent
    client_cert_chain: bytes = b""  # RFC 9440 Client-Cert-Chain value, b"" when none was sent


NO_CERTIFICATE: Final = ClientAuth()


def rfc9440_headers(auth: ClientAuth) -> list[tuple[bytes, bytes]]:
    """Headers to add to a forwarded request: Client-Cert(-Chain) when sent, always the status."""
    headers = []
    if auth.client_cert:
        headers.append((b"Client-Cert", auth.client_cert))
    if auth.client_cert_chain:
        headers.append((b"Client-Cert-Chain", auth.client_cert_chain))
    headers.append((b"Client-Cert-Status", auth.cert_status.encode()))
    return headers


def _byte_sequence(der: bytes) -> bytes:
    """An RFC 8941 Byte Sequence, ``:base64:``, as RFC 9440 requires."""
    return b":" + base64.b64encode(der) + b":"


Verdict = Literal["valid", "untrusted", "invalid"]


@dataclasses.dataclass(slots=True, eq=False)
class _ChainResult:
    """A cached chain verdict plus the facts needed to finish the verdict at any time."""

    verdict: Verdict
    template: ClientAuth  # facts and RFC 9440 values; status fields are filled per call
    leaf_from: float
    leaf_until: float
    chain_from: float  # the verified chain's CA certificates are all valid in [from, until]
    chain_until: float
    revocation_keys: tuple[tuple[str, int], ...]  # (anchor id, serial of what the anchor issued)
    recheck_after: float | None  # negative verdicts are recomputed after this time
    variants: dict[tuple[CertStatus, bool], ClientAuth] = dataclasses.field(default_factory=dict)

    @classmethod
    def rejected(
        cls,
        verdict: Literal["untrusted", "invalid"],
        template: ClientAuth,
        leaf_window: tuple[float, float] = (0.0, 0.0),
        recheck_after: float | None = None,
    ) -> _ChainResult:
        return cls(
            verdict=verdict,
            template=template,
            leaf_from=leaf_window[0],
            leaf_until=leaf_window[1],
            chain_from=leaf_window[0],
            chain_until=leaf_window[1],
            revocation_keys=(),
            recheck_after=recheck_after,
        )

    def auth(self, status: CertStatus, revoked: bool) -> ClientAuth:
        # A handful of immutable variants per certificate: the hot path allocates nothing.
        variant = self.variants.get((status, revoked))
        if variant is None:
            variant = dataclasses.replace(
                self.template,
                cert_status=status,
                cert_verified=status == "valid",
                cert_revoked=revoked,
            )
            self.variants[(status, revoked)] = variant
        return variant


class ClientAuthenticator:
    """Judges client certificates per request; owns the LRU cache of chain verdicts.

    One per edge process, long-lived across snapshot swaps (the cache key includes the trust
    set's content hash, so a state swap never needs to clear it). Not thread-safe: use it from
    the event loop only.
    """

    def __init__(
        self, *, cache_size: int = DEFAULT_CACHE_SIZE, negative_ttl: int = DEFAULT_NEGATIVE_TTL
    ) -> None:
        if cache_size < 1 or negative_ttl < 0:
            raise ValueError("cache_size must be >= 1 and negative_ttl >= 0")
        self._cache: OrderedDict[tuple[bytes, bytes, tuple[bytes, ...]], _ChainResult] = OrderedDict()
        self._cache_size = cache_size
        self._negative_ttl = negative_ttl
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()

    def authenticate(
        self,
        state: EdgeState,
        host: HostState,
        leaf_der: bytes | None,
        intermediates_der: Sequence[bytes] = (),
        *,
        now: dt.datetime,
    ) -> ClientAuth:
        """The verdict for a request on ``host`` (of ``state``) whose connection presented these.

        ``leaf_der``/``intermediates_der`` come from ``tls.peer_certificates``; ``now`` is the
        request time (timezone-aware).
        """
        return self.authenticate_window(state, host, leaf_der, intermediates_der, now=now)[0]

    def authenticate_window(
        self,
        state: EdgeState,
        host: HostState,
        leaf_der: bytes | None,
        intermediates_der: Sequence[bytes] = (),
        *,
        now: dt.datetime,
    ) -> tuple[ClientAuth, float, float]:
        """`authenticate`, plus the open interval of Unix times ``(lo, hi)`` around ``now`` in
        which the verdict stays the same *for this state and host* (no validity bound or
        re-check time falls inside it). A caller may reuse the verdict for later requests of the
        same connection while the state and host objects are the same and the request time is
        strictly inside the interval; a new state (a revocation) or time crossing a bound means
        asking again. ``(now, now)`` when ``now`` is exactly on a bound (nothing to reuse).
        """
        if leaf_der is None:
            return NO_CERTIFICATE, _NEG_INF, _POS_INF
        intermediates = (
            intermediates_der if isinstance(intermediates_der, tuple) else tuple(intermediates_der)
        )
        trust = host.trust
        key = (trust.key if trust is not None else b"", leaf_der, intermediates)
        at = now.timestamp()
        result = self._cache.get(key)
        if result is None or (result.recheck_after is not None and at >= result.recheck_after):
            self.misses += 1
            result = self._chain_result(trust, leaf_der, intermediates, now)
            self._cache[key] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self.hits += 1
            self._cache.move_to_end(key)

        if result.verdict == "invalid":
            return result.auth("invalid", False), _NEG_INF, _POS_INF  # never re-checked
        revoked = False
        for anchor_id, serial in result.revocation_keys:
            if state.is_revoked(anchor_id, serial):
                revoked = True
                break
        status: CertStatus
        if at > result.leaf_until:
            status = "expired"
        elif at < result.leaf_from:
            status = "not_yet_valid"
        elif result.verdict == "untrusted" or not result.chain_from <= at <= result.chain_until:
            status = "untrusted"
        elif revoked:
            status = "revoked"
        else:
            status = "valid"
        lo, hi = _NEG_INF, _POS_INF
        for bound in (result.leaf_from, result.leaf_until, result.chain_from, result.chain_until):
            if bound < at:
                if bound > lo:
                    lo = bound
            elif bound > at:
                if bound < hi:
                    hi = bound
            else:
                return result.auth(status, revoked), at, at
        recheck = result.recheck_after
        if recheck is not None:
            if recheck <= at:  # (cannot happen: a due re-check ran above)
                return result.auth(status, revoked), at, at
            hi = min(hi, recheck)
        return result.auth(status, revoked), lo, hi

    def _chain_result(
        self,
        trust: TrustSet | None,
        leaf_der: bytes,
        intermediates_der: tuple[bytes, ...],
        now: dt.datetime,
    ) -> _ChainResult:
        chain_header = b", ".join(_byte_sequence(der) for der in intermediates_der)
        base = ClientAuth(
            cert_presented=True,
            client_cert=_byte_sequence(leaf_der),
            client_cert_chain=chain_header,
        )
        try:
            leaf = x509.load_der_x509_certificate(leaf_der)
            facts = describe_certificate(leaf)
        except Exception:  # attacker-supplied bytes: anything unprocessable is "invalid", never a crash
            return _ChainResult.rejected("invalid", base)
        template = dataclasses.replace(
            base,
            cert_fingerprint_sha256=facts.fingerprint_sha256,
            cert_serial=facts.serial_hex,
            cert_subject_dn=facts.subject_dn,
            cert_issuer_dn=facts.issuer_dn,
            cert_ski=facts.ski or "",
            cert_issuer_ski=facts.issuer_ski or "",
            cert_not_before=int(facts.not_before.timestamp()),
            cert_not_after=int(facts.not_after.timestamp()),
        )
        leaf_window = (facts.not_before.timestamp(), facts.not_after.timestamp())
        untrusted = _ChainResult.rejected(
            "untrusted", template, leaf_window, recheck_after=now.timestamp() + self._negative_ttl
        )
        if trust is None or trust.verifier is None:
            return untrusted
        try:
            intermediates = [x509.load_der_x509_certificate(der) for der in intermediates_der]
        except ValueError:
            return _ChainResult.rejected("invalid", template, leaf_window)
        # Build the chain at a moment when the leaf itself is valid, so that the cached verdict
        # is about the chain only; the leaf's dates are compared with ``now`` on every call.
        at = min(max(now, facts.not_before), facts.not_after)
        try:
            verified = trust.verifier.verify(leaf, intermediates, now=at)
        except ClientCertificateRejected as exc:
            return (
                _ChainResult.rejected("invalid", template, leaf_window)
                if exc.reason == "invalid"
                else untrusted
            )
        cas = verified.chain[1:]
        chain_from = max((c.not_valid_before_utc.timestamp() for c in cas), default=leaf_window[0])
        chain_until = min((c.not_valid_after_utc.timestamp() for c in cas), default=leaf_window[1])
        anchor_ids = trust.anchor_ids(verified.anchor)
        # Revocation lists belong to an anchor and name the certificates it issued: the leaf
        # when it is issued directly, else the intermediate below the anchor (which revokes
        # everything under it).
        issued = verified.chain[-2] if len(verified.chain) >= 2 else None
        keys = tuple((aid, issued.serial_number) for aid in anchor_ids) if issued is not None else ()
        return _ChainResult(
            verdict="valid",
            template=dataclasses.replace(template, anchor_id=anchor_ids[0] if anchor_ids else ""),
            leaf_from=leaf_window[0],
            leaf_until=leaf_window[1],
            chain_from=chain_from,
            chain_until=chain_until,
            revocation_keys=keys,
            recheck_after=None,
        )
