"""Initial schema: installation, nonces, accounts, authorities, sites, records, certificates, CAs,
bindings, rules, edge certificates.

Revision ID: 0001
Revises: -
Create Date: 2026-11-28

Frozen: this file describes the schema as it was shipped; later changes get their own revision.
It uses only plain SQLAlchemy types (no imports from certgate), so it keeps working when the
application's own types move.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _utc(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(column: str, target: str, table: str, *, cascade: bool = False) -> sa.ForeignKeyConstraint:
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint(
        [column],
        [target],
        name=f"fk_{table}_{column}_{referred}",
        ondelete="CASCADE" if cascade else None,
    )


def _summary() -> list[sa.Column[object]]:
    return [
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("common_name", sa.Text(), nullable=False),
        sa.Column("subject_dn", sa.Text(), nullable=False),
        sa.Column("issuer_dn", sa.Text(), nullable=False),
        sa.Column("issuer_common_name", sa.Text(), nullable=False),
        sa.Column("serial_hex", sa.String(length=128), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("signature_algorithm", sa.String(length=64), nullable=False),
        sa.Column("public_key_algorithm", sa.String(length=64), nullable=False),
        sa.Column("san", sa.Text(), nullable=False),
        _utc("not_before"),
        _utc("not_after"),
    ]


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("config_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_installation"),
    )
    op.bulk_insert(installation, [{"id": 1, "config_version": 0}])

    op.create_table(
        "nonces",
        sa.Column("nonce", sa.String(length=255), nullable=False),
        _utc("expires_at"),
        sa.PrimaryKeyConstraint("nonce", name="pk_nonces"),
    )
    op.create_index("ix_nonces_expires_at", "nonces", ["expires_at"])

    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("plan_name", sa.String(length=64), nullable=False),
        sa.Column("plan_custom_ca_limit", sa.Integer(), nullable=False),
        sa.Column("plan_hostnames_per_call", sa.Integer(), nullable=False),
        sa.Column("plan_sites_limit", sa.Integer(), nullable=False),
        sa.Column("plan_waf_rules_per_site", sa.Integer(), nullable=False),
        _utc("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
    )
    op.create_index("ix_accounts_name", "accounts", ["name"], unique=True)

    op.create_table(
        "access_keys",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        _utc("created_at"),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _fk("account_id", "accounts.id", "access_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_access_keys"),
    )
    op.create_index("ix_access_keys_account_id", "access_keys", ["account_id"])

    op.create_table(
        "authorities",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        _utc("created_at"),
        _fk("account_id", "accounts.id", "authorities"),
        sa.PrimaryKeyConstraint("id", name="pk_authorities"),
    )
    op.create_index("ix_authorities_kind_account_id", "authorities", ["kind", "account_id"])

    op.create_table(
        "sites",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("access_type", sa.String(length=64), nullable=False),
        sa.Column("coverage", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("verify_code", sa.String(length=128), nullable=False),
        _utc("created_at"),
        _utc("updated_at"),
        _fk("account_id", "accounts.id", "sites"),
        sa.PrimaryKeyConstraint("id", name="pk_sites"),
    )
    op.create_index("ix_sites_name", "sites", ["name"], unique=True)
    op.create_index("ix_sites_account_id_name", "sites", ["account_id", "name"])

    op.create_table(
        "records",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("proxied", sa.Boolean(), nullable=False),
        sa.Column("biz_name", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        _utc("created_at"),
        _utc("updated_at"),
        _fk("site_id", "sites.id", "records", cascade=True),
        sa.PrimaryKeyConstraint("id", name="pk_records"),
    )
    op.create_index("ix_records_name", "records", ["name"], unique=True)
    op.create_index("ix_records_site_id_name", "records", ["site_id", "name"])

    op.create_table(
        "client_certificates",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("authority_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=False),
        *_summary(),
        _utc("created_at"),
        _utc("updated_at"),
        _utc("revoked_at", nullable=True),
        _fk("account_id", "accounts.id", "client_certificates"),
        _fk("site_id", "sites.id", "client_certificates", cascade=True),
        _fk("authority_id", "authorities.id", "client_certificates"),
        sa.PrimaryKeyConstraint("id", name="pk_client_certificates"),
    )
    op.create_index(
        "ix_client_certificates_site_id_created_at_id",
        "client_certificates",
        ["site_id", "created_at", "id"],
    )

    op.create_table(
        "revoked_serials",
        sa.Column("authority_id", sa.String(length=64), nullable=False),
        sa.Column("serial_hex", sa.String(length=128), nullable=False),
        _utc("revoked_at"),
        _utc("not_after"),
        _fk("authority_id", "authorities.id", "revoked_serials"),
        sa.PrimaryKeyConstraint("authority_id", "serial_hex", name="pk_revoked_serials"),
    )

    op.create_table(
        "ca_certificates",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        *_summary(),
        _utc("created_at"),
        _utc("updated_at"),
        _fk("account_id", "accounts.id", "ca_certificates"),
        _fk("site_id", "sites.id", "ca_certificates", cascade=True),
        sa.PrimaryKeyConstraint("id", name="pk_ca_certificates"),
    )
    op.create_index(
        "ix_ca_certificates_site_id_created_at_id", "ca_certificates", ["site_id", "created_at", "id"]
    )
    op.create_index("ix_ca_certificates_account_id", "ca_certificates", ["account_id"])

    op.create_table(
        "binding_hostnames",
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("ca_id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _fk("site_id", "sites.id", "binding_hostnames", cascade=True),
        sa.PrimaryKeyConstraint("site_id", "ca_id", "hostname", name="pk_binding_hostnames"),
    )
    op.create_index("ix_binding_hostnames_ca_id", "binding_hostnames", ["ca_id"])

    op.create_table(
        "waf_rules",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("ruleset_id", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        _utc("updated_at"),
        _fk("site_id", "sites.id", "waf_rules", cascade=True),
        sa.PrimaryKeyConstraint("id", name="pk_waf_rules"),
    )
    op.create_index("ix_waf_rules_site_id_position", "waf_rules", ["site_id", "position"])

    op.create_table(
        "origin_rules",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("origin_scheme", sa.String(length=16), nullable=True),
        sa.Column("origin_http_port", sa.Integer(), nullable=True),
        sa.Column("origin_https_port", sa.Integer(), nullable=True),
        sa.Column("origin_host", sa.String(length=255), nullable=True),
        sa.Column("origin_sni", sa.String(length=255), nullable=True),
        sa.Column("origin_read_timeout", sa.Integer(), nullable=True),
        sa.Column("dns_record", sa.String(length=255), nullable=True),
        _utc("updated_at"),
        _fk("site_id", "sites.id", "origin_rules", cascade=True),
        sa.PrimaryKeyConstraint("id", name="pk_origin_rules"),
    )
    op.create_index("ix_origin_rules_site_id_sequence", "origin_rules", ["site_id", "sequence"])

    op.create_table(
        "edge_certificates",
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded", sa.Boolean(), nullable=False),
        _utc("not_after"),
        _utc("updated_at"),
        _fk("site_id", "sites.id", "edge_certificates", cascade=True),
        sa.PrimaryKeyConstraint("hostname", name="pk_edge_certificates"),
    )
    op.create_index("ix_edge_certificates_site_id", "edge_certificates", ["site_id"])


def downgrade() -> None:
    for table in (
        "edge_certificates",
        "origin_rules",
        "waf_rules",
        "binding_hostnames",
        "ca_certificates",
        "revoked_serials",
        "client_certificates",
        "records",
        "sites",
        "authorities",
        "access_keys",
        "accounts",
        "nonces",
        "installation",
    ):
        op.drop_table(table)
