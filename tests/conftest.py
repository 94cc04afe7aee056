"""Fixtures shared by every test package. Each owner keeps its fixtures in its own marked section."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from certgate.services.ports import Store
from certgate.storage import open_store
from certgate.storage import schema as storage_schema
from certgate.storage.sql import SQLStore

# =================================================================================================
# Store fixtures (owned by storage/)
#
# ``store`` is parametrised over memory, SQLite (a file in tmp_path) and PostgreSQL. PostgreSQL
# is the server named by CERTGATE_TEST_POSTGRES_URL (default below). It never skips silently:
# an unreachable server fails every PostgreSQL test unless CERTGATE_ALLOW_SKIP_POSTGRES=1.
# Each test gets an empty database of its own: SQLite a copy of a migrated file; PostgreSQL a
# schema (search_path) of this session, emptied before each test. Sessions use their own schemas,
# dropped at the end, so runs can repeat and overlap. ``postgres_url`` is a fresh, empty schema.
# =================================================================================================

POSTGRES_URL_ENV = "CERTGATE_TEST_POSTGRES_URL"
ALLOW_SKIP_POSTGRES_ENV = "CERTGATE_ALLOW_SKIP_POSTGRES"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

STORE_KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQL_STORE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def with_search_path(url: str, schema: str) -> str:
    """``url`` with libpq ``options`` that make ``schema`` the only schema on the search path."""
    parsed = make_url(url)
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


def _libpq_url(url: str) -> str:
    """psycopg wants ``postgresql://``; the store also accepts ``postgresql+psycopg://``."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test server's URL, checked once per session."""
    url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    try:
        psycopg.connect(_libpq_url(url), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        if os.environ.get(ALLOW_SKIP_POSTGRES_ENV) == "1":
            pytest.skip(f"PostgreSQL at {url} is unreachable and {ALLOW_SKIP_POSTGRES_ENV}=1: {exc}")
        pytest.fail(
            f"PostgreSQL at {url} is unreachable ({exc}). Start it, point {POSTGRES_URL_ENV} at "
            f"a server, or set {ALLOW_SKIP_POSTGRES_ENV}=1 to skip the PostgreSQL tests.",
            pytrace=False,
        )
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL onto a fresh, empty schema of the test server, dropped after the test."""
    schema = f"certgate_test_{secrets.token_hex(6)}"
    admin = _libpq_url(postgres_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(postgres_server, schema)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def _postgres_store_schema(postgres_server: str) -> Iterator[tuple[str, str]]:
    """One migrated schema per session for the ``store`` fixture, emptied before each test
    (migrating a fresh schema for every test is several times slower)."""
    schema = f"certgate_test_{secrets.token_hex(6)}"
    admin = _libpq_url(postgres_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = with_search_path(postgres_server, schema)
        SQLStore(url).close()
        yield schema, url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def postgres_store_url(postgres_server: str, _postgres_store_schema: tuple[str, str]) -> str:
    """A URL onto a migrated, empty PostgreSQL schema (configuration version 0)."""
    schema, url = _postgres_store_schema
    # DELETE, not TRUNCATE: on a few rows it is many times faster.
    with psycopg.connect(_libpq_url(postgres_server)) as conn:
        for table in reversed(storage_schema.metadata.sorted_tables):
            conn.execute(f'DELETE FROM "{schema}"."{table.name}"')
        conn.execute(f'INSERT INTO "{schema}".installation (id, config_version) VALUES (1, 0)')
    return url


@pytest.fixture(scope="session")
def _migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite database per session; tests get copies (migrating each is slower)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    SQLStore(f"sqlite:///{path}").close()  # closing the last connection folds the WAL back in
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, _migrated_sqlite_file: Path) -> str:
    """A URL onto a migrated SQLite database file of this test's own."""
    path = tmp_path / "certgate.db"
    shutil.copyfile(_migrated_sqlite_file, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    name = "sqlite_url" if request.param == "sqlite" else "postgres_store_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An empty store of each kind."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=SQL_STORE_KINDS)
def sql_url(request: pytest.FixtureRequest) -> str:
    """A URL onto an empty database (SQLite: a path, not yet created; PostgreSQL: a fresh schema)."""
    if request.param == "sqlite":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        return f"sqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# ============================================ end of store fixtures ===============================


# =================================================================================================
# Compiled-build check (owned by the build: setup.py, .ci/run)
#
# The report header says whether the edge's hot modules run compiled (mypyc) or as Python. With
# CERTGATE_EXPECT_COMPILED=1 (CI's run against a CERTGATE_MYPYC=1 build) the session stops at once
# unless every module of certgate.edge.compiled.MYPYC_MODULES was imported from a compiled
# extension. Compiled coroutines forward an exception into the awaitable they wait on with the
# three-argument throw(), which CPython deprecated in 3.12 (mypyc/mypyc#1214, in mypyc's runtime,
# not in certgate): only in such a run, that one warning is not turned into an error.
# =================================================================================================

EXPECT_COMPILED_ENV = "CERTGATE_EXPECT_COMPILED"
MYPYC_THROW_WARNING = r"the \(type, exc, tb\) signature of throw\(\) is deprecated:DeprecationWarning"


def pytest_report_header(config: pytest.Config) -> str:
    from certgate.edge.compiled import describe

    return f"certgate: {describe()}"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(EXPECT_COMPILED_ENV) != "1":
        return
    from certgate.edge.compiled import compiled_modules

    interpreted = [name for name, compiled in compiled_modules().items() if not compiled]
    if interpreted:
        raise pytest.UsageError(
            f"{EXPECT_COMPILED_ENV}=1 but these edge modules are not compiled: {', '.join(interpreted)}"
        )
    config.addinivalue_line("filterwarnings", f"ignore:{MYPYC_THROW_WARNING}")
