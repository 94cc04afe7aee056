"""Secrets at rest: the AES-256-GCM ``KeySealer`` and the master key it is built from.

Sealed blob, format 1::

    0x01 | key id (4 bytes) | nonce (12 random bytes) | AES-256-GCM ciphertext + 16-byte tag

The AES key is derived from the master key with HKDF-SHA256, so the master key itself is never
used directly and other purposes can derive their own keys from it. The associated data binds
the format byte and the caller's ``context`` (e.g. the authority id), so a blob copied to another
row does not open there. The key id (a hash of the derived key, not a secret) tells "sealed under
another master key" apart from "tampered with". The leading byte is the format version: a new
format adds a branch in ``unseal`` (old blobs keep opening) and ``needs_reseal`` tells the caller
to write the blob back in the newest format (upgrade on read).

The master key comes from a private key file (created 0600 at init) or an environment variable;
this module never logs or echoes key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from certgate.errors import CertGateError

MASTER_KEY_BYTES = 32
FORMAT_V1 = 0x01
_NONCE_BYTES = 12
_KEY_ID_BYTES = 4
_TAG_BYTES = 16
_HEADER_V1 = 1 + _KEY_ID_BYTES + _NONCE_BYTES


class SealError(CertGateError):
    """A sealed secret cannot be opened: ``reason`` says why (``seal.wrong_key``,
    ``seal.corrupt``, ``seal.unknown_format``, ``seal.truncated``)."""

    default_reason = "seal.corrupt"


class MasterKeyError(CertGateError):
    """The master key is missing, malformed or not private (``reason`` says which)."""

    default_reason = "master_key.invalid"


def _derive(master_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master_key)


class AESGCMSealer:
    """``services.ports.KeySealer`` with AES-256-GCM under a key derived from ``master_key``."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise MasterKeyError(
                f"the master key must be {MASTER_KEY_BYTES} bytes, not {len(master_key)}",
                reason="master_key.length",
            )
        key = _derive(master_key, b"certgate seal v1")
        self._aead = AESGCM(key)
        self._key_id = hashlib.sha256(b"certgate key id\x00" + key).digest()[:_KEY_ID_BYTES]

    @staticmethod
    def _associated_data(fmt: int, context: str) -> bytes:
        return bytes([fmt]) + b"certgate\x00" + context.encode("utf-8")

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, self._associated_data(FORMAT_V1, context))
        return bytes([FORMAT_V1]) + self._key_id + nonce + sealed

    def unseal(self, blob: bytes, *, context: str) -> bytes:
        if not blob:
            raise SealError("the sealed secret is empty", reason="seal.truncated")
        if blob[0] != FORMAT_V1:
            raise SealError(f"the sealed secret has unknown format {blob[0]}", reason="seal.unknown_format")
        if len(blob) < _HEADER_V1 + _TAG_BYTES:
            raise SealError("the sealed secret is truncated", reason="seal.truncated")
        if blob[1 : 1 + _KEY_ID_BYTES] != self._key_id:
            raise SealError("the secret was sealed under a different master key", reason="seal.wrong_key")
        nonce = blob[1 + _KEY_ID_BYTES : _HEADER_V1]
        try:
            return self._aead.decrypt(nonce, blob[_HEADER_V1:], self._associated_data(FORMAT_V1, context))
        except InvalidTag:
            raise SealError(
                "the sealed secret was altered or belongs to another object", reason="seal.corrupt"
            ) from None

    def needs_reseal(self, blob: bytes) -> bool:
        """True if ``blob`` is in an older format than ``seal`` writes (none yet)."""
        return not blob or blob[0] != FORMAT_V1


def generate_master_key() -> bytes:
    return secrets.token_bytes(MASTER_KEY_BYTES)


def _check_private_file(path: Path) -> None:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise MasterKeyError(f"{path} is not a regular file", reason="master_key.not_a_file")
    if info.st_mode & 0o077:
        raise MasterKeyError(
            f"{path} is readable or writable by group or others (mode {stat.S_IMODE(info.st_mode):04o});"
            f" run: chmod 600 {path}",
            reason="master_key.permissions",
        )


def _read_key_file(path: Path) -> bytes:
    _check_private_file(path)
    key = path.read_bytes()
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(
            f"{path} must hold exactly {MASTER_KEY_BYTES} bytes, it holds {len(key)}",
            reason="master_key.length",
        )
    return key


def load_or_create_master_key(path: str | os.PathLike[str]) -> bytes:
    """The 32 raw bytes in ``path``, creating the file (mode 0600) with a random key if missing.

    Creation is atomic: the key is written and synced to a private temporary file that is then
    hard-linked into place, so a crash never leaves a short key file and two processes racing
    to create it end up with the same key. An existing file with group/other permissions or of
    the wrong length is refused, never repaired.
    """
    target = Path(path)
    if target.exists():
        return _read_key_file(target)
    if not target.parent.is_dir():
        raise MasterKeyError(f"directory {target.parent} does not exist", reason="master_key.no_directory")
    temporary = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, generate_master_key())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            os.link(temporary, target)
        except FileExistsError:
            pass  # another process won the race: use its key
    finally:
        if fd >= 0:
            os.close(fd)
        temporary.unlink(missing_ok=True)
    _sync_directory(target.parent)
    return _read_key_file(target)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def master_key_from_env(value: str) -> bytes:
    """The master key from an environment value: 64 hex digits, or base64 (standard or
    URL-safe, padding optional) of 32 bytes. The value never appears in an error message."""
    text = value.strip()
    if len(text) == 2 * MASTER_KEY_BYTES and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    try:
        padded = text + "=" * (-len(text) % 4)
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(
            "CERTGATE_MASTER_KEY is neither hex nor base64", reason="master_key.encoding"
        ) from None
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(
            f"CERTGATE_MASTER_KEY must encode {MASTER_KEY_BYTES} bytes, it encodes {len(key)}",
            reason="master_key.length",
        )
    return key
