"""Adapters for ``certgate.services.ports``: stores (memory, SQLite, PostgreSQL) and the key sealer.

Only the composition root imports this package; services see the ports, never these classes.
``open_store`` picks the adapter from a URL:

- ``memory://``: ``MemoryStore`` (tests, throwaway runs);
- ``sqlite:///path/to/certgate.db``: ``SQLStore`` on SQLite (the default, WAL mode);
- ``postgresql://user@host/db`` (or ``postgres://``, ``postgresql+psycopg://``): ``SQLStore``
  on PostgreSQL through psycopg 3.

SQL databases are created if needed and migrated to the newest schema when opened.
"""

from __future__ import annotations

from certgate.errors import InvalidArgument
from certgate.services.ports import Store
from certgate.storage.keystore import (
    AESGCMSealer,
    MasterKeyError,
    SealError,
    load_or_create_master_key,
    master_key_from_env,
)
from certgate.storage.memory import MemoryStore
from certgate.storage.sql import SchemaError, SQLStore

__all__ = [
    "AESGCMSealer",
    "MasterKeyError",
    "MemoryStore",
    "SQLStore",
    "SchemaError",
    "SealError",
    "load_or_create_master_key",
    "master_key_from_env",
    "open_store",
]


def open_store(url: str) -> Store:
    """The store for ``url`` (see the module docstring); ``InvalidArgument`` for other URLs."""
    if url == "memory://" or url.startswith("memory://"):
        if url != "memory://":
            raise InvalidArgument("memory:// takes no path or options", reason="storage.url")
        return MemoryStore()
    if url.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+")):
        return SQLStore(url)
    raise InvalidArgument(
        "the database URL must start with memory://, sqlite:/// or postgresql://", reason="storage.url"
    )
