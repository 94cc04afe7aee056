"""Alembic environment: migrate the connection ``certgate.storage.sql`` hands over.

The caller owns the connection and its transaction (so the whole upgrade commits or rolls back
as one, under the caller's lock); this file never configures logging or reads alembic.ini.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from certgate.storage.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Developer use (``command.revision(..., autogenerate=True)``): connect to the configured URL.
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic_config() needs a connection or a URL")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("certgate migrations run online only")
main()
