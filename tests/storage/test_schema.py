"""``UTCDateTime``: aware UTC in and out on every dialect; on SQLite exactly SQLAlchemy's text."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine import Dialect

from certgate.storage import schema as t

SQLITE = sqlite.pysqlite.dialect()
POSTGRES = psycopg.dialect()  # type: ignore[no-untyped-call]
TYPE = t.client_certificates.c.created_at.type
# What SQLAlchemy itself writes for a naive UTC datetime in a SQLite DATETIME column.
SQLALCHEMY_TEXT = sqlite.DATETIME().bind_processor(SQLITE)  # type: ignore[no-untyped-call]

aware = st.datetimes(
    min_value=dt.datetime(1, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(-dt.timedelta(hours=8))]
    ),
)


def processors(dialect: Dialect) -> tuple[object, object]:
    impl = TYPE.dialect_impl(dialect)
    return impl.bind_processor(dialect), impl.result_processor(dialect, None)


@given(aware)
def test_sqlite_text_is_sqlalchemys_own_datetime_format(value: dt.datetime) -> None:
    bind, result = processors(SQLITE)
    assert callable(bind) and callable(result)
    naive_utc = value.astimezone(dt.UTC).replace(tzinfo=None)
    assert SQLALCHEMY_TEXT is not None
    sqlalchemy_text = SQLALCHEMY_TEXT(naive_utc)
    assert bind(value) == sqlalchemy_text
    assert result(sqlalchemy_text) == value
    assert result(sqlalchemy_text).tzinfo is dt.UTC


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2026-01-02 03:04:05.000000"),
        (dt.datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=dt.UTC), "2026-01-02 03:04:05.000007"),
        (dt.datetime(999, 1, 1, tzinfo=dt.UTC), "0999-01-01 00:00:00.000000"),
        (dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2025-12-31 23:00:00.000000"),
    ],
)
def test_sqlite_text_examples(value: dt.datetime, text: str) -> None:
    bind, result = processors(SQLITE)
    assert callable(bind) and callable(result)
    assert bind(value) == text
    assert result(text) == value


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=["sqlite", "postgresql"])
def test_naive_datetimes_and_other_values_are_refused(dialect: Dialect) -> None:
    bind, result = processors(dialect)
    assert callable(bind) and callable(result)
    with pytest.raises(ValueError, match="timezone-aware"):
        bind(dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        bind("2026-01-01 00:00:00")
    assert bind(None) is None
    assert result(None) is None


def test_postgresql_values_stay_datetimes_in_utc() -> None:
    bind, result = processors(POSTGRES)
    assert callable(bind) and callable(result)
    local = dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert bind(local) == dt.datetime(2025, 12, 31, 23, tzinfo=dt.UTC)
    returned = result(local)
    assert returned == local and returned.tzinfo is dt.UTC
    with pytest.raises(TypeError):
        result("2026-01-01")
