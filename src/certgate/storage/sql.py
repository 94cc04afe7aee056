"""``SQLStore``: the SQLite and PostgreSQL adapter of ``services.ports.Store`` (SQLAlchemy Core).

Opening a store migrates its database to the newest revision (Alembic, run in code, under a lock
so several processes may open one database at once). Transactions are serialised: SQLite takes
the write lock up front (``BEGIN IMMEDIATE``, WAL mode, so readers of ``current_version`` never
wait), PostgreSQL takes the row lock of the one-row ``installation`` table as the first statement
(``SELECT ... FOR UPDATE``). Holding that lock for the whole unit of work is what lets services
check-then-write (quotas, unique names) without races, and what makes the configuration version
gap-free: a dirty transaction bumps it with ``UPDATE ... RETURNING`` just before it commits.

Speed: a unit of work is begun and ended on the DBAPI connection, and the statements of the hot
paths (``_Statements``: the version, sites, the managed CA, certificates) are compiled once and
run on the DBAPI cursor with SQLAlchemy's own type conversions; the rest builds Core statements
per call. That split took service-level issuance from ~3.5 ms to a fraction of a millisecond of
CPU (``bench/ISSUANCE.md``).

Behaviour the ports leave open is pinned in ``storage.contract``; this module must never be
imported by services or the pure core.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.selectable import ReturnsRows

from certgate.errors import CertGateError, InvalidArgument
from certgate.ids import AccountId, CACertificateId, CertificateId, RecordId, RuleId, SiteId
from certgate.model import (
    AccessKey,
    Account,
    Authority,
    AuthorityKind,
    Binding,
    CertificateStatus,
    CertificateSummary,
    ClientCACertificate,
    ClientCertificate,
    EdgeCertificate,
    OriginRule,
    Plan,
    Record,
    RevokedSerial,
    RuleAction,
    RuleStatus,
    Site,
    WafRule,
)
from certgate.storage import schema as t
from certgate.storage.contract import (
    FinishedTransaction,
    ReadOnlyTransaction,
    TransactionGuard,
    already_exists,
    check_binding,
    check_match,
    check_page,
    not_found,
    parent_not_found,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Any constant works; it only has to be the same in every certgate process.
_MIGRATION_LOCK_KEY = 0x63657274_67617465 & 0x7FFF_FFFF_FFFF_FFFF

# Set on a Connection wrapped around a DBAPI connection whose transaction SQLStore already began.
_BEGUN = "certgate_begun"


class SchemaError(CertGateError):
    """The database cannot be used by this version of certgate (e.g. it was migrated by a newer one)."""

    default_reason = "storage.schema"


def normalize_url(url: str) -> URL:
    """The SQLAlchemy URL for a certgate database URL; refuses what certgate does not support.

    ``postgresql://`` and ``postgres://`` mean psycopg 3; ``sqlite:///path`` needs a file (use
    ``memory://`` with ``open_store`` for a throwaway store).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidArgument("not a database URL", reason="storage.url") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise InvalidArgument(
                f"PostgreSQL is supported through psycopg 3 only, not {driver!r}", reason="storage.url"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise InvalidArgument(f"unsupported SQLite driver {driver!r}", reason="storage.url")
        if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
            raise InvalidArgument(
                "SQLite needs a database file (sqlite:///path/to.db); use memory:// for a throwaway store",
                reason="storage.url",
            )
        return parsed.set(drivername="sqlite+pysqlite")
    raise InvalidArgument(f"unsupported database {parsed.drivername!r}", reason="storage.url")


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for certgate's migrations, built in code (no alembic.ini).

    Pass ``connection`` to migrate inside the caller's transaction, or ``url`` for developer
    commands such as ``command.revision(..., autogenerate=True)``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Put the database in WAL mode (it stays so: the mode is stored in the file).

    Switching modes needs an exclusive lock, and SQLite answers "database is locked" at once,
    without its busy handler, when several processes open a new database together. So the mode
    is read first (every open after the first finds WAL), and the switch is retried until the
    busy timeout."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.001
    while True:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _install_sqlite_hooks(engine: Engine, *, busy_timeout_ms: int, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the sqlite3 module, decides when a transaction begins (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _enable_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA foreign_keys = ON")
            # NORMAL is crash-safe in WAL mode; a power loss may forget the last commits.
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # Take the write lock before the first read: a deferred transaction that later writes
        # fails with SQLITE_BUSY when another writer got in first, and busy_timeout cannot help.
        # Store transactions begin on the DBAPI connection themselves (SQLStore._unit); this is
        # for migrations and tooling that use the engine directly.
        if not conn.get_execution_options().get(_BEGUN, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _install_postgres_hooks(engine: Engine, *, lock_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Wait for the writer lock at most this long instead of forever.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(lock_timeout_ms)}ms",))
        dbapi_connection.commit()


class SQLStore:
    """``Store`` on SQLite (``sqlite:///path``) or PostgreSQL (``postgresql://...``).

    ``lock_timeout`` is how long a transaction waits for the writer lock before failing;
    ``migrate=False`` skips the upgrade on open (the schema must then already be at head).
    ``sqlite_group_commit`` is the most units of work one SQLite commit may carry (``_Writers``;
    0 or 1: one commit per unit).
    """

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = 30.0,
        sqlite_synchronous: str = "FULL",
        pool_size: int = 5,
        migrate: bool = True,
        sqlite_group_commit: int = 32,
    ) -> None:
        if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidArgument("sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA")
        sa_url = normalize_url(url)
        timeout_ms = int(lock_timeout * 1000)
        if sa_url.get_backend_name() == "sqlite":
            # LIFO: a lone writer keeps reusing one connection, whose page cache stays valid
            # (SQLite drops a connection's cache whenever another connection has written).
            self._engine = create_engine(
                sa_url,
                connect_args={"timeout": lock_timeout},
                pool_size=pool_size,
                max_overflow=10,
                pool_use_lifo=True,
            )
            _install_sqlite_hooks(
                self._engine, busy_timeout_ms=timeout_ms, synchronous=sqlite_synchronous.upper()
            )
        else:
            self._engine = create_engine(sa_url, pool_size=pool_size, max_overflow=10)
            _install_postgres_hooks(self._engine, lock_timeout_ms=timeout_ms)
        self._guard = TransactionGuard()
        self._closed = False
        self._lock_timeout = lock_timeout
        # SQLite writers of this store queue here and commit in groups (_Writers); 0 or 1 turns
        # grouping off (every unit begins and commits on its own, as on PostgreSQL).
        self._writers = (
            _Writers(sqlite_group_commit)
            if sa_url.get_backend_name() == "sqlite" and sqlite_group_commit > 1
            else None
        )
        self._statements = _Statements(self._engine.dialect)
        self._connections = _Connections(self._engine, keep=pool_size)
        try:
            if migrate:
                self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for tooling and benchmarks (services never use it)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def _migrate(self) -> None:
        with self._engine.connect() as conn, conn.begin():
            if self.dialect == "postgresql":
                # Replicas starting together: one migrates, the others wait and find it done.
                conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            try:
                command.upgrade(alembic_config(connection=conn), "head")
            except CommandError as exc:
                raise SchemaError(f"cannot migrate the database to this version of certgate: {exc}") from exc

    def transaction(self) -> SQLTransaction:
        return SQLTransaction(self, read_only=False)

    def read_transaction(self) -> SQLTransaction:
        """A read-only unit of work (``storage.contract``): one consistent snapshot, no writer
        lock (PostgreSQL: REPEATABLE READ, READ ONLY; SQLite: a deferred WAL read)."""
        return SQLTransaction(self, read_only=True)

    def current_version(self) -> int:
        # Outside the nesting guard on purpose: a plain read that never waits for the writer lock.
        return SQLTransaction(self, read_only=True)._read_version_alone()

    def close(self) -> None:
        self._closed = True
        self._connections.close()
        self._engine.dispose()


class _Connections:
    """Pooled connections kept checked out between units of work, newest first.

    Checking a connection out of SQLAlchemy's pool and back in costs ~15-20 us of Python per
    unit of work; a stack of up to ``keep`` idle ones in front of the pool costs a lock. Limits
    are the pool's: connections beyond ``keep`` come from (and go back to) the pool and its
    overflow. A connection that was invalidated is never kept. LIFO, as the pool itself: one
    writer keeps reusing one connection, whose SQLite page cache then stays valid.
    """

    def __init__(self, engine: Engine, keep: int) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[PoolProxiedConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> PoolProxiedConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._engine.raw_connection()

    def put(self, pooled: PoolProxiedConnection) -> None:
        if pooled.is_valid:
            with self._lock:
                if self._closed:  # the pool is disposed: close the DBAPI connection for good
                    pooled.invalidate()
                    return
                if len(self._idle) < self._keep:
                    self._idle.append(pooled)
                    return
        pooled.close()

    def close(self) -> None:
        """Give every idle connection back to the pool; later ``put``s do the same (a unit of
        work still running in another thread when the store closes)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for pooled in idle:
            pooled.close()


class _Batch:
    """Units of work of one SQLite transaction, committed together (``_Writers``)."""

    __slots__ = ("broken", "done", "error", "pooled", "size")

    def __init__(self, pooled: PoolProxiedConnection) -> None:
        self.pooled = pooled
        self.size = 0
        # Set once the batch is committed or rolled back; made by the first unit that hands the
        # batch on (a lone writer never needs one).
        self.done: threading.Event | None = None
        self.error: BaseException | None = None  # why the batch's commit failed
        self.broken: BaseException | None = None  # why the batch cannot commit any more


class _Writers:
    """Group commit of one SQLite store's write units.

    SQLite's price for a durable commit is an ``fdatasync`` of the WAL: ~100-150 us of CPU on a
    virtio disk, a third of an issuance. Writers of the store queue on ``lock`` (the writer lock
    inside the process) and run one at a time, as before. When a unit ends while other writers
    are queued, it does not commit: it hands the still-open SQLite transaction to the next
    writer, which runs inside a ``SAVEPOINT`` of its own, and waits. The unit that ends with
    nobody queued (or the ``limit``-th) commits once for all of them. Every caller returns or
    raises only after that commit: nobody is told "done" before their data is durable.

    Isolation: a unit that fails is rolled back to its savepoint (the first of a batch, which
    has none, rolls the whole transaction back before anyone joined) and changes nothing; the
    others still commit. It still waits for the batch, since it may have read what the units
    before it wrote. If SQLite itself undoes the whole transaction (it does on a few errors,
    e.g. a full disk) or the commit fails, every unit of the batch raises. A lone writer takes
    no savepoint and commits at once: the same statements as without grouping. The price: a
    unit's caller also waits for the units after it in its batch (at most ``limit - 1``), so
    slow work (an RSA key, a network call) belongs before the unit of work, not inside it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self._count = threading.Lock()
        self.queued = 0  # writers waiting for ``lock``
        self.batch: _Batch | None = None  # the open transaction, while a unit holds ``lock``
        self.commits = 0  # batches committed (tests and benchmarks read it)

    def acquire(self, timeout: float) -> bool:
        if self.lock.acquire(blocking=False):  # nobody in the way: no need to queue
            return True
        with self._count:
            self.queued += 1
        try:
            acquired = self.lock.acquire(timeout=timeout)
        finally:
            with self._count:
                self.queued -= 1
                # A unit may have seen this writer queued and handed its batch on just as the
                # wait timed out: take the lock after all, or nobody would commit that batch.
                acquired = acquired or self.lock.acquire(blocking=False)
        return acquired

    def hand_on(self, batch: _Batch) -> bool:
        """Release the writer lock to a queued writer, batch still open, if there is one."""
        if self.queued == 0 or batch.size >= self.limit:  # a lone writer's fast path
            return False
        with self._count:
            if self.queued > 0:
                if batch.done is None:
                    batch.done = threading.Event()
                self.lock.release()
                return True
        return False


# -- row <-> entity -------------------------------------------------------------------------------

# A SQLAlchemy ``Row`` or a ``_Prepared`` row: both name the columns as attributes.
_Row = Any


def _summary_values(s: CertificateSummary) -> dict[str, Any]:
    return {
        "certificate_pem": s.certificate_pem,
        "common_name": s.common_name,
        "subject_dn": s.subject_dn,
        "issuer_dn": s.issuer_dn,
        "issuer_common_name": s.issuer_common_name,
        "serial_hex": s.serial_hex,
        "fingerprint_sha256": s.fingerprint_sha256,
        "signature_algorithm": s.signature_algorithm,
        "public_key_algorithm": s.public_key_algorithm,
        "san": s.san,
        "not_before": s.not_before,
        "not_after": s.not_after,
    }


def _summary(row: _Row) -> CertificateSummary:
    return CertificateSummary(
        certificate_pem=row.certificate_pem,
        common_name=row.common_name,
        subject_dn=row.subject_dn,
        issuer_dn=row.issuer_dn,
        issuer_common_name=row.issuer_common_name,
        serial_hex=row.serial_hex,
        fingerprint_sha256=row.fingerprint_sha256,
        signature_algorithm=row.signature_algorithm,
        public_key_algorithm=row.public_key_algorithm,
        san=row.san,
        not_before=row.not_before,
        not_after=row.not_after,
    )


def _account(row: _Row) -> Account:
    plan = Plan(
        custom_ca_limit=row.plan_custom_ca_limit,
        hostnames_per_call=row.plan_hostnames_per_call,
        sites_limit=row.plan_sites_limit,
        waf_rules_per_site=row.plan_waf_rules_per_site,
        name=row.plan_name,
    )
    return Account(AccountId(row.id), row.name, row.instance_id, plan, row.created_at)


def _plan_values(plan: Plan) -> dict[str, Any]:
    return {
        "plan_name": plan.name,
        "plan_custom_ca_limit": plan.custom_ca_limit,
        "plan_hostnames_per_call": plan.hostnames_per_call,
        "plan_sites_limit": plan.sites_limit,
        "plan_waf_rules_per_site": plan.waf_rules_per_site,
    }


def _access_key(row: _Row) -> AccessKey:
    return AccessKey(row.id, AccountId(row.account_id), bytes(row.sealed_secret), row.created_at, row.enabled)


def _authority(row: _Row) -> Authority:
    return Authority(
        id=CACertificateId(row.id),
        kind=AuthorityKind(row.kind),
        account_id=None if row.account_id is None else AccountId(row.account_id),
        certificate_pem=row.certificate_pem,
        sealed_key=bytes(row.sealed_key),
        created_at=row.created_at,
    )


def _site(row: _Row) -> Site:
    return Site(
        id=SiteId(row.id),
        account_id=AccountId(row.account_id),
        name=row.name,
        access_type=row.access_type,
        coverage=row.coverage,
        instance_id=row.instance_id,
        status=row.status,
        verify_code=row.verify_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _site_values(site: Site) -> dict[str, Any]:
    return {
        "id": site.id,
        "account_id": site.account_id,
        "name": site.name,
        "access_type": site.access_type,
        "coverage": site.coverage,
        "instance_id": site.instance_id,
        "status": site.status,
        "verify_code": site.verify_code,
        "created_at": site.created_at,
        "updated_at": site.updated_at,
    }


def _record(row: _Row) -> Record:
    return Record(
        id=RecordId(row.id),
        site_id=SiteId(row.site_id),
        name=row.name,
        type=row.type,
        ttl=row.ttl,
        value=row.value,
        proxied=row.proxied,
        biz_name=row.biz_name,
        comment=row.comment,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _client_certificate(row: _Row) -> ClientCertificate:
    return ClientCertificate(
        id=CertificateId(row.id),
        account_id=AccountId(row.account_id),
        site_id=SiteId(row.site_id),
        authority_id=CACertificateId(row.authority_id),
        status=CertificateStatus(row.status),
        validity_days=row.validity_days,
        cert=_summary(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
        revoked_at=row.revoked_at,
    )


def client_certificate_values(cert: ClientCertificate) -> dict[str, Any]:
    """The ``client_certificates`` row of ``cert`` (also used by the storage benchmark)."""
    return {
        "id": cert.id,
        "account_id": cert.account_id,
        "site_id": cert.site_id,
        "authority_id": cert.authority_id,
        "status": cert.status.value,
        "validity_days": cert.validity_days,
        **_summary_values(cert.cert),
        "created_at": cert.created_at,
        "updated_at": cert.updated_at,
        "revoked_at": cert.revoked_at,
    }


def _ca_certificate(row: _Row) -> ClientCACertificate:
    return ClientCACertificate(
        id=CACertificateId(row.id),
        account_id=AccountId(row.account_id),
        site_id=SiteId(row.site_id),
        name=row.name,
        cert=_summary(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _waf_rule(row: _Row) -> WafRule:
    return WafRule(
        id=RuleId(row.id),
        site_id=SiteId(row.site_id),
        ruleset_id=row.ruleset_id,
        phase=row.phase,
        name=row.name,
        expression=row.expression,
        action=RuleAction(row.action),
        status=RuleStatus(row.status),
        position=row.position,
        config_json=row.config_json,
        updated_at=row.updated_at,
    )


def _waf_rule_values(rule: WafRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "site_id": rule.site_id,
        "ruleset_id": rule.ruleset_id,
        "phase": rule.phase,
        "name": rule.name,
        "expression": rule.expression,
        "action": rule.action.value,
        "status": rule.status.value,
        "position": rule.position,
        "config_json": rule.config_json,
        "updated_at": rule.updated_at,
    }


def _origin_rule(row: _Row) -> OriginRule:
    return OriginRule(
        id=RuleId(row.id),
        site_id=SiteId(row.site_id),
        name=row.name,
        expression=row.expression,
        enabled=row.enabled,
        sequence=row.sequence,
        origin_scheme=row.origin_scheme,
        origin_http_port=row.origin_http_port,
        origin_https_port=row.origin_https_port,
        origin_host=row.origin_host,
        origin_sni=row.origin_sni,
        origin_read_timeout=row.origin_read_timeout,
        dns_record=row.dns_record,
        updated_at=row.updated_at,
    )


def _edge_certificate(row: _Row) -> EdgeCertificate:
    return EdgeCertificate(
        site_id=SiteId(row.site_id),
        hostname=row.hostname,
        chain_pem=row.chain_pem,
        sealed_key=bytes(row.sealed_key),
        uploaded=row.uploaded,
        not_after=row.not_after,
        updated_at=row.updated_at,
    )


def _name_filter(column: Any, name: str | None, match: str) -> list[ColumnElement[bool]]:
    """``storage.contract``'s matching: ASCII case-insensitive, LIKE wildcards in ``name`` escaped."""
    if not name:
        return []
    lowered = func.lower(column)
    value = name.lower()
    if match == "exact":
        return [lowered == value]
    if match == "prefix":
        return [lowered.startswith(value, autoescape=True)]
    if match == "suffix":
        return [lowered.endswith(value, autoescape=True)]
    return [lowered.contains(value, autoescape=True)]


def _copy_error(exc: BaseException) -> BaseException:
    """The same error for another unit of a failed batch (one exception object must not be
    raised in several threads at once: each raise rewrites its traceback)."""
    try:
        return copy.copy(exc)
    except Exception:
        return RuntimeError(f"the group commit failed: {exc!r}")


def _is_foreign_key_violation(exc: IntegrityError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23503")
    return "FOREIGN KEY constraint failed" in str(exc.orig)


# -- hot-path statements ----------------------------------------------------------------------------

# collections.namedtuple through a plain name: mypy only accepts literal field lists otherwise.
_make_row_type: Callable[..., Any] = collections.namedtuple


class _Prepared:
    """A Core statement compiled once for the store's dialect and run on the DBAPI cursor.

    The SQL text, the parameter conversions and the result conversions are the ones SQLAlchemy
    itself would use (the types' ``dialect_impl`` processors), so rows and stored values are
    identical to the Core path; what is skipped is the per-call work of building the statement,
    computing its cache key and wrapping the result: 20-100 us per statement, several times the
    cost of the statement itself on SQLite. Rows come back as named tuples.
    """

    __slots__ = ("_convert", "_get", "_literals", "_names", "_positional", "_results", "_row_type", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql: str = compiled.string
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        self._positional = bool(dialect.positional)
        names = tuple(compiled.positiontup or ()) if self._positional else tuple(by_name)
        self._names = names
        # Values written into the statement itself (LIMIT 1, kind = 'managed', ...).
        self._literals = {n: by_name[n].effective_value for n in names if not by_name[n].required}
        self._get: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*names) if len(names) > 1 else lambda values: tuple(values[n] for n in names)
        )
        self._convert = [
            (i, processor)
            for i, name in enumerate(names)
            if (processor := by_name[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        columns = list(statement.exported_columns) if isinstance(statement, ReturnsRows) else []
        self._row_type = _make_row_type("Row", [c.name for c in columns]) if columns else None
        self._results = [
            (i, processor)
            for i, c in enumerate(columns)
            if (processor := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        ]

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The DBAPI parameters for ``values`` (by bind name; literals need not be given)."""
        if self._literals:
            values = {**self._literals, **values}
        row: Any = self._get(values)
        if self._convert:
            row = list(row)
            for i, process in self._convert:
                row[i] = process(row[i])
        return tuple(row) if self._positional else dict(zip(self._names, row, strict=True))

    def row(self, raw: Any) -> Any:
        """A named tuple of the converted columns of a DBAPI row (``None`` stays ``None``)."""
        if raw is None or self._row_type is None:
            return None
        if not self._results:
            return self._row_type._make(raw)
        values = list(raw)
        for i, processor in self._results:
            values[i] = processor(values[i])
        return self._row_type._make(values)


def _upsert(dialect: Dialect, table: Table) -> PostgresInsert | SQLiteInsert:
    return postgresql.insert(table) if dialect.name == "postgresql" else sqlite.insert(table)


def _insert_all(dialect: Dialect, table: Table) -> PostgresInsert | SQLiteInsert:
    """``INSERT ... ON CONFLICT DO NOTHING`` of every column, bound by column name."""
    values = {c.name: bindparam(c.name, type_=c.type) for c in table.c}
    return _upsert(dialect, table).values(values).on_conflict_do_nothing()


class _Statements:
    """The statements of the hot paths (every unit of work, issuance, the certificate use cases),
    compiled once per store; everything else builds its statement per call through Core."""

    def __init__(self, dialect: Dialect) -> None:
        i = t.installation
        version = select(i.c.config_version).where(i.c.id == 1)
        self.version = _Prepared(version, dialect)
        # PostgreSQL: the writer lock (SQLite takes it with BEGIN IMMEDIATE instead).
        self.lock_version = _Prepared(version.with_for_update(), dialect)
        self.bump = _Prepared(
            update(i)
            .where(i.c.id == 1)
            .values(config_version=i.c.config_version + 1)
            .returning(i.c.config_version),
            dialect,
        )
        s = t.sites
        self.get_site = _Prepared(
            select(s).where(s.c.id == bindparam("site_id"), s.c.account_id == bindparam("account_id")),
            dialect,
        )
        a = t.authorities
        self.managed_authority = _Prepared(
            select(a)
            .where(a.c.kind == AuthorityKind.MANAGED.value, a.c.account_id == bindparam("account_id"))
            .order_by(a.c.created_at.desc(), a.c.id.desc())
            .limit(1),
            dialect,
        )
        self.add_client_certificate = _Prepared(_insert_all(dialect, t.client_certificates), dialect)
        n = t.nonces
        # Every signed API call claims its nonce in a unit of work of its own.
        self.forget_nonces = _Prepared(
            delete(n).where(n.c.expires_at < bindparam("now", type_=n.c.expires_at.type)), dialect
        )
        self.claim_nonce = _Prepared(_insert_all(dialect, n), dialect)
        counts = t.client_certificate_counts
        count = _upsert(dialect, counts).values(site_id=bindparam("site_id"), total=bindparam("delta"))
        self.count_certificates = _Prepared(
            count.on_conflict_do_update(
                index_elements=["site_id"], set_={"total": counts.c.total + count.excluded.total}
            ),
            dialect,
        )


class SQLTransaction:
    """One unit of work on an ``SQLStore``; only valid inside its ``with`` block.

    It is its own context manager (``SQLStore.transaction()`` returns it unopened): ``__enter__``
    takes a connection and begins, ``__exit__`` bumps the version if dirty and commits, or rolls
    back, and always gives the connection back. The transaction is begun and ended on the DBAPI
    connection, not through a SQLAlchemy Connection, whose envelope alone cost ~50 us of CPU per
    unit of work; methods off the hot path still run SQLAlchemy Core, on a Connection wrapped
    around the same DBAPI connection on first use (``_read``).
    """

    def __init__(self, store: SQLStore, *, read_only: bool) -> None:
        self._store = store
        self._engine = store._engine
        self._sql = store._statements
        self._pooled: Any = None  # PoolProxiedConnection while open
        self._dbapi: Any = None
        self._cursor: Any = None
        self._conn: Connection | None = None  # the Core Connection, made on first use
        self._base: int | None = None  # the committed version, read at most once
        self._dirty = False
        self._finished = True  # until __enter__
        self._read_only = read_only
        self._dialect = self._engine.dialect.name
        self._restore: dict[str, Any] | None = None  # PostgreSQL session characteristics to undo
        # SQLite writers with group commit: the batch this unit runs in, and whether it runs
        # inside a savepoint (every unit but the first of a batch).
        self._writers = None if read_only else store._writers
        self._batch: _Batch | None = None
        self._savepoint = False

    # -- the envelope -----------------------------------------------------------------------------

    def __enter__(self) -> SQLTransaction:
        if self._store._closed:
            raise RuntimeError("the store is closed")
        if self._pooled is not None:
            raise RuntimeError("a transaction object can be entered once")
        guard = self._store._guard
        guard.acquire()
        if self._writers is not None:
            try:
                self._enter_batch()
            except BaseException:
                guard.release()
                raise
            return self
        try:
            self._open_and_begin()
        except BaseException:
            guard.release()
            raise
        return self

    def _open_and_begin(self) -> None:
        """Take a connection and begin the transaction; on failure give the connection back."""
        self._open()
        try:
            self._begin()
        except BaseException as exc:
            self._finish(exc)
            raise

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._batch is not None:
            try:
                failure = exc
                if failure is None and self._dirty:
                    try:
                        self._bump()
                    except BaseException as bump_failure:
                        failure = bump_failure
                self._leave_batch(failure, exc)
            finally:
                self._store._guard.release()
            return
        try:
            if exc is None:
                try:
                    if self._dirty:
                        self._bump()
                except BaseException as failure:
                    self._finish(failure)
                    raise
                self._finish(None)
            else:
                self._finish(exc)
        finally:
            self._store._guard.release()

    # -- group commit (SQLite writers, _Writers) ----------------------------------------------------

    def _enter_batch(self) -> None:
        writers = self._writers
        assert writers is not None
        if not writers.acquire(self._store._lock_timeout):
            exc = self._engine.dialect.loaded_dbapi.OperationalError("database is locked")
            raise OperationalError("BEGIN IMMEDIATE", (), exc) from exc
        batch = writers.batch
        if batch is None:  # the first unit: begin the transaction the batch shares
            try:
                self._open_and_begin()
            except BaseException:
                writers.lock.release()
                raise
            batch = writers.batch = _Batch(self._pooled)
        else:
            self._pooled = batch.pooled
            self._dbapi = batch.pooled.dbapi_connection
            self._finished = False
            self._savepoint = True
        self._batch = batch
        batch.size += 1
        if self._savepoint:
            try:
                self._run_sql("SAVEPOINT certgate_unit")
            except BaseException as exc:
                batch.broken = exc
                self._leave_batch(exc)  # ends the batch (broken) and raises
                raise

    def _leave_batch(self, failure: BaseException | None, raised: BaseException | None = None) -> None:
        """End this unit: keep or undo its work, then commit the batch or hand it on; return or
        raise only once the batch is committed (or undone). ``raised`` is the exception the
        unit's body raised (``__exit__`` lets it propagate)."""
        batch, writers = self._batch, self._writers
        assert batch is not None and writers is not None
        self._finished = True
        if failure is None and self._savepoint:
            try:
                self._run_sql("RELEASE certgate_unit")
            except BaseException as exc:
                failure = exc
        if failure is not None and batch.broken is None:
            if self._savepoint:
                self._undo_unit(failure)
            else:  # the first unit: nobody joined yet, so the whole transaction is this unit's
                batch.broken = failure
        self._drop_unit_handles()
        if batch.broken is None and writers.hand_on(batch):
            assert batch.done is not None
            batch.done.wait()  # the next writer runs in this transaction; one of them commits
        else:
            self._end_batch(batch)
        if failure is not None:
            if failure is raised:
                return
            raise failure
        if batch.error is not None:
            raise _copy_error(batch.error) from batch.error

    def _undo_unit(self, failure: BaseException) -> None:
        batch = self._batch
        assert batch is not None
        try:
            if self._pooled.is_valid and self._dbapi.in_transaction:
                self._run_sql("ROLLBACK TO certgate_unit")
                self._run_sql("RELEASE certgate_unit")
        except BaseException as exc:
            batch.broken = exc
            return
        if not self._pooled.is_valid or not self._dbapi.in_transaction:
            batch.broken = failure  # SQLite (or a lost connection) undid the whole batch

    def _drop_unit_handles(self) -> None:
        """This unit's cursor and Core Connection; the DBAPI connection stays with the batch."""
        cursor, self._cursor, self._conn = self._cursor, None, None
        if cursor is not None and self._pooled.is_valid:
            try:
                cursor.close()
            except Exception as exc:
                self._pooled.invalidate(exc)

    def _end_batch(self, batch: _Batch) -> None:
        """Commit (or, if broken, roll back) the batch, give its connection back and wake its
        units; then let the next writer in. Called by the unit holding the writer lock."""
        writers = self._writers
        assert writers is not None
        pooled = batch.pooled
        dbapi: Any = pooled.dbapi_connection
        try:
            if batch.broken is None:
                try:
                    dbapi.commit()
                    writers.commits += 1
                except BaseException as exc:
                    batch.error = (
                        self._translate(exc, "COMMIT", ())
                        if isinstance(exc, self._engine.dialect.loaded_dbapi.Error)
                        else exc
                    )
            if batch.broken is not None or batch.error is not None:
                try:
                    if pooled.is_valid:
                        dbapi.rollback()
                except Exception as exc:
                    if pooled.is_valid:
                        pooled.invalidate(exc)
                if batch.error is None and batch.size > 1:
                    batch.error = batch.broken
        finally:
            writers.batch = None
            self._store._connections.put(pooled)
            if batch.done is not None:
                batch.done.set()
            writers.lock.release()

    def _read_version_alone(self) -> int:
        """``current_version()``: one read on a connection of the stack, outside any guard."""
        if self._store._closed:
            raise RuntimeError("the store is closed")
        self._open()
        try:
            version = self.config_version()
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)
        return version

    def _open(self) -> None:
        self._pooled = self._store._connections.get()
        self._dbapi = self._pooled.dbapi_connection
        self._finished = False

    def _finish(self, failure: BaseException | None) -> None:
        """Commit (no ``failure``) or roll back, then give the connection back; a failed commit
        is rolled back and raised."""
        self._finished = True
        try:
            if failure is None:
                try:
                    self._commit()
                except BaseException as exc:
                    self._rollback(exc)
                    raise
            else:
                self._rollback(failure)
        finally:
            self._release()

    def _begin(self) -> None:
        if self._dialect == "sqlite":
            self._run_sql("BEGIN" if self._read_only else "BEGIN IMMEDIATE")
        elif self._read_only:
            psycopg = self._engine.dialect.loaded_dbapi
            self._restore = {
                "isolation_level": self._dbapi.isolation_level,
                "read_only": self._dbapi.read_only,
            }
            self._dbapi.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._dbapi.read_only = True
        else:  # the row lock of the installation row is the writer lock; its value is the base
            self._base = self._execute(self._sql.lock_version, {}).fetchone()[0]

    def _bump(self) -> None:
        new: int = self._execute(self._sql.bump, {}).fetchone()[0]
        # Under the writer lock nobody else can move it; the check guards the lock itself.
        if self._base is not None and new != self._base + 1:
            raise RuntimeError(f"configuration version moved from {self._base} to {new} under the lock")

    def _commit(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction():
            conn.commit()
        else:
            try:
                self._dbapi.commit()
            except self._engine.dialect.loaded_dbapi.Error as exc:
                raise self._translate(exc, "COMMIT", ()) from exc

    def _rollback(self, cause: BaseException) -> None:
        """Best effort: the caller re-raises ``cause``; a connection that cannot even roll back
        is invalidated so the pool never hands it out again."""
        try:
            conn = self._conn
            if conn is not None and conn.in_transaction():
                conn.rollback()
            if self._pooled.is_valid:
                self._dbapi.rollback()
        except Exception:
            if self._pooled.is_valid:
                self._pooled.invalidate(cause if isinstance(cause, Exception) else None)

    def _release(self) -> None:
        pooled = self._pooled
        try:
            if self._restore is not None and pooled.is_valid:
                for name, value in self._restore.items():
                    setattr(self._dbapi, name, value)
            if self._cursor is not None and pooled.is_valid:
                self._cursor.close()
        except Exception as exc:
            pooled.invalidate(exc)
        finally:
            # A Core Connection made by _read is dropped, not closed: closing it would check the
            # DBAPI connection back into the pool behind the stack's back. It holds no
            # transaction any more (committed or rolled back above).
            self._conn = None
            self._cursor = None
            self._store._connections.put(pooled)

    # -- running statements -----------------------------------------------------------------------

    def _translate(self, exc: Any, sql: str, params: Any) -> StatementError:
        """The SQLAlchemy exception the Core path would raise for ``exc`` (so callers see one
        taxonomy); a lost connection is invalidated, as Core does."""
        dialect = self._engine.dialect
        lost = bool(dialect.is_disconnect(exc, self._dbapi, self._cursor))
        if lost and self._pooled.is_valid:
            self._pooled.invalidate(exc)
        error: StatementError = DBAPIError.instance(
            sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        )
        return error

    def _run_sql(self, sql: str) -> None:
        if self._cursor is None:
            self._cursor = self._dbapi.cursor()
        try:
            self._cursor.execute(sql)
        except self._engine.dialect.loaded_dbapi.Error as exc:
            raise self._translate(exc, sql, ()) from exc

    def _execute(self, statement: _Prepared, values: Mapping[str, Any]) -> Any:
        """Run ``statement`` on the DBAPI cursor; returns the cursor (fetch before the next call)."""
        if self._finished:
            raise FinishedTransaction()
        try:
            params = statement.parameters(values)
        except Exception as exc:  # a type refused a value, e.g. a naive datetime
            raise StatementError(str(exc), statement.sql, values, exc) from exc
        if self._cursor is None:
            self._cursor = self._dbapi.cursor()
        try:
            self._cursor.execute(statement.sql, params)
        except self._engine.dialect.loaded_dbapi.Error as exc:
            raise self._translate(exc, statement.sql, params) from exc
        return self._cursor

    def _first(self, statement: _Prepared, values: Mapping[str, Any]) -> Any:
        return statement.row(self._execute(statement, values).fetchone())

    def _live(self) -> None:
        if self._finished:
            raise FinishedTransaction()

    def _mark_dirty(self) -> None:
        self._live()
        if self._read_only:
            raise ReadOnlyTransaction()
        self._dirty = True

    def _read(self) -> Connection:
        """The Core Connection on this unit's DBAPI connection (made on first use)."""
        self._live()
        conn = self._conn
        if conn is None:
            conn = Connection(self._engine, connection=self._pooled)
            conn.execution_options(**{_BEGUN: True})  # on_begin must not BEGIN a second time
            self._conn = conn
        return conn

    def _write(self) -> Connection:
        self._mark_dirty()
        return self._read()

    def _insert_statement(self, table: Table) -> PostgresInsert | SQLiteInsert:
        # preserve_rowcount: SQLAlchemy does not keep an INSERT's rowcount otherwise (psycopg
        # then reports -1), and ON CONFLICT DO NOTHING is only told apart by rowcount 0.
        if self._dialect == "postgresql":
            return postgresql.insert(table).execution_options(preserve_rowcount=True)
        return sqlite.insert(table).execution_options(preserve_rowcount=True)

    def _add(self, table: Table, values: Mapping[str, Any], what: str, key: object) -> None:
        """INSERT, turning a key clash into AlreadyExists and a dangling reference into NotFound.

        ``ON CONFLICT DO NOTHING`` keeps a clash from aborting a PostgreSQL transaction.
        """
        conn = self._write()
        statement = self._insert_statement(table).on_conflict_do_nothing()
        try:
            result = conn.execute(statement, dict(values))
        except IntegrityError as exc:
            if _is_foreign_key_violation(exc):
                raise parent_not_found(what) from exc
            raise
        if result.rowcount == 0:
            raise already_exists(what, key)

    def _add_prepared(self, statement: _Prepared, values: Mapping[str, Any], what: str, key: object) -> None:
        """``_add`` for a statement of ``_Statements``."""
        self._mark_dirty()
        try:
            cursor = self._execute(statement, values)
        except IntegrityError as exc:
            if _is_foreign_key_violation(exc):
                raise parent_not_found(what) from exc
            raise
        if cursor.rowcount == 0:
            raise already_exists(what, key)

    def _update(
        self, table: Table, where: ColumnElement[bool], values: Mapping[str, Any], what: str, key: object
    ) -> None:
        conn = self._write()
        try:
            result = conn.execute(update(table).where(where).values(**values))
        except IntegrityError as exc:
            if _is_foreign_key_violation(exc):
                raise parent_not_found(what) from exc
            raise
        if result.rowcount == 0:
            raise not_found(what, key)

    def _count(self, table: Table, *where: ColumnElement[bool]) -> int:
        count: int = self._read().execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        return count

    # -- installation -----------------------------------------------------------------------------

    def config_version(self) -> int:
        self._live()
        if self._base is None:  # SQLite writers and all readers read it on demand
            self._base = int(self._execute(self._sql.version, {}).fetchone()[0])
        return self._base + (1 if self._dirty else 0)

    def claim_nonce(self, nonce: str, *, now: dt.datetime, expires_at: dt.datetime) -> bool:
        self._live()
        if self._read_only:
            raise ReadOnlyTransaction()
        self._execute(self._sql.forget_nonces, {"now": now})
        cursor = self._execute(self._sql.claim_nonce, {"nonce": nonce, "expires_at": expires_at})
        return bool(cursor.rowcount == 1)

    def add_authority(self, authority: Authority) -> None:
        values = {
            "id": authority.id,
            "kind": authority.kind.value,
            "account_id": authority.account_id,
            "certificate_pem": authority.certificate_pem,
            "sealed_key": authority.sealed_key,
            "created_at": authority.created_at,
        }
        self._add(t.authorities, values, "authority", authority.id)

    def _newest_authority(self, *where: ColumnElement[bool]) -> Authority | None:
        a = t.authorities
        row = (
            self._read()
            .execute(select(a).where(*where).order_by(a.c.created_at.desc(), a.c.id.desc()).limit(1))
            .first()
        )
        return None if row is None else _authority(row)

    def get_edge_authority(self) -> Authority | None:
        return self._newest_authority(t.authorities.c.kind == AuthorityKind.EDGE.value)

    def get_managed_authority(self, account_id: AccountId) -> Authority | None:
        row = self._first(self._sql.managed_authority, {"account_id": account_id})
        return None if row is None else _authority(row)

    def list_managed_authorities(self) -> list[Authority]:
        a = t.authorities
        rows = self._read().execute(
            select(a).where(a.c.kind == AuthorityKind.MANAGED.value).order_by(a.c.created_at, a.c.id)
        )
        return [_authority(row) for row in rows]

    # -- accounts ---------------------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        values = {
            "id": account.id,
            "name": account.name,
            "instance_id": account.instance_id,
            **_plan_values(account.plan),
            "created_at": account.created_at,
        }
        self._add(t.accounts, values, "account", account.id)

    def get_account(self, account_id: AccountId) -> Account | None:
        row = self._read().execute(select(t.accounts).where(t.accounts.c.id == account_id)).first()
        return None if row is None else _account(row)

    def get_account_by_name(self, name: str) -> Account | None:
        row = self._read().execute(select(t.accounts).where(t.accounts.c.name == name)).first()
        return None if row is None else _account(row)

    def list_accounts(self) -> list[Account]:
        a = t.accounts
        return [_account(row) for row in self._read().execute(select(a).order_by(a.c.created_at, a.c.id))]

    def set_account_plan(self, account_id: AccountId, plan: Plan) -> None:
        self._update(t.accounts, t.accounts.c.id == account_id, _plan_values(plan), "account", account_id)

    def add_access_key(self, key: AccessKey) -> None:
        values = {
            "id": key.id,
            "account_id": key.account_id,
            "sealed_secret": key.sealed_secret,
            "created_at": key.created_at,
            "enabled": key.enabled,
        }
        self._add(t.access_keys, values, "access key", key.id)

    def get_access_key(self, key_id: str) -> AccessKey | None:
        row = self._read().execute(select(t.access_keys).where(t.access_keys.c.id == key_id)).first()
        return None if row is None else _access_key(row)

    def list_access_keys(self, account_id: AccountId) -> list[AccessKey]:
        k = t.access_keys
        rows = self._read().execute(
            select(k).where(k.c.account_id == account_id).order_by(k.c.created_at, k.c.id)
        )
        return [_access_key(row) for row in rows]

    # -- sites and records ------------------------------------------------------------------------

    def add_site(self, site: Site) -> None:
        self._add(t.sites, _site_values(site), "site", site.id)

    def get_site(self, account_id: AccountId, site_id: SiteId) -> Site | None:
        row = self._first(self._sql.get_site, {"site_id": site_id, "account_id": account_id})
        return None if row is None else _site(row)

    def get_site_by_name(self, name: str) -> Site | None:
        row = self._read().execute(select(t.sites).where(t.sites.c.name == name)).first()
        return None if row is None else _site(row)

    def list_sites(
        self, account_id: AccountId, *, name: str | None, match: str, offset: int, limit: int
    ) -> tuple[list[Site], int]:
        check_match(match)
        check_page(offset, limit)
        s = t.sites
        where = [s.c.account_id == account_id, *_name_filter(s.c.name, name, match)]
        rows = self._read().execute(
            select(s).where(*where).order_by(s.c.name, s.c.id).offset(offset).limit(limit)
        )
        return [_site(row) for row in rows], self._count(s, *where)

    def delete_site(self, site_id: SiteId) -> None:
        # Everything under the site goes with it through ON DELETE CASCADE (schema.py).
        self._write().execute(delete(t.sites).where(t.sites.c.id == site_id))

    def list_all_sites(self) -> list[Site]:
        return [_site(row) for row in self._read().execute(select(t.sites).order_by(t.sites.c.id))]

    def add_record(self, record: Record) -> None:
        values = {
            "id": record.id,
            "site_id": record.site_id,
            "name": record.name,
            "type": record.type,
            "ttl": record.ttl,
            "value": record.value,
            "proxied": record.proxied,
            "biz_name": record.biz_name,
            "comment": record.comment,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
        self._add(t.records, values, "record", record.id)

    def get_record(self, site_id: SiteId, record_id: RecordId) -> Record | None:
        r = t.records.c
        row = self._read().execute(select(t.records).where(r.id == record_id, r.site_id == site_id)).first()
        return None if row is None else _record(row)

    def get_record_by_name(self, name: str) -> Record | None:
        row = self._read().execute(select(t.records).where(t.records.c.name == name)).first()
        return None if row is None else _record(row)

    def list_records(
        self, site_id: SiteId, *, name: str | None, match: str, offset: int, limit: int
    ) -> tuple[list[Record], int]:
        check_match(match)
        check_page(offset, limit)
        r = t.records
        where = [r.c.site_id == site_id, *_name_filter(r.c.name, name, match)]
        rows = self._read().execute(
            select(r).where(*where).order_by(r.c.name, r.c.id).offset(offset).limit(limit)
        )
        return [_record(row) for row in rows], self._count(r, *where)

    def delete_record(self, record_id: RecordId) -> None:
        self._write().execute(delete(t.records).where(t.records.c.id == record_id))

    def list_all_records(self) -> list[Record]:
        return [_record(row) for row in self._read().execute(select(t.records).order_by(t.records.c.id))]

    # -- client certificates ----------------------------------------------------------------------

    def _count_certificates(self, site_id: SiteId, delta: int) -> None:
        self._execute(self._sql.count_certificates, {"site_id": site_id, "delta": delta})

    def add_client_certificate(self, cert: ClientCertificate) -> None:
        values = client_certificate_values(cert)
        self._add_prepared(self._sql.add_client_certificate, values, "client certificate", cert.id)
        self._count_certificates(cert.site_id, 1)

    def get_client_certificate(
        self, account_id: AccountId, site_id: SiteId, cert_id: CertificateId
    ) -> ClientCertificate | None:
        c = t.client_certificates
        row = (
            self._read()
            .execute(select(c).where(c.c.id == cert_id, c.c.account_id == account_id, c.c.site_id == site_id))
            .first()
        )
        return None if row is None else _client_certificate(row)

    def list_client_certificates(
        self, site_id: SiteId, *, offset: int, limit: int
    ) -> tuple[list[ClientCertificate], int]:
        """Newest first. Two things keep a page of a 100,000-row list in milliseconds: the total
        comes from ``client_certificate_counts``, and the offset is walked in the covering index
        ``(site_id, created_at, id)`` alone (a deferred join fetches only the page's rows), from
        whichever end of the list is nearer."""
        check_page(offset, limit)
        conn = self._read()
        counts = t.client_certificate_counts
        total = conn.execute(select(counts.c.total).where(counts.c.site_id == site_id)).scalar() or 0
        limit = min(limit, total - offset)
        if limit <= 0:
            return [], total
        c = t.client_certificates
        newest_first = (c.c.created_at.desc(), c.c.id.desc())
        if offset <= total // 2:
            keys = select(c.c.id).where(c.c.site_id == site_id).order_by(*newest_first).offset(offset)
        else:  # walk from the oldest end: the same rows, found in fewer steps
            keys = (
                select(c.c.id)
                .where(c.c.site_id == site_id)
                .order_by(c.c.created_at, c.c.id)
                .offset(total - offset - limit)
            )
        page = keys.limit(limit).subquery()
        rows = conn.execute(select(c).join(page, c.c.id == page.c.id).order_by(*newest_first))
        return [_client_certificate(row) for row in rows], total

    def update_client_certificate(self, cert: ClientCertificate) -> None:
        """Certificates never move between sites: the stored one must have ``cert.site_id``."""
        c = t.client_certificates
        values = client_certificate_values(cert)
        del values["id"], values["site_id"]
        where = (c.c.id == cert.id) & (c.c.site_id == cert.site_id)
        self._update(c, where, values, "client certificate", cert.id)

    def delete_client_certificate(self, cert_id: CertificateId) -> None:
        c = t.client_certificates
        site_id = self._write().execute(delete(c).where(c.c.id == cert_id).returning(c.c.site_id)).scalar()
        if site_id is not None:
            self._count_certificates(SiteId(site_id), -1)

    def add_revoked_serial(self, entry: RevokedSerial) -> None:
        values = {
            "authority_id": entry.authority_id,
            "serial_hex": entry.serial_hex,
            "revoked_at": entry.revoked_at,
            "not_after": entry.not_after,
        }
        self._add(t.revoked_serials, values, "revoked serial", entry.serial_hex)

    def remove_revoked_serial(self, authority_id: CACertificateId, serial_hex: str) -> None:
        r = t.revoked_serials.c
        self._write().execute(
            delete(t.revoked_serials).where(r.authority_id == authority_id, r.serial_hex == serial_hex)
        )

    def list_revoked_serials(self) -> list[RevokedSerial]:
        r = t.revoked_serials
        rows = self._read().execute(select(r).order_by(r.c.authority_id, r.c.serial_hex))
        return [
            RevokedSerial(CACertificateId(row.authority_id), row.serial_hex, row.revoked_at, row.not_after)
            for row in rows
        ]

    # -- custom client CAs ------------------------------------------------------------------------

    def add_ca_certificate(self, ca: ClientCACertificate) -> None:
        values = {
            "id": ca.id,
            "account_id": ca.account_id,
            "site_id": ca.site_id,
            "name": ca.name,
            **_summary_values(ca.cert),
            "created_at": ca.created_at,
            "updated_at": ca.updated_at,
        }
        self._add(t.ca_certificates, values, "CA certificate", ca.id)

    def get_ca_certificate(
        self, account_id: AccountId, site_id: SiteId, ca_id: CACertificateId
    ) -> ClientCACertificate | None:
        c = t.ca_certificates
        row = (
            self._read()
            .execute(select(c).where(c.c.id == ca_id, c.c.account_id == account_id, c.c.site_id == site_id))
            .first()
        )
        return None if row is None else _ca_certificate(row)

    def list_ca_certificates(
        self, site_id: SiteId, *, offset: int, limit: int
    ) -> tuple[list[ClientCACertificate], int]:
        check_page(offset, limit)
        c = t.ca_certificates
        rows = self._read().execute(
            select(c)
            .where(c.c.site_id == site_id)
            .order_by(c.c.created_at.desc(), c.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return [_ca_certificate(row) for row in rows], self._count(c, c.c.site_id == site_id)

    def count_ca_certificates(self, account_id: AccountId) -> int:
        return self._count(t.ca_certificates, t.ca_certificates.c.account_id == account_id)

    def delete_ca_certificate(self, ca_id: CACertificateId) -> None:
        conn = self._write()
        conn.execute(delete(t.binding_hostnames).where(t.binding_hostnames.c.ca_id == ca_id))
        conn.execute(delete(t.ca_certificates).where(t.ca_certificates.c.id == ca_id))

    def list_all_ca_certificates(self) -> list[ClientCACertificate]:
        c = t.ca_certificates
        return [_ca_certificate(row) for row in self._read().execute(select(c).order_by(c.c.id))]

    # -- bindings ---------------------------------------------------------------------------------

    def get_binding(self, site_id: SiteId, ca_id: CACertificateId) -> Binding:
        b = t.binding_hostnames.c
        rows = self._read().execute(
            select(b.hostname).where(b.site_id == site_id, b.ca_id == ca_id).order_by(b.position)
        )
        return Binding(site_id, ca_id, tuple(row.hostname for row in rows))

    def set_binding(self, binding: Binding) -> None:
        conn = self._write()
        check_binding(binding)
        b = t.binding_hostnames
        conn.execute(delete(b).where(b.c.site_id == binding.site_id, b.c.ca_id == binding.ca_id))
        if not binding.hostnames:
            return
        rows = [
            {"site_id": binding.site_id, "ca_id": binding.ca_id, "hostname": hostname, "position": i}
            for i, hostname in enumerate(binding.hostnames)
        ]
        try:
            conn.execute(b.insert(), rows)
        except IntegrityError as exc:
            if _is_foreign_key_violation(exc):
                raise parent_not_found("binding") from exc
            raise

    def list_bindings(self, site_id: SiteId | None = None) -> list[Binding]:
        b = t.binding_hostnames
        query = select(b).order_by(b.c.site_id, b.c.ca_id, b.c.position)
        if site_id is not None:
            query = query.where(b.c.site_id == site_id)
        grouped: dict[tuple[SiteId, CACertificateId], list[str]] = {}
        for row in self._read().execute(query):
            grouped.setdefault((SiteId(row.site_id), CACertificateId(row.ca_id)), []).append(row.hostname)
        return [Binding(site, ca, tuple(names)) for (site, ca), names in grouped.items()]

    # -- WAF and origin rules ---------------------------------------------------------------------

    def add_waf_rule(self, rule: WafRule) -> None:
        self._add(t.waf_rules, _waf_rule_values(rule), "WAF rule", rule.id)

    def get_waf_rule(self, site_id: SiteId, rule_id: RuleId) -> WafRule | None:
        w = t.waf_rules
        row = self._read().execute(select(w).where(w.c.id == rule_id, w.c.site_id == site_id)).first()
        return None if row is None else _waf_rule(row)

    def list_waf_rules(
        self, site_id: SiteId, *, phase: str | None, offset: int, limit: int
    ) -> tuple[list[WafRule], int]:
        check_page(offset, limit)
        w = t.waf_rules
        where = [w.c.site_id == site_id]
        if phase is not None:
            where.append(w.c.phase == phase)
        rows = self._read().execute(
            select(w).where(*where).order_by(w.c.position, w.c.id).offset(offset).limit(limit)
        )
        return [_waf_rule(row) for row in rows], self._count(w, *where)

    def count_waf_rules(self, site_id: SiteId) -> int:
        return self._count(t.waf_rules, t.waf_rules.c.site_id == site_id)

    def update_waf_rule(self, rule: WafRule) -> None:
        values = _waf_rule_values(rule)
        del values["id"]
        self._update(t.waf_rules, t.waf_rules.c.id == rule.id, values, "WAF rule", rule.id)

    def delete_waf_rule(self, rule_id: RuleId) -> None:
        self._write().execute(delete(t.waf_rules).where(t.waf_rules.c.id == rule_id))

    def list_all_waf_rules(self) -> list[WafRule]:
        w = t.waf_rules
        rows = self._read().execute(select(w).order_by(w.c.site_id, w.c.position, w.c.id))
        return [_waf_rule(row) for row in rows]

    def add_origin_rule(self, rule: OriginRule) -> None:
        values = {
            "id": rule.id,
            "site_id": rule.site_id,
            "name": rule.name,
            "expression": rule.expression,
            "enabled": rule.enabled,
            "sequence": rule.sequence,
            "origin_scheme": rule.origin_scheme,
            "origin_http_port": rule.origin_http_port,
            "origin_https_port": rule.origin_https_port,
            "origin_host": rule.origin_host,
            "origin_sni": rule.origin_sni,
            "origin_read_timeout": rule.origin_read_timeout,
            "dns_record": rule.dns_record,
            "updated_at": rule.updated_at,
        }
        self._add(t.origin_rules, values, "origin rule", rule.id)

    def get_origin_rule(self, site_id: SiteId, rule_id: RuleId) -> OriginRule | None:
        o = t.origin_rules
        row = self._read().execute(select(o).where(o.c.id == rule_id, o.c.site_id == site_id)).first()
        return None if row is None else _origin_rule(row)

    def list_origin_rules(self, site_id: SiteId) -> list[OriginRule]:
        o = t.origin_rules
        rows = self._read().execute(select(o).where(o.c.site_id == site_id).order_by(o.c.sequence, o.c.id))
        return [_origin_rule(row) for row in rows]

    def delete_origin_rule(self, rule_id: RuleId) -> None:
        self._write().execute(delete(t.origin_rules).where(t.origin_rules.c.id == rule_id))

    def list_all_origin_rules(self) -> list[OriginRule]:
        o = t.origin_rules
        rows = self._read().execute(select(o).order_by(o.c.site_id, o.c.sequence, o.c.id))
        return [_origin_rule(row) for row in rows]

    # -- edge certificates ------------------------------------------------------------------------

    def put_edge_certificate(self, cert: EdgeCertificate) -> None:
        conn = self._write()
        values = {
            "site_id": cert.site_id,
            "chain_pem": cert.chain_pem,
            "sealed_key": cert.sealed_key,
            "uploaded": cert.uploaded,
            "not_after": cert.not_after,
            "updated_at": cert.updated_at,
        }
        statement = (
            self._insert_statement(t.edge_certificates)
            .values(hostname=cert.hostname, **values)
            .on_conflict_do_update(index_elements=["hostname"], set_=values)
        )
        try:
            conn.execute(statement)
        except IntegrityError as exc:
            if _is_foreign_key_violation(exc):
                raise parent_not_found("edge certificate") from exc
            raise

    def get_edge_certificate(self, hostname: str) -> EdgeCertificate | None:
        e = t.edge_certificates
        row = self._read().execute(select(e).where(e.c.hostname == hostname)).first()
        return None if row is None else _edge_certificate(row)

    def delete_edge_certificate(self, hostname: str) -> None:
        e = t.edge_certificates
        self._write().execute(delete(e).where(e.c.hostname == hostname))

    def list_edge_certificates(self) -> list[EdgeCertificate]:
        e = t.edge_certificates
        return [_edge_certificate(row) for row in self._read().execute(select(e).order_by(e.c.hostname))]
