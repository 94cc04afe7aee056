"""``certgate.storage.open_store``: the URL picks the adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from certgate.errors import InvalidArgument
from certgate.storage import MemoryStore, SQLStore, open_store


def test_memory_url_opens_a_memory_store() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    store.close()


def test_sqlite_url_opens_and_creates_a_database_file(tmp_path: Path) -> None:
    path = tmp_path / "certgate.db"
    store = open_store(f"sqlite:///{path}")
    try:
        assert isinstance(store, SQLStore) and store.dialect == "sqlite"
        assert path.is_file()
    finally:
        store.close()


@pytest.mark.postgres
def test_postgresql_url_opens_a_postgres_store(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")  # rewritten to psycopg 3 inside
    store = open_store(postgres_url)
    try:
        assert isinstance(store, SQLStore) and store.dialect == "postgresql"
        assert store.current_version() == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    "url", ["memory://x", "memory:///tmp/a", "", "redis://localhost", "/tmp/certgate.db"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        open_store(url)
    assert err.value.reason == "storage.url"
