"""Run-time matchers built once per compiled filter: wildcards and integer/IP interval sets.

Both are linear or logarithmic in their input: a wildcard is matched by anchored prefix/suffix
checks and a left-to-right ``str.find`` per middle segment (greedy leftmost is optimal for
``*``-only globs, so nothing backtracks); sets of ranges and CIDRs are merged intervals searched
with ``bisect``.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable

from certgate.rules.types import IPAddress

_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}
_ASCII_UPPER = {c: c - 32 for c in range(97, 123)}


def ascii_lower(text: str) -> str:
    """Lowercase ASCII letters only, as wirefilter's ``lower()`` does (byte-wise)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def ascii_upper(text: str) -> str:
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


class WildcardError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class Wildcard:
    """A glob where ``*`` matches any run of characters (also empty) and the whole input must
    match. ``\\*`` and ``\\\\`` escape. ``wildcard`` ignores ASCII case; ``strict wildcard``
    does not."""

    __slots__ = ("_first", "_last", "_middle", "_single", "case_sensitive", "pattern")

    def __init__(self, pattern: str, *, case_sensitive: bool, max_stars: int) -> None:
        self.pattern = pattern
        self.case_sensitive = case_sensitive
        segments = parse_wildcard(pattern, max_stars)
        if not case_sensitive:
            segments = [ascii_lower(s) for s in segments]
        self._single = segments[0] if len(segments) == 1 else None
        self._first = segments[0]
        self._last = segments[-1]
        self._middle = tuple(segments[1:-1])

    def match(self, text: str) -> bool:
        if not self.case_sensitive:
            text = ascii_lower(text)
        if self._single is not None:
            return text == self._single
        first, last = self._first, self._last
        if not text.startswith(first):
            return False
        pos = len(first)
        limit = len(text) - len(last)
        if limit < pos or not text.endswith(last):
            return False
        for segment in self._middle:
            found = text.find(segment, pos, limit)
            if found < 0:
                return False
            pos = found + len(segment)
        return True


def parse_wildcard(pattern: str, max_stars: int) -> list[str]:
    """Split on unescaped ``*`` → literal segments (one more than there are stars)."""
    segments: list[str] = []
    current: list[str] = []
    stars = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
            if nxt not in ("*", "\\"):
                raise WildcardError("in a wildcard only `\\*` and `\\\\` are escapes", i)
            current.append(nxt)
            i += 2
            continue
        if ch == "*":
            if i + 1 < len(pattern) and pattern[i + 1] == "*":
                raise WildcardError("a wildcard may not contain `**`", i)
            stars += 1
            if stars > max_stars:
                raise WildcardError(f"a wildcard may contain at most {max_stars} `*`", i)
            segments.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    segments.append("".join(current))
    return segments


class IntervalSet:
    """Membership in a union of inclusive integer intervals."""

    __slots__ = ("_highs", "_lows")

    def __init__(self, intervals: Iterable[tuple[int, int]]) -> None:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(intervals):
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        self._lows = [lo for lo, _ in merged]
        self._highs = [hi for _, hi in merged]

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_right(self._lows, value) - 1
        return i >= 0 and value <= self._highs[i]

    def __len__(self) -> int:
        return len(self._lows)


class IPSet:
    """Addresses, CIDR networks and ranges of both families."""

    __slots__ = ("_v4", "_v6")

    def __init__(
        self,
        addresses: Iterable[IPAddress] = (),
        networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        ranges: Iterable[tuple[IPAddress, IPAddress]] = (),
    ) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for a in addresses:
            (v4 if a.version == 4 else v6).append((int(a), int(a)))
        for n in networks:
            (v4 if n.version == 4 else v6).append((int(n.network_address), int(n.broadcast_address)))
        for lo, hi in ranges:
            (v4 if lo.version == 4 else v6).append((int(lo), int(hi)))
        self._v4 = IntervalSet(v4)
        self._v6 = IntervalSet(v6)

    def __contains__(self, address: IPAddress) -> bool:
        return int(address) in (self._v4 if address.version == 4 else self._v6)
