"""The failed-login counters on their own: windows, lockout length, bounded memory."""

from __future__ import annotations

import datetime as dt

from certgate.clock import UTC
from certgate.console.throttle import LoginThrottle, ThrottleSettings

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SETTINGS = ThrottleSettings(failures_per_key_id=3, failures_per_address=5, window=dt.timedelta(minutes=10))


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_failures_spread_over_more_than_the_window_never_lock() -> None:
    throttle = LoginThrottle(SETTINGS)
    for n in range(20):
        assert throttle.retry_after("key", "addr", at(n * 301)) is None
        throttle.failed("key", f"addr{n}", at(n * 301))


def test_the_lockout_lasts_until_the_oldest_counted_failure_expires() -> None:
    throttle = LoginThrottle(SETTINGS)
    for seconds in (0, 60, 120):
        throttle.failed("key", "a", at(seconds))
    assert throttle.retry_after("key", "b", at(130)) == dt.timedelta(seconds=470)
    assert throttle.retry_after("other", "b", at(130)) is None
    assert throttle.retry_after("key", "b", at(600)) is None  # the failure at 0 has left the window
    throttle.failed("key", "b", at(600))
    assert throttle.retry_after("key", "b", at(601)) == dt.timedelta(seconds=59)  # 60, 120, 600 count


def test_the_address_limit_counts_every_key_id() -> None:
    throttle = LoginThrottle(SETTINGS)
    for n in range(5):
        throttle.failed(f"key{n}", "addr", at(n))
    assert throttle.retry_after("fresh-key", "addr", at(10)) == dt.timedelta(seconds=590)
    assert throttle.retry_after("fresh-key", "other-addr", at(10)) is None


def test_success_clears_only_the_key_id() -> None:
    throttle = LoginThrottle(SETTINGS)
    for n in range(3):
        throttle.failed("key", "addr", at(n))
    throttle.succeeded("key")
    assert throttle.retry_after("key", "elsewhere", at(5)) is None


def test_memory_is_bounded_oldest_first() -> None:
    throttle = LoginThrottle(
        ThrottleSettings(failures_per_key_id=1, failures_per_address=10**6, max_tracked=100)
    )
    for n in range(1000):
        throttle.failed(f"key{n}", "addr", at(0))
    assert throttle.retry_after("key999", "x", at(1)) is not None
    assert throttle.retry_after("key900", "x", at(1)) is not None
    assert throttle.retry_after("key899", "x", at(1)) is None  # forgotten
    assert len(throttle._by_key_id._failures) == 100
