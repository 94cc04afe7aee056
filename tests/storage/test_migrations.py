"""The shipped migrations reach exactly ``schema.py`` on SQLite and PostgreSQL, from empty."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text

from certgate.ids import SiteId
from certgate.storage import schema
from certgate.storage.sql import MIGRATIONS_DIR, SchemaError, SQLStore, alembic_config, normalize_url


@contextmanager
def connect(url: str) -> Iterator[Connection]:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def schema_differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, schema.metadata))


def head() -> str:
    revision = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert revision is not None
    return revision


def test_upgrading_an_empty_database_produces_schema_py(sql_url: str) -> None:
    SQLStore(sql_url).close()
    with connect(sql_url) as conn:
        assert schema_differences(conn) == []
        assert MigrationContext.configure(conn).get_current_revision() == head()
        assert conn.execute(text("SELECT id, config_version FROM installation")).all() == [(1, 0)]


def test_the_comparison_does_see_differences(sql_url: str) -> None:
    """Guards the test above against comparing nothing."""
    SQLStore(sql_url).close()
    with connect(sql_url) as conn:
        conn.execute(text("DROP INDEX ix_client_certificates_site_id_created_at_id"))
        conn.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
        kinds = sorted(diff[0] for diff in schema_differences(conn))
        conn.rollback()
    assert kinds == ["add_index", "remove_table"]


def test_opening_again_is_a_no_op_and_keeps_data(sql_url: str) -> None:
    store = SQLStore(sql_url)
    with store.transaction() as tx:
        tx.delete_edge_certificate("x.example.com")  # any dirty commit
    store.close()
    store = SQLStore(sql_url)
    try:
        assert store.current_version() == 1
    finally:
        store.close()


def test_downgrade_to_empty_and_upgrade_again(sql_url: str) -> None:
    SQLStore(sql_url).close()
    with connect(sql_url) as conn:
        with conn.begin():
            command.downgrade(alembic_config(connection=conn), "base")
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
        conn.rollback()
        with conn.begin():
            command.upgrade(alembic_config(connection=conn), "head")
        assert schema_differences(conn) == []


def test_a_database_from_a_newer_certgate_is_refused(sql_url: str) -> None:
    SQLStore(sql_url).close()
    with connect(sql_url) as conn, conn.begin():
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    with pytest.raises(SchemaError) as err:
        SQLStore(sql_url)
    assert err.value.reason == "storage.schema"


def test_processes_opening_a_new_database_together_migrate_it_once(sql_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_it() -> None:
        try:
            barrier.wait()
            SQLStore(sql_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with connect(sql_url) as conn:
        assert schema_differences(conn) == []
        assert conn.execute(text("SELECT count(*) FROM installation")).scalar_one() == 1


def test_upgrading_from_0001_backfills_the_certificate_counts(sql_url: str) -> None:
    engine = create_engine(normalize_url(sql_url))
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "0001")
            conn.execute(schema.accounts.insert(), [ACCOUNT_ROW])
            conn.execute(schema.authorities.insert(), [AUTHORITY_ROW])
            conn.execute(schema.sites.insert(), [site_row(1, "a.example"), site_row(2, "b.example")])
            conn.execute(
                schema.client_certificates.insert(),
                [certificate_row(n, 1) for n in range(5)] + [certificate_row(n, 2) for n in range(5, 7)],
            )
    finally:
        engine.dispose()
    store = SQLStore(sql_url)
    try:
        with store.transaction() as tx:
            assert tx.list_client_certificates(SiteId(1), offset=0, limit=2)[1] == 5
            assert tx.list_client_certificates(SiteId(2), offset=0, limit=2)[1] == 2
            assert tx.list_client_certificates(SiteId(3), offset=0, limit=2) == ([], 0)
    finally:
        store.close()


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ACCOUNT_ROW = {
    "id": "a" * 32,
    "name": "alice",
    "instance_id": "i",
    "plan_name": "enterprise",
    "plan_custom_ca_limit": 5,
    "plan_hostnames_per_call": 50,
    "plan_sites_limit": 100,
    "plan_waf_rules_per_site": 200,
    "created_at": T0,
}
AUTHORITY_ROW = {
    "id": "b" * 32,
    "kind": "managed",
    "account_id": "a" * 32,
    "certificate_pem": "PEM",
    "sealed_key": b"k",
    "created_at": T0,
}


def site_row(n: int, name: str) -> dict[str, Any]:
    return {
        "id": n,
        "account_id": "a" * 32,
        "name": name,
        "access_type": "NS",
        "coverage": "global",
        "instance_id": "i",
        "status": "active",
        "verify_code": "v",
        "created_at": T0,
        "updated_at": T0,
    }


def certificate_row(n: int, site_id: int) -> dict[str, Any]:
    return {
        "id": f"{n:032x}",
        "account_id": "a" * 32,
        "site_id": site_id,
        "authority_id": "b" * 32,
        "status": "active",
        "validity_days": 1,
        "certificate_pem": "PEM",
        "common_name": "cn",
        "subject_dn": "CN=cn",
        "issuer_dn": "CN=ca",
        "issuer_common_name": "ca",
        "serial_hex": f"{n:x}",
        "fingerprint_sha256": f"{n:064x}",
        "signature_algorithm": "ecdsa-with-SHA256",
        "public_key_algorithm": "EC P-256",
        "san": "",
        "not_before": T0,
        "not_after": T0,
        "created_at": T0,
        "updated_at": T0,
        "revoked_at": None,
    }


def test_migrations_ship_inside_the_package() -> None:
    config = alembic_config()
    assert config.config_file_name is None  # built in code, no alembic.ini
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert ScriptDirectory.from_config(config).get_current_head() == head()
