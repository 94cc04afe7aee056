"""Certificate signing requests: parse and validate what a caller sends to be signed.

A CSR that leaves :func:`load_csr` has a valid self-signature (proof that the sender holds the
private key), an allowed client key, a SHA-256-or-stronger signature, parseable extensions and
a subject or subjectAltName to put in the certificate. Nothing else in it is trusted: the
issuer copies only the subject and the subjectAltName (see ``authority.py``).
"""

from __future__ import annotations

from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyPurpose, check_public_key
from certgate.pki.pem import PARSE_ERRORS, der_bytes, load_der_certificate, split_pem
from certgate.pki.profiles import DEFAULT_MAX_CSR_BYTES

CSR_LABELS: Final = frozenset({"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"})
#: Hashes accepted in a CSR's signature (and, in ``custom_ca.py``, a CA's).
STRONG_HASHES: Final = frozenset({"sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"})


def _size(data: str | bytes) -> int:
    return len(data.encode("utf-8")) if isinstance(data, str) else len(data)


def _csr_der(data: str | bytes) -> bytes:
    """The DER of the single CSR in ``data``, with a precise reason for every wrong shape."""
    if not data.strip():
        raise PKIError("no CSR was given", reason="csr.empty")
    try:
        blocks = split_pem(data)
    except PKIError as exc:
        raise PKIError(f"the CSR is not valid PEM: {exc.message}", reason="csr.malformed") from None
    if not blocks:
        der = der_bytes(data)
        if der is None:
            raise PKIError(
                "no PEM block -----BEGIN CERTIFICATE REQUEST----- was found", reason="csr.malformed"
            )
        return der
    requests = []
    for label, der in blocks:
        if "PRIVATE KEY" in label:
            raise PKIError(
                "this is a private key, not a CSR; never send your private key, "
                "send the certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)",
                reason="csr.is_private_key",
            )
        if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
            raise PKIError(
                "this is a certificate, not a certificate signing request", reason="csr.is_certificate"
            )
        if label not in CSR_LABELS:
            raise PKIError(
                f"expected a CERTIFICATE REQUEST PEM block, found {label!r}", reason="csr.malformed"
            )
        requests.append(der)
    if len(requests) != 1:
        raise PKIError(f"expected exactly one CSR, found {len(requests)}", reason="csr.multiple")
    return requests[0]


def _parse(der: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_der_x509_csr(der)
        # Extensions and names are decoded lazily; force it so a broken CSR fails here, with
        # our reason, instead of later inside issuance.
        _ = csr.extensions
        _ = csr.subject.rfc4514_string()
        return csr
    except PARSE_ERRORS:
        pass
    try:
        load_der_certificate(der)
    except PKIError:
        raise PKIError("the CSR's DER encoding cannot be parsed", reason="csr.malformed") from None
    raise PKIError("this is a certificate, not a certificate signing request", reason="csr.is_certificate")


def _public_key(csr: x509.CertificateSigningRequest) -> CertificatePublicKeyTypes:
    try:
        return csr.public_key()
    except UnsupportedAlgorithm:
        raise PKIError(
            "the CSR's public key algorithm is not supported", reason="key.unsupported_type"
        ) from None
    except ValueError:
        raise PKIError("the CSR's public key is invalid", reason="key.malformed") from None


def check_csr_key(csr: x509.CertificateSigningRequest) -> CertificatePublicKeyTypes:
    """The key policy alone: cheap, and what decides what may go into a certificate. Returns
    the CSR's public key (each ``csr.public_key()`` decodes it anew)."""
    public_key = _public_key(csr)
    check_public_key(public_key, KeyPurpose.CLIENT)
    return public_key


def check_csr(csr: x509.CertificateSigningRequest) -> None:
    """Everything :func:`load_csr` checks after parsing, for a CSR object obtained another way."""
    check_csr_key(csr)
    try:
        hash_algorithm = csr.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError):
        hash_algorithm = None
    if hash_algorithm is None or hash_algorithm.name not in STRONG_HASHES:
        name = hash_algorithm.name.upper() if hash_algorithm is not None else "an unsupported algorithm"
        raise PKIError(
            f"the CSR is signed with {name}; sign it with SHA-256 or stronger", reason="csr.weak_signature"
        )
    try:
        valid = csr.is_signature_valid
    except (UnsupportedAlgorithm, ValueError):
        valid = False
    if not valid:
        raise PKIError(
            "the CSR's signature does not verify with its own public key", reason="csr.bad_signature"
        )
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if len(csr.subject) == 0 and not san:
        raise PKIError("the CSR has neither a subject nor a subjectAltName", reason="csr.empty_subject")


def load_csr(data: str | bytes, *, max_bytes: int = DEFAULT_MAX_CSR_BYTES) -> x509.CertificateSigningRequest:
    """Parse one CSR (PEM, or DER bytes) and validate it for issuance; raise ``csr.*``/``key.*``."""
    if not isinstance(data, str | bytes):
        raise PKIError("the CSR must be text", reason="csr.malformed")
    size = _size(data)
    if size > max_bytes:
        raise PKIError(f"the CSR is {size} bytes; the limit is {max_bytes}", reason="csr.too_large")
    csr = _parse(_csr_der(data))
    check_csr(csr)
    return csr
