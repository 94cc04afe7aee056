"""Pure helpers for the console's rule screens: the expression the Create mTLS Rule panel
writes, and the line-with-caret view of an expression parse error.

The same expression is computed by ``static/console.js`` for the live preview; the server never
trusts that copy and saves only what it computes itself (see ``rules.create_mtls_rule``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

VERIFIED_FIELD: Final = "tls.client_auth.cert_verified"
# Normalised hostnames only (services.hostnames): nothing that could end a string literal.
_SAFE_HOSTNAME = re.compile(r"^[a-z0-9.-]+$")
_SEPARATORS = re.compile(r"[\s,]+")


def split_hostnames(raw: str) -> list[str]:
    """The names typed in a Hostname field: separated by spaces, commas or new lines."""
    return [part for part in _SEPARATORS.split(raw) if part]


def mtls_rule_expression(hostnames: Sequence[str], *, match_verified: bool = False) -> str:
    """The rule of the seed's Create mTLS Rule panel.

    Default (``match_verified=False``) matches requests whose client certificate is *not*
    verified, e.g. ``(http.host eq "api.example.com" and not tls.client_auth.cert_verified)``.
    ``hostnames`` must already be normalised (lowercase ASCII, no wildcard).
    """
    for name in hostnames:
        if not _SAFE_HOSTNAME.match(name):
            raise ValueError(f"hostname {name!r} is not normalised")
    verified = VERIFIED_FIELD if match_verified else f"not {VERIFIED_FIELD}"
    if not hostnames:
        return f"({verified})"
    if len(hostnames) == 1:
        host = f'http.host eq "{hostnames[0]}"'
    else:
        host = "http.host in {" + " ".join(f'"{name}"' for name in hostnames) + "}"
    return f"({host} and {verified})"


@dataclass(frozen=True, slots=True)
class ErrorExcerpt:
    """The source line an error points into and a caret line under it, for a ``<pre>``."""

    line: int
    column: int
    source_line: str
    caret_line: str


def error_excerpt(expression: str, line: int, column: int, length: int = 1) -> ErrorExcerpt:
    """Underline ``length`` characters from 1-based ``line``/``column`` of ``expression``;
    positions past the end of a line (an unexpected end of input) point just after it."""
    lines = expression.split("\n") or [""]
    index = min(max(line, 1), len(lines)) - 1
    source = lines[index].rstrip("\r")
    col = min(max(column, 1), len(source) + 1)
    # Keep tabs in the padding so the caret lines up under a tab-indented source line.
    padding = "".join("\t" if ch == "\t" else " " for ch in source[: col - 1])
    carets = "^" * max(1, min(length, len(source) - col + 1))
    return ErrorExcerpt(line=index + 1, column=col, source_line=source, caret_line=padding + carets)
