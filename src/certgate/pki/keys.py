"""Key types, key generation, PEM (de)serialisation of private keys, and the key policy.

Owns which public keys certgate accepts for which purpose (PRODUCT §2, §3). Never reads the
disk or the environment; the only randomness is the key generation itself.
"""

from __future__ import annotations

import enum
from typing import Final, TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from certgate.pki.errors import PKIError

#: Private keys certgate makes and signs with.
PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

RSA_PUBLIC_EXPONENT: Final = 65537
RSA_MIN_BITS: Final = 2048
#: Larger moduli buy nothing and make every verification at the edge slower (cost grows ~n²).
RSA_MAX_BITS: Final = 8192


class KeyType(enum.Enum):
    """A key certgate can generate. ``value`` is the canonical spelling."""

    RSA2048 = "RSA2048"
    RSA3072 = "RSA3072"
    RSA4096 = "RSA4096"
    ECDSA_P256 = "ECDSA_P256"
    ECDSA_P384 = "ECDSA_P384"

    @classmethod
    def parse(cls, wire: str) -> KeyType:
        """Accept ESA/console spellings case-insensitively ("RSA", "ECDSA", "ECDSA384", ...)."""
        if not isinstance(wire, str):
            raise PKIError("PkeyType must be a string", reason="key.unsupported_type")
        key = wire.strip().upper().replace("-", "_")
        try:
            return _WIRE_NAMES[key]
        except KeyError:
            shown = (
                wire
                if len(wire) <= 32 and wire.isprintable()
                else wire[:32].encode("unicode_escape").decode()
            )
            raise PKIError(
                f"unsupported key type {shown!r}; "
                "use one of RSA2048, RSA3072, RSA4096, ECDSA (P-256), ECDSA384",
                reason="key.unsupported_type",
            ) from None

    @property
    def algorithm(self) -> str:
        """``"RSA"`` or ``"ECDSA"`` (Go crypto/x509 naming, as ESA shows it)."""
        return "RSA" if self.value.startswith("RSA") else "ECDSA"


_WIRE_NAMES: Final[dict[str, KeyType]] = {
    "RSA": KeyType.RSA2048,
    "RSA2048": KeyType.RSA2048,
    "RSA_2048": KeyType.RSA2048,
    "RSA3072": KeyType.RSA3072,
    "RSA_3072": KeyType.RSA3072,
    "RSA4096": KeyType.RSA4096,
    "RSA_4096": KeyType.RSA4096,
    "EC": KeyType.ECDSA_P256,
    "ECDSA": KeyType.ECDSA_P256,
    "ECDSA256": KeyType.ECDSA_P256,
    "ECDSA_256": KeyType.ECDSA_P256,
    "ECDSA_P256": KeyType.ECDSA_P256,
    "EC_P256": KeyType.ECDSA_P256,
    "P256": KeyType.ECDSA_P256,
    "P_256": KeyType.ECDSA_P256,
    "ECDSA384": KeyType.ECDSA_P384,
    "ECDSA_384": KeyType.ECDSA_P384,
    "ECDSA_P384": KeyType.ECDSA_P384,
    "EC_P384": KeyType.ECDSA_P384,
    "P384": KeyType.ECDSA_P384,
    "P_384": KeyType.ECDSA_P384,
}

_RSA_BITS: Final = {KeyType.RSA2048: 2048, KeyType.RSA3072: 3072, KeyType.RSA4096: 4096}
_CURVES: Final[dict[KeyType, type[ec.EllipticCurve]]] = {
    KeyType.ECDSA_P256: ec.SECP256R1,
    KeyType.ECDSA_P384: ec.SECP384R1,
}


class KeyPurpose(enum.Enum):
    """What a public key will be used for; each purpose has its own allowed set."""

    CLIENT = "client"  # a client certificate's key, from a CSR (PRODUCT §2)
    CA = "ca"  # an uploaded custom CA or a managed CA (PRODUCT §3)
    SERVER = "server"  # an edge server certificate's key (same rules as CA keys)


_ALLOWED_CURVES: Final[dict[KeyPurpose, frozenset[str]]] = {
    KeyPurpose.CLIENT: frozenset({"secp256r1", "secp384r1"}),
    KeyPurpose.CA: frozenset({"secp256r1", "secp384r1", "secp521r1"}),
    KeyPurpose.SERVER: frozenset({"secp256r1", "secp384r1", "secp521r1"}),
}
_CURVE_NAMES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def generate_private_key(key_type: KeyType) -> PrivateKey:
    """A fresh private key of ``key_type`` from the OS CSPRNG (via OpenSSL)."""
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=_RSA_BITS[key_type])
    return ec.generate_private_key(_CURVES[key_type]())


def private_key_to_pem(key: PrivateKey) -> str:
    """PKCS#8, unencrypted: the caller seals it (CA keys) or hands it out once (client keys)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def load_private_key_pem(data: str | bytes) -> PrivateKey:
    """Load an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1) of a type certgate signs with."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except TypeError:
        raise PKIError("the private key is password-protected", reason="key.encrypted") from None
    except UnsupportedAlgorithm:
        raise PKIError(
            "the private key's algorithm is not supported", reason="key.unsupported_type"
        ) from None
    except ValueError:
        raise PKIError("the private key PEM cannot be parsed", reason="key.malformed") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PKIError("only RSA and ECDSA private keys are supported", reason="key.unsupported_type")
    return key


def public_key_algorithm(public_key: PublicKeyTypes) -> str:
    """Go crypto/x509 style name: ``RSA``, ``ECDSA``, ``Ed25519``, ``DSA``, ... or ``unknown``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA"
    if isinstance(public_key, x25519.X25519PublicKey):
        return "X25519"
    if isinstance(public_key, x448.X448PublicKey):
        return "X448"
    return "unknown"


def check_public_key(public_key: PublicKeyTypes, purpose: KeyPurpose) -> None:
    """Raise :class:`PKIError` unless ``public_key`` is allowed for ``purpose``.

    RSA 2048..8192 bits for every purpose (``cryptography`` itself refuses even or tiny
    exponents); EC P-256/P-384 for client keys, plus P-521 for CA and server keys. Nothing
    else (Ed25519, DSA, other curves).
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        if bits < RSA_MIN_BITS:
            raise PKIError(
                f"RSA keys must have at least {RSA_MIN_BITS} bits; this one has {bits}",
                reason="key.rsa_too_small",
            )
        if bits > RSA_MAX_BITS:
            raise PKIError(
                f"RSA keys may have at most {RSA_MAX_BITS} bits; this one has {bits}",
                reason="key.rsa_too_large",
            )
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        allowed = _ALLOWED_CURVES[purpose]
        if curve not in allowed:
            names = ", ".join(_CURVE_NAMES[c] for c in sorted(allowed))
            raise PKIError(
                f"elliptic curve {curve} is not allowed for a {purpose.value} key; use {names}",
                reason="key.unsupported_curve",
            )
        return
    raise PKIError(
        f"{public_key_algorithm(public_key)} keys are not supported; use RSA or ECDSA",
        reason="key.unsupported_type",
    )
