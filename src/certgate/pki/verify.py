"""Client-certificate verification for the edge (the hot path).

A :class:`ClientVerifier` holds the trust anchors of one hostname: the managed CA and/or the
custom CAs bound to it. Anchors are trusted as they are, whether self-signed roots or
intermediates uploaded as "CA": ``cryptography``'s path builder ends a chain at the first
certificate found in the store and never looks above it.

``verify`` answers with a :class:`VerifiedClient` or raises :class:`ClientCertificateRejected`;
there is no boolean to forget to check. Revocation is not checked here: the edge looks the
serial up in its snapshot's revoked set (O(1)).

Policy: the webpki profile of ``cryptography.x509.verification`` for a client verifier
(clientAuth EKU enforced when an EKU is present, v3 only, SHA-1 signatures refused, RSA ≥ 2048,
path length and name constraints), relaxed only where private CAs commonly differ from the
web PKI without any loss of security:

* the leaf may lack a subjectAltName (device certificates often carry only a CN);
* the leaf may lack an authorityKeyIdentifier (a path-building hint, not a security property);
* a CA may lack keyUsage (``openssl req -x509`` makes such CAs); if present it must allow
  keyCertSign;
* a CA's authorityKeyIdentifier may name issuer and serial (easy-rsa does that).

Known limit: X.509 v1 leaves (``openssl x509 -req`` without ``-extfile`` on OpenSSL 3.0) are
refused as ``untrusted``; the CA must issue v3 certificates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtensionOID

from certgate.pki.errors import ClientCertificateRejected, PKIError
from certgate.pki.pem import load_der_certificate

#: Criticality the verifier demands of each extension on a CA certificate (True: critical,
#: False: non-critical, None: either). Any other extension must be non-critical.
#: ``custom_ca.py`` refuses uploads that break it.
CA_EXTENSION_CRITICALITY: Final[Mapping[x509.ObjectIdentifier, bool | None]] = MappingProxyType(
    {
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS: False,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER: False,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER: False,
        ExtensionOID.KEY_USAGE: None,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME: None,
        ExtensionOID.BASIC_CONSTRAINTS: True,
        ExtensionOID.NAME_CONSTRAINTS: None,
        ExtensionOID.EXTENDED_KEY_USAGE: False,
    }
)

#: Longest chain (intermediates between leaf and anchor) the path builder will try.
DEFAULT_MAX_CHAIN_DEPTH: Final = 4
#: More certificates than this in a client's chain is abuse, not a PKI: refuse before building.
DEFAULT_MAX_INTERMEDIATES: Final = 8


def _ca_key_usage(policy: xv.Policy, certificate: x509.Certificate, key_usage: x509.KeyUsage | None) -> None:
    del policy, certificate
    if key_usage is not None and not key_usage.key_cert_sign:
        raise ValueError("CA keyUsage does not assert keyCertSign")


_CA_POLICY: Final = (
    xv.ExtensionPolicy.webpki_defaults_ca()
    .may_be_present(x509.KeyUsage, xv.Criticality.AGNOSTIC, _ca_key_usage)
    .may_be_present(x509.AuthorityKeyIdentifier, xv.Criticality.NON_CRITICAL, None)
)
_EE_POLICY: Final = (
    xv.ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, xv.Criticality.AGNOSTIC, None)
    .may_be_present(x509.AuthorityKeyIdentifier, xv.Criticality.NON_CRITICAL, None)
)


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedClient:
    """A client certificate that chains to one of the hostname's anchors at the given time."""

    chain: tuple[x509.Certificate, ...]
    """Leaf first, the trust anchor last (a single element when the leaf is itself an anchor)."""
    anchor: x509.Certificate

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def _utc(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(dt.UTC).replace(microsecond=0)


class ClientVerifier:
    """Verifies client certificates against a fixed set of trust anchors.

    Build one per hostname trust set (per snapshot) and reuse it: it keeps the underlying
    ``cryptography`` verifier for the last second it was asked about, so the per-call cost is
    the path building alone. Safe to share between threads (the cache is one atomic reference).
    """

    __slots__ = ("_cached", "_max_chain_depth", "_max_intermediates", "_store", "anchors")

    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        *,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
        max_intermediates: int = DEFAULT_MAX_INTERMEDIATES,
    ) -> None:
        if isinstance(anchors, x509.Certificate) or not anchors:
            raise ValueError("a ClientVerifier needs at least one trust anchor")
        if not all(isinstance(a, x509.Certificate) for a in anchors):
            raise TypeError("trust anchors must be cryptography x509.Certificate objects")
        if not 0 <= max_chain_depth <= 16 or max_intermediates < 0:
            raise ValueError("max_chain_depth must be in 0..16 and max_intermediates >= 0")
        self.anchors: tuple[x509.Certificate, ...] = tuple(anchors)
        self._store = xv.Store(list(self.anchors))
        self._max_chain_depth = max_chain_depth
        self._max_intermediates = max_intermediates
        self._cached: tuple[dt.datetime, xv.ClientVerifier] | None = None

    def _verifier(self, now: dt.datetime) -> xv.ClientVerifier:
        cached = self._cached
        if cached is not None and cached[0] == now:
            return cached[1]
        verifier = (
            xv.PolicyBuilder()
            .store(self._store)
            .time(now)
            .max_chain_depth(self._max_chain_depth)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        self._cached = (now, verifier)
        return verifier

    def verify(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        now: dt.datetime,
    ) -> VerifiedClient:
        """Return the verified chain or raise :class:`ClientCertificateRejected`.

        Validity is checked on the leaf first so that the reason is exact: ``expired`` after
        notAfter, ``not_yet_valid`` before notBefore, both boundaries inclusive (valid at
        exactly notAfter). Every other failure is ``untrusted`` (no path to an anchor, wrong
        EKU, an expired intermediate or anchor, a CA certificate presented as the leaf, ...),
        or ``invalid`` when the certificates cannot even be processed.
        """
        at = _utc(now)
        if len(intermediates) > self._max_intermediates:
            raise ClientCertificateRejected(
                "invalid",
                detail=f"{len(intermediates)} intermediates sent; at most {self._max_intermediates}",
            )
        try:
            not_after = leaf.not_valid_after_utc
            not_before = leaf.not_valid_before_utc
        except Exception as exc:  # a certificate object that cannot report its validity
            raise ClientCertificateRejected("invalid", detail=str(exc)) from None
        if at > not_after:
            raise ClientCertificateRejected("expired", detail=f"notAfter {not_after.isoformat()}")
        if at < not_before:
            raise ClientCertificateRejected("not_yet_valid", detail=f"notBefore {not_before.isoformat()}")
        try:
            result = self._verifier(at).verify(leaf, list(intermediates))
        except xv.VerificationError as exc:
            raise ClientCertificateRejected("untrusted", detail=str(exc)) from None
        except Exception as exc:  # fail closed: anything the library cannot process is refused
            raise ClientCertificateRejected("invalid", detail=f"{type(exc).__name__}: {exc}") from None
        chain = tuple(result.chain)
        return VerifiedClient(chain=chain, anchor=chain[-1])

    def verify_der(
        self,
        leaf_der: bytes,
        intermediates_der: Sequence[bytes] = (),
        *,
        now: dt.datetime,
    ) -> VerifiedClient:
        """:meth:`verify` for DER bytes as they come off a TLS connection; garbage is ``invalid``."""
        if len(intermediates_der) > self._max_intermediates:
            raise ClientCertificateRejected(
                "invalid",
                detail=f"{len(intermediates_der)} intermediates sent; at most {self._max_intermediates}",
            )
        try:
            leaf = load_der_certificate(leaf_der)
            intermediates = [load_der_certificate(der) for der in intermediates_der if der != leaf_der]
        except PKIError as exc:
            raise ClientCertificateRejected("invalid", detail=exc.message) from None
        return self.verify(leaf, intermediates, now=now)
