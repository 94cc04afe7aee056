"""Validation of a custom (bring-your-own) client CA upload (PRODUCT §3).

A CA that passes here is one the edge's verifier (``verify.py``) will actually use as a trust
anchor: every rule that verifier applies to an anchor is checked here first, each with its own
reason, so that an upload is refused with a clear message instead of silently trusting nobody.
The CA may be a root or an intermediate; it need not be self-signed.

Quotas and duplicates are the service's business, not this module's.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID

from certgate.pki.authority import utc_seconds
from certgate.pki.csr import STRONG_HASHES
from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyPurpose, check_public_key
from certgate.pki.pem import CERTIFICATE_LABELS, PARSE_ERRORS, load_der_certificate, split_pem
from certgate.pki.profiles import DEFAULT_MAX_CA_BYTES
from certgate.pki.verify import CA_EXTENSION_CRITICALITY

_ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")


def _the_certificate(data: str | bytes) -> x509.Certificate:
    if not data.strip():
        raise PKIError("no certificate was given", reason="ca.empty")
    try:
        blocks = split_pem(data)
    except PKIError as exc:
        raise PKIError(f"the CA certificate is not valid PEM: {exc.message}", reason="ca.malformed") from None
    if not blocks:
        raise PKIError("no PEM certificate (-----BEGIN CERTIFICATE-----) was found", reason="ca.malformed")
    if any("PRIVATE KEY" in label for label, _ in blocks):
        raise PKIError(
            "the upload contains a private key; upload only the CA certificate and keep its key secret",
            reason="ca.contains_private_key",
        )
    for label, _ in blocks:
        if label not in CERTIFICATE_LABELS:
            raise PKIError(f"expected a CERTIFICATE PEM block, found {label!r}", reason="ca.malformed")
    if len(blocks) != 1:
        raise PKIError(
            f"upload exactly one CA certificate; found {len(blocks)} (upload each CA separately)",
            reason="ca.multiple_certificates",
        )
    try:
        certificate = load_der_certificate(blocks[0][1])
    except PKIError as exc:
        raise PKIError(exc.message, reason="ca.malformed") from None
    try:
        _ = certificate.extensions  # decoded lazily: force it so that broken ones fail here
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
    except PARSE_ERRORS:
        raise PKIError(
            "the certificate's extensions or names cannot be parsed", reason="ca.malformed"
        ) from None
    return certificate


def _check_structure(certificate: x509.Certificate) -> None:
    # The verifier refuses anchors with an empty issuer. (Negative serials, which it refuses
    # too, already fail to parse in ``cryptography``.)
    if len(certificate.issuer) == 0:
        raise PKIError("the certificate has an empty issuer name", reason="ca.malformed")


def _check_extensions(certificate: x509.Certificate) -> None:
    extensions = certificate.extensions
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.value.ca:
        raise PKIError(
            "this is not a CA certificate: it needs basicConstraints CA:TRUE", reason="ca.not_a_ca"
        )
    for extension in extensions:
        name = getattr(extension.oid, "_name", extension.oid.dotted_string)
        if extension.oid not in CA_EXTENSION_CRITICALITY:
            if extension.critical:
                raise PKIError(
                    f"the certificate has a critical extension that certgate cannot process ({name})",
                    reason="ca.unusable_extension",
                )
            continue
        expected = CA_EXTENSION_CRITICALITY[extension.oid]
        if expected is not None and expected != extension.critical:
            wanted = "critical" if expected else "non-critical"
            raise PKIError(f"the {name} extension must be {wanted}", reason="ca.unusable_extension")
    try:
        key_usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is not None and not key_usage.key_cert_sign:
        raise PKIError(
            "the certificate's keyUsage does not include keyCertSign, so it cannot sign client certificates",
            reason="ca.no_cert_sign",
        )
    try:
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku and _ANY_EKU not in eku:
        raise PKIError(
            "the certificate's extendedKeyUsage does not allow clientAuth", reason="ca.no_client_auth"
        )


def _check_signature(certificate: x509.Certificate) -> None:
    try:
        hash_algorithm = certificate.signature_hash_algorithm
        unsupported = False
    except (UnsupportedAlgorithm, ValueError):
        hash_algorithm, unsupported = None, True
    # Ed25519/Ed448 have no separate hash (None) and are strong; anything else needs SHA-256+.
    if unsupported or (hash_algorithm is not None and hash_algorithm.name not in STRONG_HASHES):
        shown = hash_algorithm.name.upper() if hash_algorithm is not None else "an unsupported algorithm"
        raise PKIError(
            f"the CA certificate is signed with {shown}; certgate requires SHA-256 or stronger",
            reason="ca.weak_signature",
        )
    if certificate.subject == certificate.issuer and _self_signed_by_own_key(certificate):
        try:
            certificate.verify_directly_issued_by(certificate)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            raise PKIError(
                "the self-signed CA certificate's signature does not verify; the upload may be corrupted",
                reason="ca.bad_signature",
            ) from None


def _self_signed_by_own_key(certificate: x509.Certificate) -> bool:
    """A self-issued certificate is self-signed unless its AKI names a different key (rollover)."""
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return True
    return aki.key_identifier is None or aki.key_identifier == ski.digest


def validate_custom_ca(
    data: str | bytes, *, now: dt.datetime, max_bytes: int = DEFAULT_MAX_CA_BYTES
) -> x509.Certificate:
    """Check an uploaded client CA; return the certificate or raise ``ca.*``/``key.*``."""
    if not isinstance(data, str | bytes):
        raise PKIError("the CA certificate must be PEM text", reason="ca.malformed")
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise PKIError(f"the CA certificate is {size} bytes; the limit is {max_bytes}", reason="ca.too_large")
    utc_now = utc_seconds(now)
    certificate = _the_certificate(data)
    _check_extensions(certificate)
    _check_structure(certificate)
    try:
        public_key = certificate.public_key()
    except UnsupportedAlgorithm:
        raise PKIError(
            "the CA's public key algorithm is not supported", reason="key.unsupported_type"
        ) from None
    except ValueError:
        raise PKIError("the CA's public key is invalid", reason="key.malformed") from None
    check_public_key(public_key, KeyPurpose.CA)
    _check_signature(certificate)
    # Same boundaries as the verifier: valid on [notBefore, notAfter], both ends included.
    if utc_now > certificate.not_valid_after_utc:
        raise PKIError(
            f"the CA certificate expired on {certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            reason="ca.expired",
        )
    if utc_now < certificate.not_valid_before_utc:
        raise PKIError(
            f"the CA certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
            reason="ca.not_yet_valid",
        )
    return certificate
