"""The one SQL schema of certgate, for SQLite and PostgreSQL alike (SQLAlchemy Core).

This module is the target the migrations must reach: ``tests/storage/test_migrations.py``
compares a migrated database with ``metadata`` and fails on any difference. Change a table here
and add a revision under ``migrations/versions`` in the same commit; never edit a shipped revision.

Conventions: ids are the strings/ints of ``certgate.ids``; times are UTC (``UTCDateTime``); sealed
secrets are opaque bytes; a certificate's listed facts are flattened into columns next to its PEM.
Everything under a site references it with ``ON DELETE CASCADE`` so deleting a site is one
statement; revoked serials reference the authority, not a site, and outlive the site.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

UTC = dt.UTC

# Deterministic constraint names on both dialects, so later migrations can name what they alter
# (SQLite's batch mode needs names).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = String(64)  # 32-hex ids today; room for other shapes without a migration
NAME = String(255)  # hostnames and DNS names are at most 253 characters
SHORT = String(64)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every dialect.

    SQLite has no time zone type: values are stored as naive UTC text (which sorts correctly);
    PostgreSQL stores ``timestamptz``. A naive datetime is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"a timezone-aware datetime is required, got {value!r}")
        utc: dt.datetime = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"the database returned {value!r} for a datetime column")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite the text form is SQLAlchemy's own ("YYYY-MM-DD HH:MM:SS.ffffff", which sorts in
    # time order); these build and parse it in one C call each instead of SQLAlchemy's %-format of
    # seven fields, which cost ~5 us per value, and issuance binds five of them per certificate.
    # tests/storage/test_schema.py checks both against SQLAlchemy's DATETIME processors.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        to_naive_utc = self.process_bind_param

        def process(value: Any) -> str | None:
            naive = to_naive_utc(value, dialect)
            if naive is None:
                return None
            text = naive.isoformat(" ")
            return text if naive.microsecond else text + ".000000"  # isoformat drops a zero fraction

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        from_database = self.process_result_value
        parse = dt.datetime.fromisoformat

        def process(value: Any) -> dt.datetime | None:
            return from_database(parse(value) if isinstance(value, str) else value, dialect)

        return process


def _created_updated() -> list[Column[dt.datetime]]:
    return [
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    ]


def _certificate_summary() -> list[Column[Any]]:
    """The columns of ``model.CertificateSummary``."""
    return [
        Column("certificate_pem", Text, nullable=False),
        Column("common_name", Text, nullable=False),
        Column("subject_dn", Text, nullable=False),
        Column("issuer_dn", Text, nullable=False),
        Column("issuer_common_name", Text, nullable=False),
        Column("serial_hex", String(128), nullable=False),
        Column("fingerprint_sha256", String(64), nullable=False),
        Column("signature_algorithm", SHORT, nullable=False),
        Column("public_key_algorithm", SHORT, nullable=False),
        Column("san", Text, nullable=False),
        Column("not_before", UTCDateTime(), nullable=False),
        Column("not_after", UTCDateTime(), nullable=False),
    ]


def _site_fk() -> Column[int]:
    return Column("site_id", BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), nullable=False)


# -- installation -------------------------------------------------------------------------------

installation = Table(
    "installation",
    metadata,
    # One row (id = 1), written by the first migration. Its row lock serialises writers on
    # PostgreSQL; ``config_version`` is bumped once per committed dirty transaction.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("config_version", BigInteger, nullable=False),
)

nonces = Table(
    "nonces",
    metadata,
    Column("nonce", NAME, primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "expires_at"),
)

# -- accounts -----------------------------------------------------------------------------------

accounts = Table(
    "accounts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False),
    Column("instance_id", ID, nullable=False),
    Column("plan_name", SHORT, nullable=False),
    Column("plan_custom_ca_limit", Integer, nullable=False),
    Column("plan_hostnames_per_call", Integer, nullable=False),
    Column("plan_sites_limit", Integer, nullable=False),
    Column("plan_waf_rules_per_site", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "name", unique=True),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("account_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("sealed_secret", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Index(None, "account_id"),
)

authorities = Table(
    "authorities",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("account_id", ID, ForeignKey("accounts.id"), nullable=True),
    Column("certificate_pem", Text, nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "kind", "account_id"),
)

# -- sites and records --------------------------------------------------------------------------

sites = Table(
    "sites",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("account_id", ID, ForeignKey("accounts.id"), nullable=False),
    Column("name", NAME, nullable=False),
    Column("access_type", SHORT, nullable=False),
    Column("coverage", SHORT, nullable=False),
    Column("instance_id", ID, nullable=False),
    Column("status", SHORT, nullable=False),
    Column("verify_code", String(128), nullable=False),
    *_created_updated(),
    Index(None, "name", unique=True),  # site names are unique in an installation, as in ESA
    Index(None, "account_id", "name"),
)

records = Table(
    "records",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    _site_fk(),
    Column("name", NAME, nullable=False),
    Column("type", String(16), nullable=False),
    Column("ttl", Integer, nullable=False),
    Column("value", Text, nullable=False),
    Column("proxied", Boolean, nullable=False),
    Column("biz_name", SHORT, nullable=False),
    Column("comment", Text, nullable=False),
    *_created_updated(),
    Index(None, "name", unique=True),  # one record per hostname: get_record_by_name is a lookup
    Index(None, "site_id", "name"),
)

# -- client certificates and revocations --------------------------------------------------------

client_certificates = Table(
    "client_certificates",
    metadata,
    Column("id", ID, primary_key=True),
    Column("account_id", ID, ForeignKey("accounts.id"), nullable=False),
    _site_fk(),
    Column("authority_id", ID, ForeignKey("authorities.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("validity_days", Integer, nullable=False),
    *_certificate_summary(),
    *_created_updated(),
    Column("revoked_at", UTCDateTime(), nullable=True),
    # Paged listing, newest first: an index walk of (site_id, created_at desc, id desc).
    Index(None, "site_id", "created_at", "id"),
)

client_certificate_counts = Table(
    "client_certificate_counts",
    metadata,
    # The TotalCount of a site's certificate list, kept in step by the store (one row per site with
    # certificates): counting 100,000 index entries on every page costs tens of milliseconds.
    Column("site_id", BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
    Column("total", BigInteger, nullable=False),
)

revoked_serials = Table(
    "revoked_serials",
    metadata,
    Column("authority_id", ID, ForeignKey("authorities.id"), primary_key=True),
    Column("serial_hex", String(128), primary_key=True),
    Column("revoked_at", UTCDateTime(), nullable=False),
    Column("not_after", UTCDateTime(), nullable=False),
)

# -- custom client CAs and bindings -------------------------------------------------------------

ca_certificates = Table(
    "ca_certificates",
    metadata,
    Column("id", ID, primary_key=True),
    Column("account_id", ID, ForeignKey("accounts.id"), nullable=False),
    _site_fk(),
    Column("name", Text, nullable=False),
    *_certificate_summary(),
    *_created_updated(),
    Index(None, "site_id", "created_at", "id"),
    Index(None, "account_id"),
)

binding_hostnames = Table(
    "binding_hostnames",
    metadata,
    # No foreign key on ca_id: it names a managed authority or a custom CA.
    Column("site_id", BigInteger, ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
    Column("ca_id", ID, primary_key=True),
    Column("hostname", NAME, primary_key=True),
    Column("position", Integer, nullable=False),  # keeps the tuple's order
    Index(None, "ca_id"),
)

# -- rules --------------------------------------------------------------------------------------

waf_rules = Table(
    "waf_rules",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    _site_fk(),
    Column("ruleset_id", BigInteger, nullable=False),
    Column("phase", SHORT, nullable=False),
    Column("name", Text, nullable=False),
    Column("expression", Text, nullable=False),
    Column("action", String(16), nullable=False),
    Column("status", String(8), nullable=False),
    Column("position", Integer, nullable=False),
    Column("config_json", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "site_id", "position"),
)

origin_rules = Table(
    "origin_rules",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    _site_fk(),
    Column("name", Text, nullable=False),
    Column("expression", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("origin_scheme", String(16), nullable=True),
    Column("origin_http_port", Integer, nullable=True),
    Column("origin_https_port", Integer, nullable=True),
    Column("origin_host", NAME, nullable=True),
    Column("origin_sni", NAME, nullable=True),
    Column("origin_read_timeout", Integer, nullable=True),
    Column("dns_record", NAME, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "site_id", "sequence"),
)

# -- edge certificates --------------------------------------------------------------------------

edge_certificates = Table(
    "edge_certificates",
    metadata,
    Column("hostname", NAME, primary_key=True),
    _site_fk(),
    Column("chain_pem", Text, nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("uploaded", Boolean, nullable=False),
    Column("not_after", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "site_id"),
)
