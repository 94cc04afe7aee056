"""The X.509 core of certgate: keys, PEM, CSRs, issuance, CRLs, custom-CA checks, verification.

Pure: imports only the standard library and ``cryptography``; never reads the clock, the
environment or the disk. Callers pass ``now``. Bad input raises :class:`PKIError` (an
``InvalidArgument``) with a dotted ``reason`` from :data:`PKI_REASONS`; the edge's verdicts
raise :class:`ClientCertificateRejected`.
"""

from certgate.pki.authority import (
    CertificateAuthority,
    IssuedCertificate,
    create_certificate_authority,
)
from certgate.pki.csr import check_csr, load_csr
from certgate.pki.custom_ca import validate_custom_ca
from certgate.pki.describe import CertificateFacts, describe_certificate
from certgate.pki.errors import PKI_REASONS, ClientCertificateRejected, PKIError, RejectionReason
from certgate.pki.keys import (
    KeyPurpose,
    KeyType,
    PrivateKey,
    check_public_key,
    generate_private_key,
    load_private_key_pem,
    private_key_to_pem,
    public_key_algorithm,
)
from certgate.pki.pem import (
    certificate_to_der,
    certificate_to_pem,
    fingerprint_sha256,
    load_certificate,
    load_certificates,
    split_pem,
)
from certgate.pki.profiles import (
    DEFAULT_CLIENT_PROFILE,
    ClientCertificateProfile,
    validate_validity_days,
)
from certgate.pki.revocation import build_crl, load_crl, revoked_serials
from certgate.pki.verify import ClientVerifier, VerifiedClient

__all__ = [
    "DEFAULT_CLIENT_PROFILE",
    "PKI_REASONS",
    "CertificateAuthority",
    "CertificateFacts",
    "ClientCertificateProfile",
    "ClientCertificateRejected",
    "ClientVerifier",
    "IssuedCertificate",
    "KeyPurpose",
    "KeyType",
    "PKIError",
    "PrivateKey",
    "RejectionReason",
    "VerifiedClient",
    "build_crl",
    "certificate_to_der",
    "certificate_to_pem",
    "check_csr",
    "check_public_key",
    "create_certificate_authority",
    "describe_certificate",
    "fingerprint_sha256",
    "generate_private_key",
    "load_certificate",
    "load_certificates",
    "load_crl",
    "load_csr",
    "load_private_key_pem",
    "private_key_to_pem",
    "public_key_algorithm",
    "revoked_serials",
    "split_pem",
    "validate_custom_ca",
    "validate_validity_days",
]
