"""Plain facts about a certificate, in the shapes the API (ESA) and the edge's rules show.

Total on any parseable certificate: a client may present anything at the edge, so a field
that cannot be decoded becomes empty (``""``/``None``) instead of raising.

``serial_hex`` is the serial number as an integer in lowercase hex without leading zeros
(``format(serial, "x")``; DER's sign-padding byte is never shown), the way ESA shows
``SerialNumber``. Names follow Go's crypto/x509, as ESA's responses do: ``SHA256-RSA``,
``ECDSA-SHA256``, ``RSA``/``ECDSA``. When a name has several CNs, ``common_name`` is the last
one, as in Go's ``pkix.Name.CommonName``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from certgate.pki.keys import public_key_algorithm
from certgate.pki.pem import PARSE_ERRORS

_T = TypeVar("_T", bound=x509.ExtensionType)

_SIGNATURE_NAMES: Final[dict[x509.ObjectIdentifier, str]] = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "MD5-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "SHA1-RSA",
    x509.ObjectIdentifier("1.3.14.3.2.29"): "SHA1-RSA",  # the old OIW sha1WithRSASignature
    SignatureAlgorithmOID.RSA_WITH_SHA224: "SHA224-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "SHA256-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "SHA384-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "SHA512-RSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ECDSA-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ECDSA-SHA224",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ECDSA-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ECDSA-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ECDSA-SHA512",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "DSA-SHA1",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "DSA-SHA256",
    SignatureAlgorithmOID.ED25519: "Ed25519",
    SignatureAlgorithmOID.ED448: "Ed448",
}


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateFacts:
    common_name: str
    subject_dn: str  # RFC 4514
    issuer_dn: str  # RFC 4514
    issuer_common_name: str
    serial_number: int
    serial_hex: str
    fingerprint_sha256: str  # 64 lowercase hex characters of SHA-256(DER)
    signature_algorithm: str  # Go style: "ECDSA-SHA256", "SHA256-RSA", "SHA256-RSAPSS", ...
    public_key_algorithm: str  # "RSA", "ECDSA", "Ed25519", ...
    public_key_bits: int | None  # RSA modulus bits or EC curve size
    san: str  # comma-joined values (DNS, IP, URI, email), in certificate order
    san_values: tuple[str, ...]
    ski: str | None  # subjectKeyIdentifier, lowercase hex
    issuer_ski: str | None  # authorityKeyIdentifier's keyIdentifier, lowercase hex
    not_before: dt.datetime  # aware, UTC
    not_after: dt.datetime  # aware, UTC
    is_ca: bool


def _name(read: Callable[[], x509.Name]) -> tuple[x509.Name, str]:
    """The name and its RFC 4514 form; undecodable names (they decode lazily) become empty."""
    try:
        name = read()
        return name, name.rfc4514_string()
    except PARSE_ERRORS:
        return x509.Name([]), ""


def _last_cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = values[-1].value if values else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _issuer_der(der: bytes) -> bytes | None:
    """The issuer Name's TLV in a certificate's DER, or None if the walk meets anything unexpected.

    Certificate = SEQUENCE { TBSCertificate = SEQUENCE { [0] version OPTIONAL, serialNumber
    INTEGER, signature SEQUENCE, issuer SEQUENCE, ... } ... }. Only a key for _ISSUER_NAMES.
    """
    try:
        pos = 0
        for _ in range(2):  # into the Certificate, then into the TBSCertificate
            if der[pos] != 0x30:
                return None
            pos = _header(der, pos)[0]
        if der[pos] == 0xA0:  # [0] version, absent in v1 certificates
            pos = _header(der, pos)[1]
        for tag in (0x02, 0x30):  # serialNumber, signature
            if der[pos] != tag:
                return None
            pos = _header(der, pos)[1]
        if der[pos] != 0x30:
            return None
        return der[pos : _header(der, pos)[1]]
    except IndexError:
        return None


def _header(der: bytes, pos: int) -> tuple[int, int]:
    """Where the value of the DER element at ``pos`` starts and where the element ends."""
    length = der[pos + 1]
    start = pos + 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4:
            raise IndexError("not a DER length")
        length = int.from_bytes(der[start : start + size], "big")
        start += size
    if start + length > len(der):
        raise IndexError("element runs past the end")
    return start, start + length


# The issuer's RFC 4514 form and CN by the issuer Name's DER: a pure function of those bytes,
# remembered because parsing a Name into Python objects and rendering it is ~a fifth of this
# module's cost, and a service or an edge sees the same few issuers again and again.
_ISSUER_NAMES: dict[bytes, tuple[str, str]] = {}
_ISSUER_NAMES_MAX = 256


def _issuer_facts(certificate: x509.Certificate, der: bytes) -> tuple[str, str]:
    key = _issuer_der(der)
    cached = _ISSUER_NAMES.get(key) if key is not None else None
    if cached is not None:
        return cached
    issuer, issuer_dn = _name(lambda: certificate.issuer)
    facts = (issuer_dn, _last_cn(issuer))
    if key is not None:
        if len(_ISSUER_NAMES) >= _ISSUER_NAMES_MAX:
            _ISSUER_NAMES.clear()
        _ISSUER_NAMES[key] = facts
    return facts


def signature_algorithm_name(certificate: x509.Certificate) -> str:
    """Go crypto/x509 name of the signature algorithm; the dotted OID when it has none."""
    oid = certificate.signature_algorithm_oid
    if oid == SignatureAlgorithmOID.RSASSA_PSS:
        try:
            hash_algorithm = certificate.signature_hash_algorithm
        except Exception:  # unsupported PSS parameters
            hash_algorithm = None
        return f"{hash_algorithm.name.upper()}-RSAPSS" if hash_algorithm is not None else "RSAPSS"
    return signature_oid_name(oid)


def signature_oid_name(oid: x509.ObjectIdentifier) -> str:
    """Go crypto/x509 name of a signature algorithm OID other than RSASSA-PSS (whose name
    depends on its parameters); the dotted OID when it has none."""
    return _SIGNATURE_NAMES.get(oid, oid.dotted_string)


def _san_values(san: x509.SubjectAlternativeName | None) -> tuple[str, ...]:
    if san is None:
        return ()
    values: list[str] = []
    for general_name in san:
        if isinstance(general_name, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
            values.append(general_name.value)
        elif isinstance(general_name, x509.IPAddress):
            values.append(str(general_name.value))
    return tuple(values)


def describe_certificate(certificate: x509.Certificate) -> CertificateFacts:
    """The :class:`CertificateFacts` of ``certificate``; never raises on a parsed certificate."""
    # One pass over the extensions instead of a lookup per kind.
    found: dict[type[x509.ExtensionType], x509.ExtensionType] = {}
    try:
        for item in certificate.extensions:
            found[type(item.value)] = item.value
    except PARSE_ERRORS:  # duplicate or undecodable extensions: report none rather than fail
        found = {}

    def extension(kind: type[_T]) -> _T | None:
        value = found.get(kind)
        return value if isinstance(value, kind) else None

    try:
        public_key = certificate.public_key()
        algorithm = public_key_algorithm(public_key)
        bits = _key_bits(public_key)
    except Exception:  # an algorithm cryptography cannot load (GOST, SM2, ...)
        algorithm, bits = "unknown", None
    ski = extension(x509.SubjectKeyIdentifier)
    aki = extension(x509.AuthorityKeyIdentifier)
    constraints = extension(x509.BasicConstraints)
    san = _san_values(extension(x509.SubjectAlternativeName))
    serial = certificate.serial_number
    subject, subject_dn = _name(lambda: certificate.subject)
    der = certificate.public_bytes(serialization.Encoding.DER)
    issuer_dn, issuer_common_name = _issuer_facts(certificate, der)
    return CertificateFacts(
        common_name=_last_cn(subject),
        subject_dn=subject_dn,
        issuer_dn=issuer_dn,
        issuer_common_name=issuer_common_name,
        serial_number=serial,
        serial_hex=format(serial, "x"),
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        signature_algorithm=signature_algorithm_name(certificate),
        public_key_algorithm=algorithm,
        public_key_bits=bits,
        san=",".join(san),
        san_values=san,
        ski=ski.digest.hex() if ski is not None else None,
        issuer_ski=aki.key_identifier.hex() if aki is not None and aki.key_identifier is not None else None,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        is_ca=constraints is not None and constraints.ca,
    )


# -- what an issuer already knows ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class IssuerFacts:
    """The facts every certificate one CA signs has in common (its issuer and signature)."""

    issuer_dn: str
    issuer_common_name: str
    issuer_ski: str | None
    signature_algorithm: str

    @classmethod
    def of(
        cls, issuer: x509.Name, aki: x509.AuthorityKeyIdentifier, signature: x509.ObjectIdentifier
    ) -> IssuerFacts:
        """For certificates signed with issuer name ``issuer``, AKI ``aki`` and the (non-PSS)
        signature algorithm ``signature``."""
        name, dn = _name(lambda: issuer)
        key_id = aki.key_identifier
        key_hex = None if key_id is None else key_id.hex()
        return cls(dn, _last_cn(name), key_hex, signature_oid_name(signature))


def describe_issued(
    der: bytes,
    *,
    issuer: IssuerFacts,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    san: x509.SubjectAlternativeName | None,
    ski: x509.SubjectKeyIdentifier | None,
    is_ca: bool = False,
) -> CertificateFacts:
    """:func:`describe_certificate` of a certificate just signed, from the values it was built
    with instead of parsing it back (a fifth of an issuance's cost in a service).

    ``der`` is the new certificate's DER (for the fingerprint); the datetimes are aware UTC with
    whole seconds (what was encoded). The result equals ``describe_certificate`` of the same
    certificate: ``tests/pki/test_describe.py`` compares both for every key type and shape.
    """
    algorithm = public_key_algorithm(public_key)
    bits = _key_bits(public_key)
    name, subject_dn = _name(lambda: subject)
    san_values = _san_values(san)
    return CertificateFacts(
        common_name=_last_cn(name),
        subject_dn=subject_dn,
        issuer_dn=issuer.issuer_dn,
        issuer_common_name=issuer.issuer_common_name,
        serial_number=serial,
        serial_hex=format(serial, "x"),
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        signature_algorithm=issuer.signature_algorithm,
        public_key_algorithm=algorithm,
        public_key_bits=bits,
        san=",".join(san_values),
        san_values=san_values,
        ski=ski.digest.hex() if ski is not None else None,
        issuer_ski=issuer.issuer_ski,
        not_before=not_before,
        not_after=not_after,
        is_ca=is_ca,
    )


def _key_bits(public_key: object) -> int | None:
    """RSA modulus or EC curve size in bits; None for other key types."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.curve.key_size
    return None
