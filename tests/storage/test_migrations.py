"""The shipped migrations reach exactly ``schema.py`` on SQLite and PostgreSQL, from empty."""

from __future__ import annotations

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


def test_migrations_ship_inside_the_package() -> None:
    config = alembic_config()
    assert config.config_file_name is None  # built in code, no alembic.ini
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert ScriptDirectory.from_config(config).get_current_head() == head()
