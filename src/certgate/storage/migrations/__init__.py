"""Alembic migration scripts of certgate's SQL schema, shipped inside the package.

``certgate.storage.sql`` runs them on every open with a ``Config`` built in code (no alembic.ini).
To write a new revision after changing ``schema.py``::

    PYTHONPATH=src python -c "from alembic import command; from certgate.storage.sql import \\
        alembic_config; command.revision(alembic_config('sqlite:////tmp/head.db'), \\
        message='what changed', autogenerate=True)"

against a database already at head, then review the generated file by hand (it must stay valid
for SQLite and PostgreSQL; use ``op.batch_alter_table`` for SQLite column changes).
"""
