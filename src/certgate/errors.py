"""The root error taxonomy of certgate.

Domain errors say *what* went wrong, never how a transport reports it: no HTTP status or ESA
code lives here (``api/errors.py`` owns that one table). Every error carries a stable dotted
``reason`` (``"csr.weak_key"``, ``"ca.quota_exceeded"``) so adapters can tell failures of the
same kind apart, and a human ``message`` that is safe to show to the caller.
"""

from __future__ import annotations

from typing import Any


class CertGateError(Exception):
    """Root of every error certgate raises on purpose."""

    default_reason = "internal"

    def __init__(self, message: str, *, reason: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class InvalidArgument(CertGateError):
    """The caller's input is malformed, out of range or refused by policy."""

    default_reason = "invalid_argument"


class NotFound(CertGateError):
    """The named object does not exist *for this caller* (another account's id looks the same)."""

    default_reason = "not_found"


class AlreadyExists(CertGateError):
    """Creating the object would duplicate an existing one."""

    default_reason = "already_exists"


class Conflict(CertGateError):
    """The object exists but its state forbids the operation (status machine, still bound, ...)."""

    default_reason = "conflict"


class QuotaExceeded(CertGateError):
    """A plan or installation limit would be exceeded."""

    default_reason = "quota_exceeded"


class PermissionDenied(CertGateError):
    """The caller is known but may not do this."""

    default_reason = "permission_denied"


class Unauthenticated(CertGateError):
    """The caller could not be identified (bad signature, unknown key, expired session)."""

    default_reason = "unauthenticated"
