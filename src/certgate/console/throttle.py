"""Failed-login throttling for the console.

Access-key secrets are 30 random characters, so guessing one is hopeless; the throttle is there
so a script cannot try anyway, and so a flood of logins does not turn into a flood of store
reads. Failures are counted per AccessKey ID and per client address over a sliding window; once
either count reaches its limit, logins for that key id or from that address are refused (429)
without looking at the secret, so a correct secret guessed during the lockout reveals nothing.
A successful login clears its key id's failures.

The counts live in the process: each control-plane replica throttles on its own, which bounds
guesses to replicas times the limit per window. Memory is bounded by ``max_tracked`` keys per kind
(oldest forgotten first).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    failures_per_key_id: int = 10
    """Failed logins for one AccessKey ID within ``window`` before it is locked out."""

    failures_per_address: int = 30
    """Failed logins from one client address within ``window`` before it is locked out."""

    window: dt.timedelta = dt.timedelta(minutes=15)
    """How far back failures count; a lockout ends when its oldest counted failure leaves it."""

    max_tracked: int = 10_000
    """Most key ids (and, separately, addresses) remembered at once."""


class _Counter:
    """Failure times per key over a sliding window, for a bounded number of keys."""

    def __init__(self, limit: int, window: dt.timedelta, max_tracked: int) -> None:
        self._limit = limit
        self._window = window
        self._max_tracked = max_tracked
        self._failures: OrderedDict[str, deque[dt.datetime]] = OrderedDict()

    def _recent(self, key: str, now: dt.datetime) -> deque[dt.datetime] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        cutoff = now - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, now: dt.datetime) -> dt.timedelta | None:
        """How long ``key`` stays locked out, or None when it is not."""
        times = self._recent(key, now)
        if times is None or len(times) < self._limit:
            return None
        return times[-self._limit] + self._window - now

    def fail(self, key: str, now: dt.datetime) -> None:
        times = self._recent(key, now)
        if times is None:
            times = deque(maxlen=self._limit)
            self._failures[key] = times
            while len(self._failures) > self._max_tracked:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginThrottle:
    def __init__(self, settings: ThrottleSettings | None = None) -> None:
        s = settings or ThrottleSettings()
        self._by_key_id = _Counter(s.failures_per_key_id, s.window, s.max_tracked)
        self._by_address = _Counter(s.failures_per_address, s.window, s.max_tracked)

    def retry_after(self, key_id: str, address: str, now: dt.datetime) -> dt.timedelta | None:
        """None when a login for ``key_id`` from ``address`` may be checked now, else how long
        until it may."""
        waits = [
            wait
            for wait in (self._by_key_id.retry_after(key_id, now), self._by_address.retry_after(address, now))
            if wait is not None
        ]
        return max(waits) if waits else None

    def failed(self, key_id: str, address: str, now: dt.datetime) -> None:
        self._by_key_id.fail(key_id, now)
        self._by_address.fail(address, now)

    def succeeded(self, key_id: str) -> None:
        self._by_key_id.clear(key_id)
