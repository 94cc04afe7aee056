"""PEM/DER text handling: splitting bundles, loading certificates, fingerprints.

Lenient about layout (CRLF, indentation, a PEM pasted onto one line, literal ``\\n`` escapes
left by a JSON round trip, explanatory text between blocks) and strict about content (markers
must pair up, base64 must be valid, DER must parse). Linear time in the input size whatever
the input, so it is safe on untrusted data; callers bound the size before calling.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import string
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certgate.pki.errors import PKIError

CERTIFICATE_LABELS: Final = frozenset({"CERTIFICATE", "X509 CERTIFICATE"})
#: What ``cryptography`` raises while decoding untrusted DER, eagerly or lazily (extensions and
#: names are decoded on first access). Found by fuzzing; none of them share a base but Exception.
PARSE_ERRORS: Final = (
    ValueError,
    TypeError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)
_BEGIN: Final = "-----BEGIN "
_END: Final = "-----END "
_DASHES: Final = "-----"
_LABEL_CHARS: Final = frozenset(string.ascii_uppercase + string.digits + " ")
_MAX_LABEL: Final = 64
# Whitespace plus the two-character escapes a JSON or shell round trip leaves behind; none of
# them can be part of base64, so removing them never changes what a valid block decodes to.
_LAYOUT_JUNK: Final = ("\\r", "\\n", "\\t")
_WHITESPACE: Final = str.maketrans("", "", " \t\r\n\v\f")


def _malformed(message: str) -> PKIError:
    return PKIError(message, reason="pem.malformed")


def _text(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        # latin-1 never fails; any non-ASCII byte inside a block is then refused by base64.
        return bytes(data).decode("latin-1")
    raise TypeError(f"expected str or bytes, got {type(data).__name__}")


def _decode_body(label: str, body: str) -> bytes:
    for junk in _LAYOUT_JUNK:
        body = body.replace(junk, "")
    body = body.translate(_WHITESPACE)
    if not body:
        raise _malformed(f"the PEM block {label!r} is empty")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"the PEM block {label!r} is not valid base64") from None


def _label_at(text: str, start: int) -> tuple[str, int]:
    """Read ``LABEL-----`` at ``start``; return the label and the index after the dashes."""
    stop = text.find(_DASHES, start, start + _MAX_LABEL + len(_DASHES))
    label = text[start:stop] if stop >= 0 else ""
    if stop < 0 or not label or not set(label) <= _LABEL_CHARS:
        raise _malformed("a PEM marker line is malformed")
    return label, stop + len(_DASHES)


def split_pem(data: str | bytes) -> list[tuple[str, bytes]]:
    """Every ``-----BEGIN X-----`` block of ``data`` as ``(label, der)``, in order.

    Text outside blocks is ignored. Raises ``pem.malformed`` for an unterminated, nested or
    mismatched block, an empty block, or invalid base64. Returns ``[]`` when there is no block.
    """
    text = _text(data)
    blocks: list[tuple[str, bytes]] = []
    pos = 0
    while True:
        begin = text.find(_BEGIN, pos)
        if text.find(_END, pos, len(text) if begin < 0 else begin) >= 0:
            raise _malformed("a PEM END marker has no matching BEGIN marker")
        if begin < 0:
            return blocks
        label, body_start = _label_at(text, begin + len(_BEGIN))
        end = text.find(_END, body_start)
        if end < 0:
            raise _malformed(f"the PEM block {label!r} has no END marker")
        if text.find(_BEGIN, body_start, end) >= 0:
            raise _malformed(f"the PEM block {label!r} is not closed before the next one begins")
        end_label, pos = _label_at(text, end + len(_END))
        if end_label != label:
            raise _malformed(f"the PEM block {label!r} ends with a different label {end_label!r}")
        blocks.append((label, _decode_body(label, text[body_start:end])))


def der_bytes(data: str | bytes) -> bytes | None:
    """``data`` itself when it looks like DER (bytes starting with a SEQUENCE tag), else None."""
    # Certificates, CSRs and CRLs are all a DER SEQUENCE (0x30); PEM text never starts so.
    if isinstance(data, bytes | bytearray | memoryview) and bytes(data[:1]) == b"\x30":
        return bytes(data)
    return None


def _is_blank(data: str | bytes) -> bool:
    return not _text(data).strip()


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at ``pos``: (tag, start of content, end of content)."""
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 0 < count <= 4:
            raise IndexError("unsupported DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise IndexError("truncated DER")
    return tag, pos, pos + length


def _serial_is_positive(der: bytes) -> bool:
    """Whether a DER certificate's serialNumber is > 0 (True if the structure is not even that far).

    ``cryptography`` only *warns* on a zero or negative serial (RFC 5280 forbids them, and a
    future release will refuse them); checking the bytes first makes that a plain refusal,
    independent of the process's warning filters and safe across threads.
    """
    try:
        tag, pos, _ = _tlv(der, 0)  # Certificate
        tag2, pos, _ = _tlv(der, pos)  # tbsCertificate
        if tag != 0x30 or tag2 != 0x30:
            return True
        if der[pos] == 0xA0:  # [0] EXPLICIT version
            pos = _tlv(der, pos)[2]
        tag, start, end = _tlv(der, pos)
    except IndexError:
        return True  # not a certificate shape: let the real parser produce the error
    if tag != 0x02 or start == end:
        return True
    return der[start] < 0x80 and any(der[start:end])


def load_der_certificate(der: bytes) -> x509.Certificate:
    """One DER certificate, with every parse failure as ``pem.malformed``."""
    if not isinstance(der, bytes | bytearray | memoryview):
        raise _malformed("expected the certificate as DER bytes")
    der = bytes(der)
    if not _serial_is_positive(der):
        raise _malformed("the certificate's serial number is zero or negative")
    try:
        return x509.load_der_x509_certificate(der)
    except PARSE_ERRORS:
        raise _malformed("the certificate's DER encoding cannot be parsed") from None


def load_certificates(data: str | bytes) -> list[x509.Certificate]:
    """One or more certificates: a PEM bundle, or a single DER certificate as bytes.

    Any block that is not a certificate is refused (a private key with its own reason).
    """
    if _is_blank(data):
        raise PKIError("no certificate was given", reason="pem.empty")
    blocks = split_pem(data)
    if not blocks:
        der = der_bytes(data)
        if der is not None:
            return [load_der_certificate(der)]
        raise _malformed("no PEM certificate block (-----BEGIN CERTIFICATE-----) was found")
    certificates = []
    for label, der in blocks:
        if "PRIVATE KEY" in label:
            raise PKIError(
                "the input contains a private key; send only certificates and keep the key secret",
                reason="pem.contains_private_key",
            )
        if label not in CERTIFICATE_LABELS:
            raise PKIError(f"expected a CERTIFICATE PEM block, found {label!r}", reason="pem.wrong_type")
        certificates.append(load_der_certificate(der))
    return certificates


def load_certificate(data: str | bytes) -> x509.Certificate:
    """Exactly one certificate, PEM or DER."""
    certificates = load_certificates(data)
    if len(certificates) != 1:
        raise PKIError(
            f"expected exactly one certificate, found {len(certificates)}",
            reason="pem.multiple_certificates",
        )
    return certificates[0]


def certificate_to_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_to_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate: 64 lowercase hex characters, no colons (ESA's shape)."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
