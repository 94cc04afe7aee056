"""Per-site count of client certificates, so a page of a 100,000-certificate list does not count them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Frozen once shipped. Backfills the counts of the certificates already stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "client_certificate_counts",
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name="fk_client_certificate_counts_site_id_sites",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name="pk_client_certificate_counts"),
    )
    op.execute(
        "INSERT INTO client_certificate_counts (site_id, total) "
        "SELECT site_id, count(*) FROM client_certificates GROUP BY site_id"
    )


def downgrade() -> None:
    op.drop_table("client_certificate_counts")
