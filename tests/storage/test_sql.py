"""What is particular to the SQL adapter: URLs, SQLite settings, time handling, the writer lock."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

from certgate.errors import InvalidArgument
from certgate.ids import AccountId, CACertificateId, CertificateId, SiteId
from certgate.model import (
    Account,
    Authority,
    AuthorityKind,
    CertificateStatus,
    CertificateSummary,
    ClientCertificate,
    Plan,
    Site,
)
from certgate.storage.sql import SQLStore, SQLTransaction, alembic_config, normalize_url


@pytest.mark.parametrize(
    ("url", "driver", "rest"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg", "postgres@127.0.0.1:5432/test"),
        ("postgres://u:p%40ss@db/x", "postgresql+psycopg", "u:p%40ss@db/x"),
        ("postgresql+psycopg://u@db/x?sslmode=require", "postgresql+psycopg", "u@db/x?sslmode=require"),
        ("sqlite:////var/lib/certgate/certgate.db", "sqlite+pysqlite", "/var/lib/certgate/certgate.db"),
        ("sqlite:///relative.db", "sqlite+pysqlite", "relative.db"),
    ],
)
def test_supported_urls_are_normalised(url: str, driver: str, rest: str) -> None:
    rendered = normalize_url(url).render_as_string(hide_password=False)
    assert rendered.startswith(driver + "://")
    assert rendered.endswith(rest)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:x.db?mode=memory&uri=true",
        "postgresql+psycopg2://u@db/x",
        "postgresql+asyncpg://u@db/x",
        "sqlite+aiosqlite:///x.db",
        "mysql://u@db/x",
        "not a url",
    ],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        normalize_url(url)
    assert err.value.reason == "storage.url"


def test_alembic_config_takes_a_url_with_percent_signs() -> None:
    config = alembic_config("postgresql://u:p%25w@db/x")
    assert config.get_main_option("sqlalchemy.url") == "postgresql+psycopg://u:p%25w@db/x"


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    store = SQLStore(sqlite_url, lock_timeout=7)
    try:
        with store.engine.connect() as conn:
            pragmas = {
                name: conn.execute(text(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
            conn.rollback()
    finally:
        store.close()
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 7000, "synchronous": 2}


def test_sqlite_synchronous_can_be_relaxed_but_is_checked(sqlite_url: str) -> None:
    store = SQLStore(sqlite_url, sqlite_synchronous="normal")
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 1
            conn.rollback()
    finally:
        store.close()
    with pytest.raises(InvalidArgument):
        SQLStore(sqlite_url, sqlite_synchronous="SOMETIMES")


def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    created = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    acct = Account(AccountId("a" * 32), "alice", "esa-site-1", Plan(), created)
    store = SQLStore(url)
    with store.transaction() as tx:
        tx.add_account(acct)
    store.close()
    store = SQLStore(url)
    try:
        with store.transaction() as tx:
            assert tx.get_account(acct.id) == acct
        assert store.current_version() == 1
    finally:
        store.close()


def test_naive_datetimes_are_refused(sql_url: str) -> None:
    store = SQLStore(sql_url)
    try:
        naive = Account(AccountId("a" * 32), "alice", "esa-site-1", Plan(), dt.datetime(2026, 1, 1))
        with pytest.raises(StatementError, match="timezone-aware"), store.transaction() as tx:
            tx.add_account(naive)
        with store.transaction() as tx:
            assert tx.list_accounts() == []
    finally:
        store.close()


def test_a_writer_that_cannot_get_the_lock_in_time_fails_instead_of_hanging(sql_url: str) -> None:
    holder = SQLStore(sql_url)
    waiter = SQLStore(sql_url, lock_timeout=0.3)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        with pytest.raises(OperationalError), waiter.transaction():
            pass
        assert 0.2 < time.monotonic() - started < 20  # waited for the lock, then gave up
        assert waiter.current_version() == 0  # reading the version never waits for the writer
    finally:
        release.set()
        thread.join(10)
        holder.close()
        waiter.close()


# -- the DBAPI fast path (SQLTransaction, _Prepared, _Connections) -------------------------------

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _site_with_authority(tx: SQLTransaction) -> tuple[Account, Site, Authority]:
    acct = Account(AccountId("a" * 32), "alice", "esa-site-1", Plan(), T0)
    site = Site(SiteId(1), acct.id, "example.com", "NS", "global", "esa-site-1", "active", "code", T0, T0)
    authority = Authority(CACertificateId("c" * 32), AuthorityKind.MANAGED, acct.id, "PEM", b"sealed", T0)
    tx.add_account(acct)
    tx.add_site(site)
    tx.add_authority(authority)
    return acct, site, authority


def _certificate(site: Site, authority: Authority, created: dt.datetime) -> ClientCertificate:
    summary = CertificateSummary(
        "PEM", "cn", "CN=cn", "CN=ca", "ca", "01", "f" * 64, "ECDSA-SHA256", "ECDSA", "", T0, T0
    )
    return ClientCertificate(
        CertificateId("d" * 32),
        site.account_id,
        site.id,
        authority.id,
        CertificateStatus.ACTIVE,
        365,
        summary,
        created,
        created,
    )


def test_prepared_statements_refuse_naive_datetimes_as_core_does(sql_url: str) -> None:
    store = SQLStore(sql_url)
    try:
        with store.transaction() as tx:
            _, site, authority = _site_with_authority(tx)
        naive = _certificate(site, authority, dt.datetime(2026, 1, 1))
        with pytest.raises(StatementError, match="timezone-aware"), store.transaction() as tx:
            tx.add_client_certificate(naive)
        with store.read_transaction() as tx:
            assert tx.list_client_certificates(site.id, offset=0, limit=10) == ([], 0)
        assert store.current_version() == 1
    finally:
        store.close()


def _break_connection(tx: SQLTransaction, url: str) -> None:
    """Make the unit's database connection die under it, as a restarted server would."""
    dbapi = tx._dbapi
    if url.startswith("sqlite"):
        dbapi.close()
        return
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", (dbapi.info.backend_pid,))


def test_a_connection_lost_mid_transaction_is_invalidated_not_reused(sql_url: str) -> None:
    store = SQLStore(sql_url)
    try:
        with store.transaction() as tx:
            acct, site, _ = _site_with_authority(tx)
        with pytest.raises(DBAPIError) as raised, store.transaction() as tx:
            _break_connection(tx, sql_url)
            tx.get_site(acct.id, site.id)
        assert raised.value.connection_invalidated
        with store.transaction() as tx:  # a fresh connection, not the broken one
            assert tx.get_site(acct.id, site.id) == site
        assert store.current_version() == 1
    finally:
        store.close()


def test_units_of_work_reuse_one_connection_and_give_it_back_when_the_store_closes(sqlite_url: str) -> None:
    store = SQLStore(sqlite_url)
    with store.transaction() as tx:
        first = tx._dbapi
    with store.read_transaction() as tx:
        assert tx._dbapi is first  # newest idle connection first
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.read_transaction():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(10)
    store.close()
    release.set()
    thread.join(10)
    assert store._connections._idle == []  # the late one was closed, not kept
