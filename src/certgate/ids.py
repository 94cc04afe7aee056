"""Typed identifiers and the injectable factory that makes new ones.

Wire shapes follow ESA: client/CA certificate ids are 32 lowercase hex characters, sites,
records, WAF rules and rulesets have integer ids, request ids are uppercase UUIDs.
"""

from __future__ import annotations

import math
import secrets
import string
import uuid
from typing import NewType, Protocol

AccountId = NewType("AccountId", str)
SiteId = NewType("SiteId", int)
RecordId = NewType("RecordId", int)
CertificateId = NewType("CertificateId", str)
CACertificateId = NewType("CACertificateId", str)
RuleId = NewType("RuleId", int)


class IdFactory(Protocol):
    def hex_id(self) -> str:
        """32 lowercase hex characters (certificate, CA, account ids)."""
        ...

    def int_id(self) -> int:
        """A positive int64 for sites, records, rules."""
        ...

    def token(self, nbytes: int = 32) -> str:
        """An alphanumeric secret with at least ``8 * nbytes`` bits of entropy (access key
        secrets, edge tokens, session ids). Never starts with ``-``, so it is never taken for a
        command-line flag, and needs no quoting in a shell, URL or header."""
        ...


_TOKEN_ALPHABET = string.ascii_letters + string.digits


class RandomIdFactory:
    """Ids from the operating system's CSPRNG."""

    def hex_id(self) -> str:
        return secrets.token_hex(16)

    def int_id(self) -> int:
        # 1e12..9e15: looks like ESA's 13-16 digit site ids and stays exact in JavaScript.
        return 1_000_000_000_000 + secrets.randbelow(8_999_000_000_000_000)

    def token(self, nbytes: int = 32) -> str:
        length = math.ceil(nbytes * 8 / math.log2(len(_TOKEN_ALPHABET)))
        return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


class SequentialIdFactory:
    """Predictable ids for tests."""

    def __init__(self) -> None:
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def hex_id(self) -> str:
        return f"{self._next():032x}"

    def int_id(self) -> int:
        return 1_000_000_000_000 + self._next()

    def token(self, nbytes: int = 32) -> str:
        return f"tok{self._next():0{nbytes}d}"


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()
