"""Errors of the X.509 core.

Two families, because they answer different callers:

* :class:`PKIError` is bad *input* (a CSR, an uploaded CA, a key type, a validity) refused by
  policy. It is an :class:`~certgate.errors.InvalidArgument`, so the API reports it as the
  caller's mistake. Its dotted ``reason`` names the exact rule broken; :data:`PKI_REASONS` is the
  catalogue, so the API's error table and docs can be checked against it.
* :class:`ClientCertificateRejected` is the edge's verdict on a presented client certificate. It
  is not the API caller's mistake, so it roots directly at :class:`~certgate.errors.CertGateError`.

Messages are written for API users: they say what is wrong and what to do, and never echo
attacker-controlled bytes or library internals (those go to ``details`` for logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from certgate.errors import CertGateError, InvalidArgument

#: Every ``reason`` a :class:`PKIError` can carry, with what it means.
PKI_REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # keys.py
        "key.unsupported_type": "the key algorithm (or key type name) is not supported",
        "key.rsa_too_small": "the RSA key is shorter than 2048 bits",
        "key.rsa_too_large": "the RSA key is longer than 8192 bits",
        "key.unsupported_curve": "the elliptic curve is not allowed for this purpose",
        "key.malformed": "a key cannot be parsed or is mathematically invalid",
        "key.encrypted": "the private key PEM is password-protected",
        # pem.py
        "pem.empty": "no PEM block and no DER data were found",
        "pem.malformed": "a PEM block is broken (markers, base64) or its DER does not parse",
        "pem.wrong_type": "the PEM block holds something else than what was expected",
        "pem.multiple_certificates": "more than one certificate where exactly one is expected",
        "pem.contains_private_key": "a private key was sent where only certificates belong",
        # csr.py
        "csr.too_large": "the CSR is larger than the configured limit",
        "csr.empty": "no CSR was found in the input",
        "csr.malformed": "the CSR's PEM or DER cannot be parsed",
        "csr.is_certificate": "a certificate was sent where a CSR is expected",
        "csr.is_private_key": "a private key was sent where a CSR is expected",
        "csr.multiple": "more than one CSR in the input",
        "csr.bad_signature": "the CSR's self-signature does not verify",
        "csr.weak_signature": "the CSR is signed with a hash weaker than SHA-256",
        "csr.empty_subject": "the CSR has neither a subject nor a subjectAltName",
        # profiles.py / authority.py
        "validity.out_of_range": "ValidityDays is outside the allowed range",
        "validity.not_an_integer": "ValidityDays is not an integer",
        "validity.exceeds_issuer": "the certificate would outlive the CA that issues it",
        "issuer.not_valid": "the issuing CA is expired or not yet valid",
        "name.invalid": "a common name, organization or hostname is empty, too long or malformed",
        # revocation.py
        "crl.malformed": "the CRL cannot be parsed",
        "crl.wrong_issuer": "the CRL names another issuer",
        "crl.bad_signature": "the CRL's signature does not verify with the issuer's key",
        # custom_ca.py
        "ca.too_large": "the uploaded CA is larger than the configured limit",
        "ca.empty": "no certificate was found in the upload",
        "ca.malformed": "the uploaded certificate cannot be parsed or is structurally invalid",
        "ca.multiple_certificates": "the upload holds more than one certificate",
        "ca.contains_private_key": "the upload holds a private key",
        "ca.not_a_ca": "the certificate has no basicConstraints or CA:FALSE",
        "ca.no_cert_sign": "the certificate's keyUsage does not allow signing certificates",
        "ca.no_client_auth": "the certificate's extendedKeyUsage excludes clientAuth",
        "ca.unusable_extension": "an extension would make every client certificate fail verification",
        "ca.bad_signature": "the self-signed certificate's signature does not verify",
        "ca.expired": "the CA certificate has expired",
        "ca.not_yet_valid": "the CA certificate is not valid yet",
        "ca.weak_signature": "the CA certificate is signed with SHA-1, MD5 or another weak hash",
    }
)

RejectionReason = Literal["untrusted", "expired", "not_yet_valid", "invalid"]
REJECTION_REASONS: Final[frozenset[str]] = frozenset(get_args(RejectionReason))

_REJECTION_MESSAGES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "untrusted": "the client certificate does not chain to a CA trusted for this hostname",
        "expired": "the client certificate has expired",
        "not_yet_valid": "the client certificate is not valid yet",
        "invalid": "the client certificate could not be parsed or checked",
    }
)


class PKIError(InvalidArgument):
    """Input refused by the X.509 core; ``reason`` is one of :data:`PKI_REASONS`."""

    default_reason = "pki.invalid"

    def __init__(self, message: str, *, reason: str, **details: Any) -> None:
        if reason not in PKI_REASONS:
            # A typo here would silently escape the API's error table; fail where it is written.
            raise ValueError(f"unknown PKI error reason {reason!r}")
        super().__init__(message, reason=reason, **details)


class ClientCertificateRejected(CertGateError):
    """The edge's verdict that a presented client certificate is not acceptable.

    ``reason`` is one of ``untrusted``, ``expired``, ``not_yet_valid``, ``invalid``; ``detail``
    carries the verifier's own explanation for logs (it may quote certificate contents).
    """

    default_reason = "untrusted"

    def __init__(self, reason: RejectionReason, message: str | None = None, *, detail: str = "") -> None:
        if reason not in REJECTION_REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(message or _REJECTION_MESSAGES[reason], reason=reason, detail=detail)
        self.detail = detail
