"""Injected time. Nothing in certgate's core calls ``datetime.now()``; it asks a Clock."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

UTC = dt.UTC


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock, truncated to whole seconds (X.509 and ESA times have no fractions)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC).replace(microsecond=0)


class FixedClock:
    """A clock for tests: stands still until told to move."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float = 0, **kwargs: float) -> None:
        self._now += dt.timedelta(seconds=seconds, **kwargs)

    def set(self, when: dt.datetime) -> None:
        self._now = when
