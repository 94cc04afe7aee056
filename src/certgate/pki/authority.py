"""Certificate authorities: create a managed CA, issue client and edge server certificates.

Pure: every function takes ``now`` and never looks at a clock; the only randomness is key
generation and the serial number (``x509.random_serial_number``: 159 random bits). The
certificate profile of PRODUCT §2 lives here and nowhere else.

Issued certificates start ``profile.backdate`` (default 60 s) before ``now`` so that machines
whose clock lags a little already accept them; they end exactly ``validity_days`` after ``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Sequence
from typing import Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from certgate.pki.csr import check_csr_key
from certgate.pki.describe import CertificateFacts, IssuerFacts, describe_issued
from certgate.pki.errors import PKIError
from certgate.pki.keys import KeyPurpose, KeyType, PrivateKey, check_public_key, generate_private_key
from certgate.pki.profiles import (
    DEFAULT_BACKDATE,
    DEFAULT_CA_VALIDITY_DAYS,
    DEFAULT_CLIENT_PROFILE,
    ClientCertificateProfile,
    validate_validity_days,
)

#: Serial numbers are positive and below 2**159 so that their DER encoding fits in 20 octets.
SERIAL_LIMIT: Final = 1 << 159
_MAX_NAME: Final = 64  # RFC 5280 ub-common-name / ub-organization-name
_MAX_HOSTNAME: Final = 253


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A new certificate, its facts (what :func:`~certgate.pki.describe.describe_certificate`
    would say, known without parsing it back) and, when certgate made the key pair, its private
    key (shown once)."""

    certificate: x509.Certificate
    facts: CertificateFacts = dataclasses.field(repr=False)
    private_key: PrivateKey | None = dataclasses.field(default=None, repr=False)


def utc_seconds(now: dt.datetime) -> dt.datetime:
    """``now`` in UTC, truncated to whole seconds; a naive datetime is a programming error."""
    if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    # X.509 times have whole seconds; truncate here so that what we return is what we encode.
    return now.astimezone(dt.UTC).replace(microsecond=0)


def _serial(serial: int | None) -> int:
    if serial is None:
        return x509.random_serial_number()
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 < serial < SERIAL_LIMIT:
        raise ValueError("serial must be an int with 0 < serial < 2**159")
    return serial


def signing_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    """The hash a CA signs with."""
    # Match the hash to the curve's strength (P-384 → SHA-384, P-521 → SHA-512); RSA uses SHA-256.
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size >= 521:
            return hashes.SHA512()
        if key.curve.key_size >= 384:
            return hashes.SHA384()
    return hashes.SHA256()


def _name_attribute(oid: x509.ObjectIdentifier, value: str, what: str) -> x509.NameAttribute[str]:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_NAME or not value.isprintable():
        raise PKIError(f"the {what} must be 1 to {_MAX_NAME} printable characters", reason="name.invalid")
    return x509.NameAttribute(oid, value)


def _usage(*, signature: bool, encipherment: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signature,
        content_commitment=False,
        key_encipherment=encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


_E = TypeVar("_E", bound=x509.ExtensionType)


def _extension(value: _E, *, critical: bool) -> x509.Extension[_E]:
    return x509.Extension(value.oid, critical, value)


# The profile's fixed extensions, built once (they are immutable values).
_CA_KEY_USAGE: Final = _usage(signature=False, encipherment=False, ca=True)
_EC_LEAF_KEY_USAGE: Final = _extension(_usage(signature=True, encipherment=False, ca=False), critical=True)
# RSA keys may also be used for RSA key transport (TLS 1.2 RSA kex, S/MIME); EC keys never are.
_RSA_LEAF_KEY_USAGE: Final = _extension(_usage(signature=True, encipherment=True, ca=False), critical=True)
_LEAF_CONSTRAINTS: Final = _extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
_CLIENT_EKU: Final = _extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
_SERVER_EKU: Final = _extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
_EARLIEST_TIME: Final = dt.datetime(1950, 1, 1, tzinfo=dt.UTC)  # cryptography's lower bound


def _signature_oid(key: PrivateKey) -> x509.ObjectIdentifier:
    """The signature algorithm of what ``key`` signs with :func:`signing_hash`."""
    name = signing_hash(key).name  # "sha256", ...
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {
            "sha256": SignatureAlgorithmOID.ECDSA_WITH_SHA256,
            "sha384": SignatureAlgorithmOID.ECDSA_WITH_SHA384,
            "sha512": SignatureAlgorithmOID.ECDSA_WITH_SHA512,
        }[name]
    return SignatureAlgorithmOID.RSA_WITH_SHA256


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA certificate with its private key. Construction checks that the two belong together."""

    certificate: x509.Certificate
    private_key: PrivateKey = dataclasses.field(repr=False)
    # What every signature needs, taken from the certificate once (each read of a Certificate
    # attribute decodes it anew): the issuer name, the AKI extension, the CA's validity, the
    # hash, and the facts every issued certificate shares.
    _issuer: x509.Name = dataclasses.field(init=False, repr=False, compare=False)
    _aki: x509.Extension[x509.AuthorityKeyIdentifier] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    _validity: tuple[dt.datetime, dt.datetime] = dataclasses.field(init=False, repr=False, compare=False)
    _hash: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 = dataclasses.field(
        init=False, repr=False, compare=False
    )
    _issuer_facts: IssuerFacts = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError("a CA signs with an RSA or ECDSA private key")
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ours = self.private_key.public_key().public_bytes(*spki)
        if ours != self.certificate.public_key().public_bytes(*spki):
            raise ValueError("the private key does not belong to the CA certificate")
        try:
            constraints = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise ValueError("the certificate is not a CA certificate (basicConstraints CA:TRUE)")
        # frozen: set once here
        aki = self.authority_key_identifier()
        issuer = self.certificate.subject
        object.__setattr__(self, "_issuer", issuer)
        object.__setattr__(self, "_aki", _extension(aki, critical=False))
        validity = (self.certificate.not_valid_before_utc, self.certificate.not_valid_after_utc)
        object.__setattr__(self, "_validity", validity)
        object.__setattr__(self, "_hash", signing_hash(self.private_key))
        facts = IssuerFacts.of(issuer, aki, _signature_oid(self.private_key))
        object.__setattr__(self, "_issuer_facts", facts)

    # -- helpers -----------------------------------------------------------------------------

    def authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        """The AKI for what this CA signs: its own SKI (key id only, as CA/B and webpki want)."""
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def _window(self, now: dt.datetime, days: int, backdate: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
        not_before = now - backdate
        not_after = now + dt.timedelta(days=days)
        ca_not_before, ca_not_after = self._validity
        if not ca_not_before <= now <= ca_not_after:
            raise PKIError("the issuing CA is expired or not yet valid", reason="issuer.not_valid")
        if not_after > ca_not_after:
            raise PKIError(
                f"the certificate would outlive its CA, which expires {ca_not_after:%Y-%m-%dT%H:%M:%SZ}; "
                "choose fewer ValidityDays",
                reason="validity.exceeds_issuer",
            )
        # Never start before the CA itself: some verifiers reject that nesting.
        return max(not_before, ca_not_before), not_after

    def _sign(
        self,
        *,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        serial: int,
        window: tuple[dt.datetime, dt.datetime],
        eku: x509.Extension[x509.ExtendedKeyUsage],
        san: x509.SubjectAlternativeName | None,
        private_key: PrivateKey | None,
    ) -> IssuedCertificate:
        if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise TypeError("a client or server certificate is for an RSA or ECDSA key")
        if window[0] < _EARLIEST_TIME or window[1] < window[0]:
            raise ValueError("the validity window must start after 1950 and end after it starts")
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
        extensions: list[x509.Extension[x509.ExtensionType]] = [
            _LEAF_CONSTRAINTS,
            _RSA_LEAF_KEY_USAGE if isinstance(public_key, rsa.RSAPublicKey) else _EC_LEAF_KEY_USAGE,
            eku,
            _extension(ski, critical=False),
            self._aki,
        ]
        if san is not None:
            # RFC 5280 §4.2.1.6: with an empty subject the SAN carries the identity and is critical.
            extensions.append(_extension(san, critical=len(subject) == 0))
        # One constructor call instead of a chain of eleven builder copies; the chain's checks
        # that matter here are above (key type, window) or done by the callers (serial).
        # Times go in as naive UTC, what the chain's setters turn them into.
        builder = x509.CertificateBuilder(
            issuer_name=self._issuer,
            subject_name=subject,
            public_key=public_key,
            serial_number=serial,
            not_valid_before=window[0].replace(tzinfo=None),
            not_valid_after=window[1].replace(tzinfo=None),
            extensions=extensions,
        )
        certificate = builder.sign(self.private_key, self._hash)
        facts = describe_issued(
            certificate.public_bytes(serialization.Encoding.DER),
            issuer=self._issuer_facts,
            subject=subject,
            public_key=public_key,
            serial=serial,
            not_before=window[0],
            not_after=window[1],
            san=san,
            ski=ski,
        )
        return IssuedCertificate(certificate=certificate, facts=facts, private_key=private_key)

    # -- issuance ----------------------------------------------------------------------------

    def issue_client_certificate(
        self,
        *,
        now: dt.datetime,
        validity_days: int,
        csr: x509.CertificateSigningRequest | None = None,
        key_type: KeyType | None = None,
        common_name: str | None = None,
        serial: int | None = None,
        profile: ClientCertificateProfile = DEFAULT_CLIENT_PROFILE,
        private_key: PrivateKey | None = None,
    ) -> IssuedCertificate:
        """Issue a client certificate (PRODUCT §2) from a CSR, or for a key pair made by certgate.

        Exactly one of ``csr``, ``key_type`` (a key pair made here) and ``private_key`` (one the
        caller made with :func:`~certgate.pki.keys.generate_private_key`, e.g. before taking a
        lock, since RSA keys take up to seconds) must be given; the last two with
        ``common_name`` for the subject. A CSR must come from :func:`~certgate.pki.csr.load_csr`,
        which verifies its signature (the proof that the sender holds the key); only its key
        policy is checked again here, because that decides what may go into the certificate,
        and it is cheap.
        """
        if (csr is not None) + (key_type is not None) + (private_key is not None) != 1:
            raise ValueError("give exactly one of csr, key_type and private_key")
        utc_now = utc_seconds(now)
        days = validate_validity_days(validity_days, profile)
        window = self._window(utc_now, days, profile.backdate)
        san: x509.SubjectAlternativeName | None = None
        if csr is not None:
            if common_name is not None:
                raise ValueError("common_name is only for server-generated keys; a CSR brings its subject")
            public_key: CertificatePublicKeyTypes = check_csr_key(csr)
            subject = csr.subject
            try:
                san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            except x509.ExtensionNotFound:
                san = None
        else:
            if common_name is None:
                raise ValueError("a server-generated key needs a common_name for the subject")
            subject = x509.Name([_name_attribute(NameOID.COMMON_NAME, common_name, "common name")])
            if private_key is None:
                assert key_type is not None  # for mypy: guaranteed by the exactly-one check above
                private_key = generate_private_key(key_type)
                public_key = private_key.public_key()
            else:
                if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                    raise TypeError("private_key must be an RSA or ECDSA private key")
                public_key = private_key.public_key()
                check_public_key(public_key, KeyPurpose.CLIENT)
        return self._sign(
            subject=subject,
            public_key=public_key,
            serial=_serial(serial),
            window=window,
            eku=_CLIENT_EKU,
            san=san,
            private_key=private_key,
        )

    def issue_server_certificate(
        self,
        hostnames: Sequence[str],
        *,
        now: dt.datetime,
        validity_days: int,
        key_type: KeyType = KeyType.ECDSA_P256,
        serial: int | None = None,
    ) -> IssuedCertificate:
        """A TLS server certificate for the edge: DNS (or IP) SANs, EKU serverAuth, new key pair.

        The first hostname is also the subject CN when it fits in 64 characters. Hostnames are
        expected normalised (lowercase, punycode) by the caller; only their shape is checked.
        """
        if isinstance(hostnames, str) or not hostnames:
            raise ValueError("hostnames must be a non-empty sequence of names")
        names = [_general_name(h) for h in hostnames]
        utc_now = utc_seconds(now)
        days = validate_validity_days(validity_days)
        window = self._window(utc_now, days, DEFAULT_BACKDATE)
        first = hostnames[0]
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, first)] if len(first) <= _MAX_NAME else []
        )
        private_key = generate_private_key(key_type)
        return self._sign(
            subject=subject,
            public_key=private_key.public_key(),
            serial=_serial(serial),
            window=window,
            eku=_SERVER_EKU,
            san=x509.SubjectAlternativeName(names),
            private_key=private_key,
        )


def _general_name(hostname: str) -> x509.GeneralName:
    if not isinstance(hostname, str):
        raise PKIError("a hostname must be text", reason="name.invalid")
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    labels = hostname.removeprefix("*.").split(".")
    if (
        not hostname.isascii()
        or len(hostname) > _MAX_HOSTNAME
        or not all(label and len(label) <= 63 for label in labels)
        or not all(c.isalnum() or c in "-_" for label in labels for c in label)
    ):
        raise PKIError(f"{hostname[:_MAX_HOSTNAME]!r} is not a valid hostname", reason="name.invalid")
    return x509.DNSName(hostname)


def create_certificate_authority(
    common_name: str,
    *,
    now: dt.datetime,
    key_type: KeyType = KeyType.ECDSA_P256,
    validity_days: int = DEFAULT_CA_VALIDITY_DAYS,
    organization: str | None = None,
) -> CertificateAuthority:
    """A new self-signed root CA: CA:TRUE pathlen 0, keyCertSign+cRLSign, SKI (and AKI = SKI).

    Path length 0 because a managed CA signs end-entity certificates only. ECDSA P-256 by
    default: a signature costs tens of microseconds (RSA-2048: ~1 ms) and every TLS stack the
    feature targets accepts it; RSA keys may still be requested for the CA or for clients.
    """
    if isinstance(validity_days, bool) or not isinstance(validity_days, int) or validity_days < 1:
        raise ValueError("validity_days must be a positive int")
    utc_now = utc_seconds(now)
    attributes = []
    if organization is not None:
        attributes.append(_name_attribute(NameOID.ORGANIZATION_NAME, organization, "organization"))
    attributes.append(_name_attribute(NameOID.COMMON_NAME, common_name, "common name"))
    name = x509.Name(attributes)
    private_key = generate_private_key(key_type)
    public_key = private_key.public_key()
    check_public_key(public_key, KeyPurpose.CA)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(utc_now - DEFAULT_BACKDATE)
        .not_valid_after(utc_now + dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(private_key, signing_hash(private_key))
    )
    return CertificateAuthority(certificate=certificate, private_key=private_key)
