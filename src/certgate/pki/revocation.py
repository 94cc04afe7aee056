"""Certificate revocation lists for the managed CA, and loading CRLs checked against an issuer.

The edge does not need CRLs (it gets revoked serials in its snapshot and checks them with a set
lookup); CRLs are for anyone else who wants the managed CA's revocations in the standard form.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certgate.pki.authority import CertificateAuthority, signing_hash, utc_seconds
from certgate.pki.errors import PKIError
from certgate.pki.pem import PARSE_ERRORS, der_bytes, split_pem


def build_crl(
    ca: CertificateAuthority,
    revoked: Iterable[tuple[int, dt.datetime]],
    *,
    now: dt.datetime,
    next_update: dt.datetime,
    crl_number: int | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` listing ``(serial, revoked_at)`` pairs, in serial order.

    ``crl_number`` must grow with every CRL the CA publishes (RFC 5280 §5.2.3); by default it
    is ``now`` in Unix seconds, which grows as long as the caller's clock does.
    """
    this_update = utc_seconds(now)
    next_at = utc_seconds(next_update)
    if next_at <= this_update:
        raise ValueError("next_update must be after now")
    number = int(this_update.timestamp()) if crl_number is None else crl_number
    if isinstance(number, bool) or not isinstance(number, int) or number < 0 or number.bit_length() > 159:
        raise ValueError("crl_number must be a non-negative int of at most 20 octets")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(this_update)
        .next_update(next_at)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(ca.authority_key_identifier(), critical=False)
    )
    seen: set[int] = set()
    for serial, revoked_at in sorted(revoked, key=lambda item: item[0]):
        if serial in seen:
            continue  # one entry per serial; duplicates would only bloat the list
        seen.add(serial)
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(utc_seconds(revoked_at))
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca.private_key, signing_hash(ca.private_key))


def load_crl(data: str | bytes, issuer: x509.Certificate) -> x509.CertificateRevocationList:
    """Parse a CRL (PEM or DER) and check that ``issuer`` signed it; raise ``crl.*``."""
    try:
        blocks = split_pem(data)
    except PKIError as exc:
        raise PKIError(f"the CRL is not valid PEM: {exc.message}", reason="crl.malformed") from None
    if blocks:
        if len(blocks) != 1 or blocks[0][0] != "X509 CRL":
            raise PKIError("expected exactly one X509 CRL PEM block", reason="crl.malformed")
        der: bytes | None = blocks[0][1]
    else:
        der = der_bytes(data)
    if der is None:
        raise PKIError("no CRL was found", reason="crl.malformed")
    try:
        crl = x509.load_der_x509_crl(der)
    except PARSE_ERRORS:
        raise PKIError("the CRL's DER encoding cannot be parsed", reason="crl.malformed") from None
    if crl.issuer != issuer.subject:
        raise PKIError("the CRL was issued by another CA", reason="crl.wrong_issuer")
    try:
        public_key = issuer.public_key()
        valid = isinstance(
            public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
        ) and crl.is_signature_valid(public_key)
    except (UnsupportedAlgorithm, ValueError, TypeError):
        valid = False
    if not valid:
        raise PKIError(
            "the CRL's signature does not verify with the issuer's key", reason="crl.bad_signature"
        )
    return crl


def revoked_serials(crl: x509.CertificateRevocationList) -> frozenset[int]:
    """The serial numbers a CRL revokes, for O(1) lookups."""
    return frozenset(entry.serial_number for entry in crl)
